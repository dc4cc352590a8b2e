//! The light CNNs of `tests/import_onnx_light.rs` end to end: optimized, planned, lowered and
//! run fused on the runtime, against the reference interpreter on the same graph.
//!
//! Their shipped weights are one value per tensor, so every class gets the same logit and the
//! final softmax is uniform whatever the network computes: agreement there would say nothing.
//! Here every float constant is replaced by seeded random values, scaled as a network is
//! initialized (a convolution's or a linear layer's weights by its fan-in, a BatchNorm's
//! variance and scales near one, shifts and biases small), so that every layer's values vary
//! and reach the softmax. The fused programs exercise what the CNNs fuse into: BatchNorm folded
//! into convolutions, pointwise convolutions as matmul kernels with their residual and ReLU,
//! TTNN convolutions on pixel matrices, channel shuffles folded into weights, and the
//! classifier's product and softmax in segments.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use ttfuse::graph::{Graph, Op, TensorData};
use ttfuse::import::ImportOptions;
use ttfuse::inputs::{values, Fill};
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::pipeline;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

/// `n` uniform values in `[lo, hi)` from `seed`.
fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    values(n, Fill::Rand(seed))
        .into_iter()
        .map(|u| lo + (hi - lo) * u)
        .collect()
}

/// The range of random values for constant `c` of `graph`, by how its first user reads it.
fn range_of(graph: &Graph, c: NodeIndex, shape: &[usize]) -> (f32, f32) {
    let numel: usize = shape.iter().product();
    let Some(&user) = graph.users_of(c).first() else {
        return (-0.1, 0.1);
    };
    let slot = graph.inputs_of(user).iter().position(|&i| i == c);
    let fan_in_bound = |fan_in: usize| (6.0 / fan_in.max(1) as f32).sqrt();
    match (&graph.node(user).op, slot) {
        // He initialization: a ReLU network keeps its scale from layer to layer.
        (Op::Conv { .. }, Some(1)) => {
            let bound = fan_in_bound(numel / shape[0].max(1));
            (-bound, bound)
        }
        (Op::MatMul, Some(1)) if shape.len() == 2 => {
            let bound = fan_in_bound(shape[0].max(shape[1]));
            (-bound, bound)
        }
        // Gamma and variance near one; beta and mean small.
        (Op::BatchNorm { .. }, Some(1 | 4)) => (0.5, 1.5),
        (Op::Binary(ttfuse::graph::BinaryOp::Mul), _) => (0.5, 1.5),
        _ => (-0.1, 0.1),
    }
}

/// `graph` with every float constant of more than one value replaced by seeded random values
/// in its [`range_of`].
fn randomized(mut graph: Graph) -> Graph {
    let constants: Vec<NodeIndex> = graph
        .dag
        .node_indices()
        .filter(|&i| {
            matches!(&graph.node(i).op,
                Op::Constant(d) if matches!(d.as_ref(), TensorData::F32 { values, .. } if values.len() > 1))
        })
        .collect();
    for (seed, c) in constants.into_iter().enumerate() {
        let Op::Constant(data) = &graph.node(c).op else {
            unreachable!("filtered above");
        };
        let shape = data.shape().to_vec();
        let (lo, hi) = range_of(&graph, c, &shape);
        let n = shape.iter().product();
        let values = uniform(n, 1000 + seed as u64, lo, hi);
        graph.dag[c].op = Op::Constant(Arc::new(TensorData::F32 { shape, values }));
    }
    graph
}

/// Runs `light_<name>.onnx` with random weights fused on wormhole_b0 and checks its outputs
/// against the reference interpreter's.
fn check(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/onnx_light/package")
        .join(format!("light_{name}.onnx"));
    let mut model = pipeline::load_model(Some(&path), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    model.graph = randomized(model.graph);
    // The value before the final softmax (named in models/onnx_light/), an output too: with
    // random weights the logits can be large enough that the softmax is all but one-hot.
    let logits_name = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("models/onnx_light/light_{name}.txt")),
    );
    if let Ok(logits_name) = logits_name {
        let g = &mut model.graph;
        let logits = g
            .dag
            .node_indices()
            .find(|&i| g.node(i).name == logits_name.trim())
            .unwrap_or_else(|| panic!("{name}: no node {logits_name}"));
        g.outputs.push(("logits".into(), logits));
    }
    let device = Device::load("wormhole_b0").unwrap();
    let compiled = pipeline::compile(&model, &device, &OptimizeOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let inputs = ttfuse::inputs::complete_inputs(&model.graph, BTreeMap::new(), 7);
    let want = pipeline::reference_outputs(&model.graph, &inputs).unwrap();
    let run = pipeline::execute(
        &compiled.fused,
        &device,
        &inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (per_output, _) = pipeline::agreement(&want, &run.outputs).unwrap();
    eprintln!("{name}: {per_output:?}");
    for (out, values) in &want {
        let v = values.to_f32();
        let spread =
            v.iter().fold(f32::MIN, |a, &b| a.max(b)) - v.iter().fold(f32::MAX, |a, &b| a.min(b));
        assert!(
            spread > 1e-4,
            "{name}: output {out} is nearly constant ({spread})"
        );
    }
    // Every output at the 0.999 but a softmax's probabilities, at the export's 0.99: a
    // softmax turns a bf16 rounding of a large logit into a relative error of its probability
    // (AlexNet's logits agree at 0.99994, their probabilities at 0.9988).
    let g = &model.graph;
    for (out, node) in &g.outputs {
        let threshold = match g.node(*node).op {
            Op::Softmax { .. } => 0.99,
            _ => 0.999,
        };
        let a = &per_output[out];
        assert!(a.meets(threshold), "{name}: {out} {a:?}");
    }
}

macro_rules! light_models {
    ($($test:ident: $name:literal,)*) => {$(
        #[test]
        fn $test() {
            check($name);
        }
    )*};
}

light_models! {
    alexnet_fused_agrees_with_the_reference: "bvlc_alexnet",
    densenet121_fused_agrees_with_the_reference: "densenet121",
    inception_v1_fused_agrees_with_the_reference: "inception_v1",
    inception_v2_fused_agrees_with_the_reference: "inception_v2",
    resnet50_fused_agrees_with_the_reference: "resnet50",
    shufflenet_fused_agrees_with_the_reference: "shufflenet",
    squeezenet_fused_agrees_with_the_reference: "squeezenet",
    vgg19_fused_agrees_with_the_reference: "vgg19",
    zfnet512_fused_agrees_with_the_reference: "zfnet512",
}
