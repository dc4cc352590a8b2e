//! Streaming a hidden layer chunk by chunk (the guide's Pattern 4).
//!
//! A kernel that chains `act(a @ W1) @ W2` (an MLP after a norm) holds the whole hidden row
//! `act(a @ W1)` and the whole of `W2` per block. When they do not fit L1, the hidden layer can
//! be cut into chunks of its columns instead: per chunk the reader streams `W1`'s columns and
//! `W2`'s rows of the chunk through small buffers, the compute thread computes the chunk of the
//! hidden layer and adds its product with `W2`'s rows to a running sum. The hidden layer never
//! exists whole, and `W2` is read once per block as before, chunk by chunk.

use std::collections::BTreeSet;

use super::body::{Body, LoadSource, ValueOp};
use super::layout::Class;

/// How a kernel body streams its hidden layer (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    /// The product summed over the chunks (`hidden @ W2`).
    pub product: usize,
    /// The values computed or read once per chunk, cut to one chunk of the hidden layer.
    pub values: BTreeSet<usize>,
    /// Tiles of hidden columns per chunk.
    pub chunk: usize,
    /// Chunks.
    pub chunks: usize,
    /// Stem of the running-sum buffer.
    pub acc_stem: String,
}

impl Stream {
    /// Whether value `v` is computed or read once per chunk: a value of the layer, or the
    /// summed product.
    pub fn per_chunk(&self, v: usize) -> bool {
        self.values.contains(&v) || v == self.product
    }

    /// Whether load value `v` is read by rows of the chunk (the summed product's right operand)
    /// rather than by its columns.
    pub fn by_rows(&self, body: &Body, v: usize) -> bool {
        body.values[self.product].args.get(1) == Some(&v)
    }
}

/// The hidden layer a body can stream: the product summed over chunks, the values cut to a
/// chunk, and the hidden width in tiles. It is the body's last chained product `hidden @ W2`
/// where `hidden` is computed elementwise from chained products of values outside the layer
/// (`a @ W1`, a gated MLP's `a @ W3`), row vectors and constants, all of the hidden width, and
/// used by nothing else; the weights are plain matrices (no head views or batches).
fn streamable(body: &Body) -> Option<(usize, BTreeSet<usize>, usize)> {
    let product = (0..body.values.len()).rfind(|&i| body.values[i].op == ValueOp::Product)?;
    let &[hidden, w2] = body.values[product].args.as_slice() else {
        return None;
    };
    let Class::Wide(width) = body.values[hidden].class else {
        return None;
    };
    let of_width = |c: Class| match c {
        Class::Wide(w) | Class::WideRow(w) | Class::Matrix(_, w) => w == width,
        _ => false,
    };
    let plain_matrix = |v: usize| match body.values[v].op {
        ValueOp::Load(l) => matches!(
            body.loads[l].source,
            LoadSource::Matrix(m) if m.head.is_none() && !m.batched
        ),
        _ => false,
    };
    // The layer: `hidden` and its ancestors of the hidden width.
    let users = body.users();
    let mut layer = BTreeSet::from([hidden]);
    for i in (0..hidden).rev() {
        if of_width(body.values[i].class) && users[i].iter().any(|u| layer.contains(u)) {
            layer.insert(i);
        }
    }
    let outputs = body.output_values();
    let mut products = 0;
    for &v in &layer {
        let value = &body.values[v];
        let closed = users[v]
            .iter()
            .all(|u| layer.contains(u) || (v == hidden && *u == product));
        let allowed = match value.op {
            ValueOp::Product => {
                products += 1;
                !layer.contains(&value.args[0])
                    && value.args.get(1).is_some_and(|&w| plain_matrix(w))
            }
            ValueOp::Load(_) => !matches!(value.class, Class::Matrix(..)) || plain_matrix(v),
            ValueOp::Unary(_) | ValueOp::Binary(_) | ValueOp::Power(_) | ValueOp::Broadcast => true,
            ValueOp::Reduce(_) | ValueOp::MatMul | ValueOp::Copy => false,
        };
        if !closed || !allowed || outputs.contains(&v) {
            return None;
        }
    }
    let w2_alone = users[w2] == [product] && plain_matrix(w2);
    (products > 0 && w2_alone).then_some((product, layer, width))
}

