//! `optimize()` on the exported models in `models/`: folds that need the whole model (BatchNorm
//! into convolution weights) happen, and the reference interpreter gives the optimized graph the
//! same outputs as the imported one.

use std::collections::BTreeMap;
use std::path::Path;

use ttfuse::graph::{Graph, Op, TensorData};
use ttfuse::import::ImportOptions;
use ttfuse::inputs;
use ttfuse::optimize::{optimize, OptimizeOptions};
use ttfuse::pipeline;
use ttfuse::reference;

fn load(rel: &str) -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(rel);
    pipeline::load_model(Some(&path), &ImportOptions::default())
        .expect("model imports")
        .graph
}

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.dag
        .node_indices()
        .filter(|&i| pred(&g.node(i).op))
        .count()
}

/// Runs both graphs on the same inputs and checks every output within `tol` (relative to the
/// output's largest magnitude).
fn same_outputs(before: &Graph, after: &Graph, tol: f32) {
    let ins: BTreeMap<String, TensorData> = inputs::complete_inputs(before, BTreeMap::new(), 0);
    let want = reference::run(before, &ins).expect("the imported graph runs");
    let got = reference::run(after, &ins).expect("the optimized graph runs");
    assert_eq!(want.len(), got.len());
    for (name, w) in &want {
        let (w, g) = (w.to_f32(), got[name].to_f32());
        assert_eq!(w.len(), g.len(), "{name}");
        let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in w.iter().zip(&g).enumerate() {
            assert!(
                (a - b).abs() <= tol * scale,
                "{name}[{i}]: {a} vs {b} (scale {scale})"
            );
        }
    }
}

#[test]
fn resnet_block_batchnorms_fold_into_the_convolutions() {
    let g = load("resnet_block/model.onnx");
    let is_bn = |op: &Op| matches!(op, Op::BatchNorm { .. });
    let is_conv = |op: &Op| matches!(op, Op::Conv { .. });
    assert_eq!(count(&g, is_bn), 2, "the export keeps its BatchNorms");
    let out = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
    assert_eq!(out.report.kept_input, None);
    assert_eq!(out.report.rules_fired.get("conv-bn-fold"), Some(&2));
    assert_eq!(count(&out.graph, is_bn), 0);
    // Each convolution keeps its folded weights and bias as constants. Its two convolutions
    // save less as gathering matmul kernels than the layout changes into and out of the
    // pixel-major form cost, so they stay convolutions (optimize::conv; the gathered form is
    // tests/lower_im2col.rs's).
    assert_eq!(count(&out.graph, is_conv), 2);
    for i in out.graph.dag.node_indices() {
        if !is_conv(&out.graph.node(i).op) {
            continue;
        }
        let ins = out.graph.inputs_of(i);
        assert_eq!(ins.len(), 3);
        for &c in &ins[1..] {
            assert!(matches!(out.graph.node(c).op, Op::Constant(_)));
        }
        assert_eq!(out.graph.node(ins[1]).ty.shape, [32, 32, 3, 3]);
    }
    assert!(out.report.cost_after < out.report.cost_before);
    same_outputs(&g, &out.graph, 1e-5);
}

fn matmuls(g: &Graph) -> usize {
    count(g, |op| matches!(op, Op::MatMul))
}

/// GPT-2's `c_attn` is already one matmul whose output is split into Q, K and V: nothing in the
/// optimizer splits it again, and the split keeps its values.
#[test]
fn gpt2_fused_qkv_matmul_stays_one() {
    let g = load("gpt2_block/model.onnx");
    let out = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
    assert!(matmuls(&out.graph) <= matmuls(&g));
    same_outputs(&g, &out.graph, 1e-4);
}
