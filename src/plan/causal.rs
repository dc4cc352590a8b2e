//! Causal attention in key chunks: the blocks of an attention kernel whose mask is causal
//! (row `i` sees keys `0..=i`) take the keys in chunks and skip the chunks past their rows.
//!
//! The plain attention kernel computes every block's scores against all keys, then masks half
//! of them away. Here a block of rows `[r0, r1)` takes key chunks `0..c`, the last the one
//! holding key `r1 - 1`, with the online softmax: per chunk, the running row maximum, the
//! running sum of exponentials and the running product with the values are rescaled by
//! `exp(old max - new max)` and updated. Only the last chunk crosses the diagonal, so only it
//! reads the mask. The work of a row block grows with its row, so with the batches shared over
//! grid rows ([`super::Partition::share_batches`]) a core's odd steps take the mirrored row
//! block ([`super::Partition::mirrored`]), and with an odd number of steps the last three are
//! balanced by class of equal work instead ([`super::Partition::class_steps`]: GPT-2's
//! attention at 1024 tokens, 3 steps per core, 132.45 us with the third step unpaired, 118.82
//! balanced on wormhole_b0). Where the batches do not divide over the grid rows, the mirrored
//! pairs of all batches are spread over the cores in row order instead
//! ([`super::Partition::pairs_over_cores`]: the same attention on Blackhole, 12 heads on 10 grid
//! rows, 70.15 us on 64 cores as shared batches, 50.74 as pairs on 96). The keys and values of
//! a chunk are read by the core of the grid row (of its part taking the batch, with pairs) that
//! needs the most chunks at that step, and sent to those of the others that need it.

use std::collections::BTreeMap;

use super::body::{Body, LoadSource, RowReduce, TtBinary, ValueOp};
use super::estimate::stage;
use super::kernel::KernelDetail;
use super::matmul_info::MatmulInfo;
use super::partition::ClassSteps;
use super::schedule::Cb;
use super::target::{Costs, Target};
use super::{Partition, PlannedKernel};
use crate::graph::{Graph, Op, TensorData};
use ttfuse_runtime::ttl::ops::UnaryFn;

/// The most key tiles in a chunk: longer chunks skip less, shorter ones pay the per-chunk
/// stages more often (measured on a hand-written first version of the kernel, GPT-2's
/// attention at 1024 tokens: chunks of 8 tiles ran in 149 us, of 4 in 167 us, of 16 in 152
/// us).
const MAX_KEY_CHUNK: usize = 8;

/// The loads and values of a causal attention body ([`recognize`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Causal {
    /// Key tiles per chunk.
    pub key_chunk: usize,
    /// The load of the scores' scale (a scalar constant), if the scores are scaled.
    pub scale: Option<usize>,
    /// The load of the additive mask (0 on and below the diagonal, `-inf` above).
    pub mask: usize,
    /// The load of the reductions' scaler (a scalar one).
    pub one: usize,
    /// The load of the values (the chained product's right operand).
    pub values: usize,
    /// The body's one output value.
    pub out: usize,
}