/// The hidden width in tiles that [`stream`] can cut, if any.
pub fn streamable_width(body: &Body) -> Option<usize> {
    unsplit_streamable(body).map(|(_, _, w)| w)
}

/// [`streamable`], for a body whose chained product's columns are not split ([`super::wide`]).
fn unsplit_streamable(body: &Body) -> Option<(usize, BTreeSet<usize>, usize)> {
    if body.values.iter().any(|v| v.chunked) {
        return None;
    }
    streamable(body)
}

/// `body` with its hidden layer streamed in chunks of `chunk` tiles (see the module docs), or
/// `None` when it has none to stream or `chunk` does not cut it into two or more chunks.
pub fn stream(body: &Body, chunk: usize) -> Option<Body> {
    let (product, mut values, width) = unsplit_streamable(body)?;
    if chunk == 0 || chunk >= width || !width.is_multiple_of(chunk) {
        return None;
    }
    let w2 = body.values[product].args[1];
    values.insert(w2);
    let mut out = body.clone();
    for &v in &values {
        let value = &mut out.values[v];
        value.class = match value.class {
            Class::Wide(_) => Class::Wide(chunk),
            Class::WideRow(_) => Class::WideRow(chunk),
            Class::Matrix(_, n) if v == w2 => Class::Matrix(chunk, n),
            Class::Matrix(k, _) => Class::Matrix(k, chunk),
            c => c,
        };
    }
    let stem = |suffix: &str| {
        let base = format!("{}_{suffix}", body.values[product].stem);
        let taken = |s: &str| {
            body.values.iter().any(|v| v.stem == s) || body.loads.iter().any(|l| l.param == s)
        };
        (0..)
            .map(|i| match i {
                0 => base.clone(),
                i => format!("{base}_{i}"),
            })
            .find(|s| !taken(s))
            .unwrap_or(base)
    };
    out.stream = Some(Stream {
        product,
        values,
        chunk,
        chunks: width / chunk,
        acc_stem: stem("acc"),
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use petgraph::graph::NodeIndex;

    use crate::graph::{BinaryOp, Graph, Op, UnaryOp};
    use crate::plan::body::ValueOp;
    use crate::plan::group::{Group, GroupKind};
    use crate::plan::kernel::{self, Cut};
    use crate::plan::testing::{constant, f32t, output_pccs, run_kernel, small_grid};
    use crate::plan::FusionMode;

    /// Adds `x + act(norm(x) @ w1 + b1) @ w2 + b2` for x [rows, 128], hidden width 512, as the
    /// graph's output, the norm a LayerNorm (or with `small`, an RMSNorm and the activation a
    /// ReLU rather than GELU: fewer buffers); returns its nodes in topological order.
    fn mlp_after(graph: &mut Graph, x: NodeIndex, rows: usize, small: bool) -> Vec<NodeIndex> {
        let gamma = constant(graph, "gamma", &[128], 1);
        let beta = constant(graph, "beta", &[128], 2);
        let (norm, norm_inputs, act) = match small {
            true => (Op::RmsNorm { eps: 1e-5 }, vec![x, gamma], UnaryOp::Relu),
            false => (
                Op::LayerNorm { eps: 1e-5 },
                vec![x, gamma, beta],
                UnaryOp::Gelu,
            ),
        };
        let ln = graph.add("ln", norm, f32t(&[rows, 128]), &norm_inputs);
        let w1 = constant(graph, "w1", &[128, 512], 3);
        let b1 = constant(graph, "b1", &[512], 4);
        let w2 = constant(graph, "w2", &[512, 128], 5);
        let b2 = constant(graph, "b2", &[128], 6);
        let add = Op::Binary(BinaryOp::Add);
        let p1 = graph.add("p1", Op::MatMul, f32t(&[rows, 512]), &[ln, w1]);
        let h = graph.add("h", add.clone(), f32t(&[rows, 512]), &[p1, b1]);
        let act = graph.add("act", Op::Unary(act), f32t(&[rows, 512]), &[h]);
        let p2 = graph.add("p2", Op::MatMul, f32t(&[rows, 128]), &[act, w2]);
        let o = graph.add("o", add.clone(), f32t(&[rows, 128]), &[p2, b2]);
        let y = graph.add("y", add, f32t(&[rows, 128]), &[o, x]);
        graph.outputs.push(("y".into(), y));
        vec![ln, p1, h, act, p2, o, y]
    }

    /// `x + gelu(layernorm(x) @ w1 + b1) @ w2 + b2` for x [64, 128] as one body kernel's group.
    fn norm_mlp_kernel() -> (Graph, Group) {
        let mut graph = Graph::new();
        let x = graph.add_input("x", f32t(&[64, 128]));
        let nodes = mlp_after(&mut graph, x, 64, false);
        let group = Group {
            kind: GroupKind::Body,
            nodes,
            space: (64, 128),
        };
        (graph, group)
    }

    /// Runs group `g` of `graph` with its hidden layer streamed in chunks of each of `chunks`
    /// tiles (of 16) on 2 cores, and checks the outputs against the reference.
    fn streams_like_the_reference(graph: &Graph, group: &Group, chunks: &[usize]) {
        let (device, target) = small_grid(2, 1);
        for &chunk in chunks {
            let cut = Cut::Stream(chunk);
            let k =
                kernel::build_cut(graph, &target, group, FusionMode::Fused, cut).expect("streams");
            assert_eq!(k.partition.stream, Some((chunk, 16 / chunk)));
            let body = k.detail.body().expect("a body or matmul kernel");
            let st = body.stream.as_ref().expect("streamed");
            // The first product and the hidden layer after it run per chunk.
            let products = st
                .values
                .iter()
                .filter(|&&v| body.values[v].op == ValueOp::Product)
                .count();
            assert_eq!(products, 1, "{:?}", st.values);
            for (name, pcc) in output_pccs(graph, &device, k) {
                assert!(pcc >= 0.999, "{name} in chunks of {chunk}: pcc {pcc}");
            }
        }
    }

    #[test]
    fn the_estimate_streams_where_the_runtime_finds_it_faster() {
        // Two row blocks on the whole grid: each block's core reads W1 and W2 whole before it
        // computes, or streams their chunks while it computes the chunk before.
        let (graph, group) = norm_mlp_kernel();
        let device = ttfuse_runtime::device::Device::load("wormhole_b0").expect("target exists");
        let target = crate::plan::Target::of(&device);
        let chosen = kernel::build(&graph, &target, &group, FusionMode::Fused).expect("builds");
        assert!(
            chosen.partition.stream.is_some(),
            "{}",
            chosen.partition_summary
        );
        let whole = kernel::build_cut(&graph, &target, &group, FusionMode::Fused, Cut::Whole)
            .expect("fits whole");
        let (pccs, streamed_us) = run_kernel(&graph, &device, chosen);
        let (_, whole_us) = run_kernel(&graph, &device, whole);
        assert!(pccs.iter().all(|(_, p)| *p >= 0.999), "{pccs:?}");
        assert!(
            streamed_us < whole_us,
            "{streamed_us} us streamed, {whole_us} whole"
        );
    }

    #[test]
    fn a_streamed_hidden_layer_matches_the_reference() {
        // Two row blocks on 2 cores, hidden layer of 16 tiles in 2 to 16 chunks.
        let (graph, group) = norm_mlp_kernel();
        streams_like_the_reference(&graph, &group, &[1, 2, 4, 8]);
    }

    #[test]
    fn the_post_attention_half_streams_its_mlp_after_the_output_projection() {
        // The guide's pattern 3: a @ wo + x, its norm, then the streamed MLP, in one matmul
        // kernel; 3 row blocks on 2 cores, so one core runs two blocks.
        let mut graph = Graph::new();
        let x = graph.add_input("x", f32t(&[96, 128]));
        let a = graph.add_input("a", f32t(&[96, 128]));
        let wo = constant(&mut graph, "wo", &[128, 128], 7);
        let proj = graph.add("proj", Op::MatMul, f32t(&[96, 128]), &[a, wo]);
        let h1 = graph.add(
            "h1",
            Op::Binary(BinaryOp::Add),
            f32t(&[96, 128]),
            &[proj, x],
        );
        let mut group_nodes = vec![proj, h1];
        group_nodes.extend(mlp_after(&mut graph, h1, 96, true));
        let group = Group {
            kind: GroupKind::Matmul {
                mm: proj,
                b_transposed: false,
                heads: false,
                siblings: Vec::new(),
                norm: None,
                norm_input: None,
            },
            nodes: group_nodes,
            space: (96, 128),
        };
        streams_like_the_reference(&graph, &group, &[1, 4]);
    }
}
