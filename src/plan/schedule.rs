//! The order in which a kernel's compute thread produces its materialized values, which of them
//! are loop-invariant (computed once before the block loop), and the circular buffers they need.

use std::collections::BTreeMap;

use serde::Serialize;

use super::body::{Body, LoadSource, ValueOp};
use super::layout::Class;

/// One circular buffer of a kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cb {
    /// The Python name, e.g. `x_cb`.
    pub name: String,
    /// The kernel parameter it is made like (`ttl.make_circular_buffer_like(like, ...)`).
    pub like: String,
    /// Block shape in tiles.
    pub shape: (usize, usize),
    /// Blocks the buffer holds.
    pub buffer_factor: usize,
}

impl Cb {
    /// The running-sum buffer `{acc}_cb` of a product summed over K chunks, of blocks of
    /// `block` tiles like parameter `like`: double-buffered, since each chunk waits for the sum
    /// and reserves the next at once.
    pub fn running_sum(acc: &str, like: &str, block: (usize, usize)) -> Cb {
        Cb {
            name: format!("{acc}_cb"),
            like: like.to_string(),
            shape: block,
            buffer_factor: 2,
        }
    }

    /// Tiles of L1 the buffer occupies.
    pub fn tiles(&self) -> usize {
        self.shape.0 * self.shape.1 * self.buffer_factor
    }
}

/// The compute schedule of a body for one block size.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Tiles of one block of the iteration space.
    pub block: (usize, usize),
    /// Whether each value is loop-invariant (read or computed once per core).
    pub hoisted: Vec<bool>,
    /// Materialized computed values in production order: the loop-invariant ones first.
    pub stages: Vec<usize>,
    /// How many of `stages` run before the block loop.
    pub hoisted_stages: usize,
    /// The buffer of each materialized value.
    pub cb_of: BTreeMap<usize, usize>,
    /// Every buffer: one per materialized value, then the template's own.
    pub cbs: Vec<Cb>,
    /// The materialized values each stage reads, in order of first use.
    pub leaves: BTreeMap<usize, Vec<usize>>,
}

impl Schedule {
    /// Schedules `body` for blocks of `block` tiles when the space has `row_blocks` x
    /// `col_blocks` of them; `extra` are buffers the kernel template adds (matmul operands).
    pub fn new(
        body: &Body,
        block: (usize, usize),
        row_blocks: usize,
        col_blocks: usize,
        extra: Vec<Cb>,
    ) -> Schedule {
        let n = body.values.len();
        let outputs = body.output_values();
        let mut hoisted = vec![false; n];
        for (i, v) in body.values.iter().enumerate() {
            hoisted[i] = match v.op {
                // A streamed read takes the next chunk each time.
                ValueOp::Load(_) if body.is_streamed(i) => false,
                ValueOp::Load(l) => match v.class {
                    Class::Scalar => true,
                    Class::Row | Class::WideRow(_) => col_blocks == 1,
                    Class::Col => row_blocks == 1,
                    // One matrix for every block (a weight) is read once per core, unless
                    // the blocks take different chunks of its columns.
                    Class::Matrix(..) => {
                        col_blocks == 1
                            && matches!(
                                body.loads[l].source,
                                LoadSource::Matrix(m) if m.head.is_none() && !m.batched
                            )
                    }
                    Class::Full | Class::Wide(_) => false,
                },
                ValueOp::MatMul | ValueOp::Product | ValueOp::Copy => false,
                _ => !outputs.contains(&i) && v.args.iter().all(|&a| hoisted[a]),
            };
        }
        let computed =
            |i: &usize| body.materialized[*i] && !matches!(body.values[*i].op, ValueOp::Load(_));
        let mut stages: Vec<usize> = (0..n).filter(|i| computed(i) && hoisted[*i]).collect();
        let hoisted_stages = stages.len();
        let per_block: Vec<usize> = (0..n).filter(|i| computed(i) && !hoisted[*i]).collect();
        stages.extend(streamed_together(body, per_block));

        let first_output = body
            .outputs
            .first()
            .map(|&(_, v)| body.values[v].stem.clone())
            .unwrap_or_default();
        let mut cbs = Vec::new();
        let mut cb_of = BTreeMap::new();
        for (i, v) in body.values.iter().enumerate() {
            if !body.materialized[i] {
                continue;
            }
            let (like, buffer_factor) = if let ValueOp::Load(l) = v.op {
                (body.loads[l].param.clone(), if hoisted[i] { 1 } else { 2 })
            } else if outputs.contains(&i) {
                (v.stem.clone(), 2)
            } else {
                (first_output.clone(), 1)
            };
            cb_of.insert(i, cbs.len());
            cbs.push(Cb {
                name: format!("{}_cb", v.stem),
                like,
                shape: v.class.block(block),
                buffer_factor,
            });
        }
        if let Some(st) = &body.stream {
            let shape = body.values[st.product].class.block(block);
            cbs.push(Cb::running_sum(&st.acc_stem, &first_output, shape));
        }
        cbs.extend(extra);

        let mut leaves = BTreeMap::new();
        for &s in &stages {
            let mut found = Vec::new();
            collect_leaves(body, &body.values[s].args, &mut found);
            leaves.insert(s, found);
        }
        Schedule {
            block,
            hoisted,
            stages,
            hoisted_stages,
            cb_of,
            cbs,
            leaves,
        }
    }

    /// Total L1 bytes of the buffers.
    pub fn l1_bytes(&self, tile_bytes: u64) -> u64 {
        self.cbs.iter().map(|c| c.tiles() as u64 * tile_bytes).sum()
    }
}

/// `stages` (per-block, in production order) with a streamed hidden layer's stages moved
/// together, ending with its summed product, for the compute thread's chunk loop: the stages
/// before the product that the layer does not feed go first (none of them reads the layer, which
/// only the product uses).
fn streamed_together(body: &Body, stages: Vec<usize>) -> Vec<usize> {
    let Some(st) = &body.stream else {
        return stages;
    };
    let in_region = |v: &usize| st.per_chunk(*v);
    let (before, after): (Vec<usize>, Vec<usize>) = stages.iter().partition(|&&v| v < st.product);
    let mut out: Vec<usize> = before.iter().copied().filter(|v| !in_region(v)).collect();
    out.extend(before.iter().copied().filter(in_region));
    out.extend(after.iter().copied().filter(in_region));
    out.extend(after.iter().copied().filter(|v| !in_region(v)));
    out
}

/// The positions in `stages` of a streamed hidden layer's stages (the first, and the summed
/// product's, which is last), if the body streams one.
pub fn stream_region(body: &Body, stages: &[usize]) -> Option<(usize, usize)> {
    let st = body.stream.as_ref()?;
    let first = stages.iter().position(|&v| st.per_chunk(v))?;
    let last = stages.iter().position(|v| *v == st.product)?;
    Some((first, last))
}

fn collect_leaves(body: &Body, args: &[usize], found: &mut Vec<usize>) {
    for &a in args {
        if body.materialized[a] {
            if !found.contains(&a) {
                found.push(a);
            }
        } else {
            collect_leaves(body, &body.values[a].args, found);
        }
    }
}