/// The parts of `body`, the epilogue of attention scores `info`, when it is exactly
/// `softmax(scores * scale + mask) @ v` (the scale optional) with a causal mask, every batch's
/// keys in chunks that divide them evenly; `None` otherwise.
pub fn recognize(graph: &Graph, body: &Body, info: &MatmulInfo) -> Option<Causal> {
    if info.batches < 2 || info.mt != info.nt || !info.others.is_empty() {
        return None;
    }
    if info.a_gather.is_some() || !info.b_transposed || body.stream.is_some() {
        return None;
    }
    let [(_, out)] = body.outputs[..] else {
        return None;
    };
    let f = Flow { body };
    // From the output back: the product normalized by the reciprocal row sums of the
    // exponentials it multiplies, which are of the masked scores less their row maxima.
    let (a, b) = f.binary(out, TtBinary::Mul)?;
    let (product, inverse) = if f.op(a) == &ValueOp::Product {
        (a, b)
    } else {
        (b, a)
    };
    let [exp, values] = *f.args(product) else {
        return None;
    };
    (f.op(product) == &ValueOp::Product).then_some(())?;
    let sum = f.unary(f.through_broadcast(inverse), UnaryFn::Recip)?;
    let (summed, one) = f.reduce(sum, RowReduce::Sum)?;
    let (masked, max) = f.binary(f.unary(exp, UnaryFn::Exp)?, TtBinary::Sub)?;
    (summed == exp).then_some(())?;
    let (maxed, one_again) = f.reduce(f.through_broadcast(max), RowReduce::Max)?;
    (maxed == masked && one_again == one).then_some(())?;
    let (scaled, mask) = f.binary(masked, TtBinary::Add)?;
    let (scores, scale) = match f.binary(scaled, TtBinary::Mul) {
        Some((a, b)) if f.op(a) == &ValueOp::MatMul => (a, Some(f.scalar(b)?.0)),
        _ => (scaled, None),
    };
    (f.op(scores) == &ValueOp::MatMul).then_some(())?;
    let (one, unit) = f.scalar(one)?;
    let mask = f.load_of(mask)?;
    let values = f.load_of(values)?;
    let values_are_matrix = matches!(body.loads[values].source, LoadSource::Matrix(_));
    if unit != 1.0 || !values_are_matrix || !causal_mask(graph, body, mask, info.mt * 32) {
        return None;
    }
    let key_chunk = (1..=MAX_KEY_CHUNK.min(info.nt))
        .rev()
        .find(|&c| info.nt.is_multiple_of(c))?;
    Some(Causal {
        key_chunk,
        scale,
        mask,
        one,
        values,
        out,
    })
}

/// Reading a body's dataflow back from a value.
struct Flow<'b> {
    body: &'b Body,
}

impl Flow<'_> {
    /// What value `v` computes.
    fn op(&self, v: usize) -> &ValueOp {
        &self.body.values[v].op
    }

    /// The operands of value `v`.
    fn args(&self, v: usize) -> &[usize] {
        &self.body.values[v].args
    }

    /// The operand of broadcast `v`, or `v`.
    fn through_broadcast(&self, v: usize) -> usize {
        match self.op(v) {
            ValueOp::Broadcast => self.args(v)[0],
            _ => v,
        }
    }

    /// The operands of `v` when it is binary op `b`.
    fn binary(&self, v: usize, b: TtBinary) -> Option<(usize, usize)> {
        match (self.op(v), self.args(v)) {
            (ValueOp::Binary(op), &[x, y]) if *op == b => Some((x, y)),
            _ => None,
        }
    }

    /// The operand of `v` when it is unary function `f`.
    fn unary(&self, v: usize, f: UnaryFn) -> Option<usize> {
        match (self.op(v), self.args(v)) {
            (ValueOp::Unary(g), &[x]) if *g == f => Some(x),
            _ => None,
        }
    }

    /// The operand and scaler of `v` when it is row reduction `r`.
    fn reduce(&self, v: usize, r: RowReduce) -> Option<(usize, usize)> {
        match (self.op(v), self.args(v)) {
            (ValueOp::Reduce(op), &[x, s]) if *op == r => Some((x, s)),
            _ => None,
        }
    }

    /// The load that `v` (or the value it broadcasts) reads.
    fn load_of(&self, v: usize) -> Option<usize> {
        let v = self.through_broadcast(v);
        self.body.loads.iter().position(|l| l.value == v)
    }

    /// The load and value of `v` when it reads (or broadcasts) a scalar constant.
    fn scalar(&self, v: usize) -> Option<(usize, f32)> {
        let l = self.load_of(v)?;
        match self.body.loads[l].source {
            LoadSource::Scalar(s) => Some((l, s)),
            _ => None,
        }
    }
}

/// Whether load `l` of `body` is an additive causal mask over `seq` rows and keys: 0 where the
/// key is at or before the row, `-inf` after it, in every batch it holds. Read from the
/// constant itself (a `Where`'s condition, or the added constant), without building the mask.
fn causal_mask(graph: &Graph, body: &Body, l: usize, seq: usize) -> bool {
    let constant = |n| match &graph.node(super::group::resolve(graph, n)).op {
        Op::Constant(d) => Some(&**d),
        _ => None,
    };
    match &body.loads[l].source {
        LoadSource::WhereMask(n) => {
            let Some((_, fill, when)) = super::body::where_mask_form(graph, *n) else {
                return false;
            };
            let Some(cond) = graph.inputs_of(*n).first().and_then(|&c| constant(c)) else {
                return false;
            };
            // The fill where the condition is `when`, the scores elsewhere.
            fill == f32::NEG_INFINITY
                && match cond {
                    TensorData::F32 { values, .. } => {
                        let masked = |v: f32| (v != 0.0) == when;
                        causal_cells(seq, values, |v| !masked(v), masked)
                    }
                    TensorData::I64 { values, .. } => {
                        let masked = |v: i64| (v != 0) == when;
                        causal_cells(seq, values, |v| !masked(v), masked)
                    }
                }
        }
        LoadSource::Tensor(n) | LoadSource::Expanded { constant: n, .. } => match constant(*n) {
            Some(TensorData::F32 { values, .. }) => {
                causal_cells(seq, values, |v| v == 0.0, |v| v == f32::NEG_INFINITY)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Whether `values` are whole `seq x seq` matrices whose cells are `visible` on and before the
/// diagonal and `masked` after it. Each row is two runs, each checked by a plain loop the
/// compiler vectorizes: the check reads every cell of the mask for each attention group the
/// planner weighs.
fn causal_cells<T: Copy>(
    seq: usize,
    values: &[T],
    visible: impl Fn(T) -> bool,
    masked: impl Fn(T) -> bool,
) -> bool {
    !values.is_empty()
        && values.len().is_multiple_of(seq * seq)
        && values.chunks(seq * seq).all(|m| {
            m.chunks(seq).enumerate().all(|(row, cells)| {
                let (on_or_before, after) = cells.split_at(row + 1);
                every(on_or_before, &visible) && every(after, &masked)
            })
        })
}

/// Whether `pred` holds for every value: in runs of 64 without a branch per value, which the
/// compiler vectorizes.
fn every<T: Copy>(values: &[T], pred: impl Fn(T) -> bool) -> bool {
    values
        .chunks(64)
        .all(|run| run.iter().fold(true, |ok, &v| ok & pred(v)))
}

/// Key chunks row block `rem` (of `bm` tiles) takes: up to the one holding its last row.
pub fn chunks_of(rem: usize, bm: usize, key_chunk: usize) -> usize {
    ((rem + 1) * bm - 1) / key_chunk + 1
}

/// The most key chunks any core takes over its steps, and the key chunks the senders read
/// (per grid row, step and batch, the most any of the row's cores taking that batch takes).
fn chunk_counts(p: &Partition, key_chunk: usize) -> (usize, usize) {
    let (gx, gy) = (p.grid.0 as usize, p.grid.1 as usize);
    let mut most = 0;
    let mut sent = 0;
    for y in 0..gy {
        let mut row_most = vec![BTreeMap::new(); p.blocks_per_core];
        for x in 0..gx {
            let mut total = 0;
            for (i, batches) in row_most.iter_mut().enumerate() {
                let Some((batch, rem)) = p.causal_block_at((x, y), i) else {
                    continue;
                };
                let c = chunks_of(rem, p.block.0, key_chunk);
                total += c;
                let m = batches.entry(batch).or_insert(0);
                *m = c.max(*m);
            }
            most = most.max(total);
        }
        sent += row_most.iter().flat_map(|b| b.values()).sum::<usize>();
    }
    (most, sent)
}

/// The balanced last three steps ([`ClassSteps`]) of mirrored partition `p` with key chunks of
/// `key_chunk` tiles, when it takes an odd number of steps, at least three, and its row blocks
/// fall in classes of equal work (a key chunk holds whole row blocks).
fn class_steps(p: &Partition, key_chunk: usize) -> Option<ClassSteps> {
    let (steps, bm) = (p.blocks_per_core, p.block.0);
    if !p.mirrored || steps < 3 || steps % 2 == 0 || !key_chunk.is_multiple_of(bm) {
        return None;
    }
    let rows = key_chunk / bm;
    let classes = p.row_blocks / rows;
    (p.row_blocks.is_multiple_of(rows) && classes > 1).then_some(ClassSteps {
        rows,
        classes,
        from: steps - 3,
    })
}

/// The causal variants of attention kernel `k` (planned with its batches shared over grid
/// rows), whose body is causal attention `causal` ([`recognize`]), where its buffers fit:
/// with the batches shared as `k` has them, and with mirrored pairs of row blocks over the
/// cores ([`Partition::pairs_over_cores`]) where that takes fewer steps.
pub fn variants(target: &Target, k: &PlannedKernel, causal: &Causal) -> Vec<PlannedKernel> {
    let p = &k.partition;
    if !(p.multicast && p.batches > 1 && p.col_blocks == 1) {
        return Vec::new();
    }
    let mut shared = p.clone();
    shared.mirrored = p.blocks_per_core > 1;
    shared.class_steps = class_steps(&shared, causal.key_chunk);
    let pairs = p.clone().pairs_over_cores(target);
    std::iter::once(shared)
        .chain(pairs)
        .filter_map(|p| variant(target, k, causal, p))
        .collect()
}

/// Attention kernel `k` as causal attention `causal` laid out as `p`, if its buffers fit.
fn variant(
    target: &Target,
    k: &PlannedKernel,
    causal: &Causal,
    mut p: Partition,
) -> Option<PlannedKernel> {
    let KernelDetail::Matmul {
        body,
        schedule,
        info,
    } = &k.detail
    else {
        return None;
    };
    // The template takes each chunk's keys whole (a head's few tiles).
    (p.k_block, p.k_chunks) = (Some(info.kt), 1);
    let out_like = schedule.cbs[*schedule.cb_of.get(&causal.out)?].like.clone();
    let cbs = buffers(body, info, causal, p.block.0, &out_like);
    let l1_bytes: u64 = cbs
        .iter()
        .map(|c| c.tiles() as u64 * target.tile_bytes)
        .sum();
    if l1_bytes > target.l1_bytes || cbs.len() > target.max_cbs as usize {
        return None;
    }
    let (bm, hd, kc) = (p.block.0, info.kt, causal.key_chunk);
    let (_, sent) = chunk_counts(&p, kc);
    let constants = 1 + usize::from(causal.scale.is_some());
    let read_tiles = p.blocks * bm * (hd + kc) + sent * 2 * kc * hd + p.cores_used * constants;
    let mut schedule = schedule.clone();
    schedule.cbs = cbs.clone();
    // The output's buffer is the last (`lower::causal` writes the output through it).
    schedule.cb_of = [(causal.out, cbs.len() - 1)].into_iter().collect();
    let mut info = info.clone();
    info.causal = Some(causal.clone());
    let mut out = k.clone();
    out.partition_summary = format!(
        "{}, keys in chunks of {kc} tiles up to each row block's diagonal (online softmax){}",
        p.describe(),
        if p.class_steps.is_some() {
            ", odd steps on the mirrored row block, the last three balanced by class"
        } else if p.mirrored && p.pair_cores.is_none() {
            ", odd steps on the mirrored row block"
        } else {
            ""
        }
    );
    out.partition = p;
    out.cbs = cbs;
    out.l1_bytes = l1_bytes;
    out.dram_read_bytes = read_tiles as u64 * target.tile_bytes;
    out.detail = KernelDetail::Matmul {
        body: body.clone(),
        schedule,
        info,
    };
    Some(out)
}

/// The buffer names of a causal attention kernel, after the output value's stem.
pub struct Names {
    stem: String,
}

impl Names {
    /// The names of the kernel whose output value has stem `stem`.
    pub fn new(stem: &str) -> Names {
        Names { stem: stem.into() }
    }

    /// The buffer of part `part` (`{stem}_{part}_cb`).
    pub fn cb(&self, part: &str) -> String {
        format!("{}_{part}_cb", self.stem)
    }

    /// A block name of part `part` with suffix `suffix` (`_v` waited, `_o` reserved).
    pub fn block(&self, part: &str, suffix: &str) -> String {
        format!("{}_{part}{suffix}", self.stem)
    }
}

/// The template's buffers for row blocks of `bm` tiles: the loads (query, key and value
/// chunks, the mask's diagonal chunk, the constants), the scores, the running maximum, sum and
/// product (double-buffered: each chunk waits for one and reserves the next), and the output.
fn buffers(body: &Body, info: &MatmulInfo, c: &Causal, bm: usize, out_like: &str) -> Vec<Cb> {
    let names = Names::new(&body.values[c.out].stem);
    let (hd, kc) = (info.kt, c.key_chunk);
    let param = |l: usize| body.loads[l].param.clone();
    let cb = |part: &str, like: &str, shape: (usize, usize), buffer_factor: usize| Cb {
        name: names.cb(part),
        like: like.to_string(),
        shape,
        buffer_factor,
    };
    let mut out = vec![
        cb("q", &info.a_param, (bm, hd), 2),
        cb("k", &info.b_param, (kc, hd), 2),
        cb("kt", &info.b_param, (hd, kc), 1),
        cb("v", &param(c.values), (kc, hd), 2),
        cb("mask", &param(c.mask), (bm, kc), 1),
        cb("one", &param(c.one), (1, 1), 1),
    ];
    if let Some(s) = c.scale {
        out.push(cb("scale", &param(s), (1, 1), 1));
        out.push(cb("qs", &info.a_param, (bm, hd), 1));
    }
    for (part, shape, factor) in [
        ("s", (bm, kc), 1),
        ("x", (bm, kc), 1),
        ("p", (bm, kc), 1),
        ("mj", (bm, 1), 1),
        ("m", (bm, 1), 2),
        ("mu", (bm, 1), 1),
        ("corr", (bm, 1), 1),
        ("ps", (bm, 1), 1),
        ("l", (bm, 1), 2),
        ("pv", (bm, hd), 1),
        ("o", (bm, hd), 2),
        ("inv", (bm, 1), 1),
    ] {
        out.push(cb(part, out_like, shape, factor));
    }
    out.push(Cb {
        name: format!("{}_cb", body.values[c.out].stem),
        like: out_like.to_string(),
        shape: (bm, hd),
        buffer_factor: 2,
    });
    out
}

/// Estimated compute cycles per block of a causal attention kernel: per key chunk, the stages
/// of the kernel's chunk step (`lower::causal`) through the unpack/math/pack pipeline, for the
/// most chunks any core takes; per block, the query's scaling and the final normalization. The
/// keys' transpose is per chunk whatever the block's rows, which is what makes one-row blocks
/// dearer than their rows alone.
pub fn block_cycles(c: &Costs, p: &Partition, info: &MatmulInfo, causal: &Causal) -> f64 {
    let (bm, hd, kc) = (p.block.0, info.kt, causal.key_chunk);
    let (most, _) = chunk_counts(p, kc);
    let (hd_f, kc_f) = (hd as f64, kc as f64);
    let exp = c.sfpu("exp");
    let transpose = stage(c, kc * hd, c.transpose, 1.0);
    let scores = stage(
        c,
        bm * kc,
        hd_f * c.matmul_tile,
        hd_f * c.matmul_unpack_tiles,
    );
    let row_max = stage(c, bm, kc_f * c.reduce, kc_f + 1.0);
    let running_max = stage(c, bm, 2.0 * c.sfpu("max") + c.add + exp, 2.0);
    let exponentials = stage(c, bm * kc, c.add + exp, 2.0);
    let row_sums = stage(c, bm, kc_f * c.reduce, kc_f + 1.0);
    let with_values = stage(
        c,
        bm * hd,
        kc_f * c.matmul_tile,
        kc_f * c.matmul_unpack_tiles,
    );
    let rescaled = stage(c, bm * hd, c.mul + 2.0 * c.add, 3.0) + stage(c, bm, c.mul + c.add, 3.0);
    let per_chunk = transpose
        + scores
        + row_max
        + running_max
        + exponentials
        + row_sums
        + with_values
        + rescaled;
    let per_block =
        2.0 * stage(c, bm * hd, c.mul + c.add, 2.0) + stage(c, bm, c.sfpu("recip"), 1.0);
    let steps = p.blocks_per_core.max(1) as f64;
    (most as f64 * per_chunk + steps * per_block) / steps
}
