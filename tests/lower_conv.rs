//! Convolution models run end to end through the pipeline: convs as host (TTNN) steps on
//! tile-padded device tensors (16x16 images give 2-D views of 16 columns), BatchNorm folded or
//! on the host, and ReLU / residual adds fused into TT-Lang kernels; fused and unfused programs
//! match the reference interpreter.

use std::collections::BTreeMap;
use std::path::Path;

use ttfuse::import::ImportOptions;
use ttfuse::inputs::complete_inputs;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::lower::Compiled;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::pipeline::{self, Compilation};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

/// Compiles the model at `models/<rel>` and checks both programs against the reference with
/// PCC >= 0.999; returns the compilation.
fn check(rel: &str) -> Compilation {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(rel);
    let model = pipeline::load_model(Some(&path), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{rel}: {e:#}"));
    let device = Device::load("wormhole_b0").expect("wormhole_b0 loads");
    let c = pipeline::compile(&model, &device, &OptimizeOptions::default())
        .unwrap_or_else(|e| panic!("{rel}: {e:#}"));
    let inputs = complete_inputs(&model.graph, BTreeMap::new(), 7);
    let expected = pipeline::reference_outputs(&model.graph, &inputs).expect("reference runs");
    let run = |p: &Compiled, what: &str| {
        let e = pipeline::execute(p, &device, &inputs, &GraphHostOps, Dispatch::Traced)
            .unwrap_or_else(|e| panic!("{rel} {what}: {e:#}"));
        let (_, overall) = pipeline::agreement(&expected, &e.outputs).expect("same outputs");
        assert!(overall.pcc >= 0.999, "{rel} {what}: pcc {}", overall.pcc);
    };
    run(&c.fused, "fused");
    run(&c.unfused, "unfused");
    c
}

#[test]
fn resnet_block_runs_fused_in_fewer_launches() {
    let c = check("resnet_block/model.onnx");
    let (f, u) = (c.fused.program.steps.len(), c.unfused.program.steps.len());
    assert!(f < u, "fused {f} steps, unfused {u}");
    // The residual add and the final ReLU share one kernel.
    assert!(
        c.fused
            .plan
            .kernels
            .iter()
            .any(|k| k.ops.iter().any(|o| o == "Add") && k.ops.iter().any(|o| o == "Relu")),
        "{:?}",
        c.fused
            .plan
            .kernels
            .iter()
            .map(|k| &k.ops)
            .collect::<Vec<_>>()
    );
}

#[test]
fn ops_conv_pool_runs() {
    check("ops/conv_pool/model.onnx");
}

#[test]
fn ttnn_mlir_conv_runs_with_host_ops_seeing_view_shapes() {
    // The conv's [1, 1, 128, 16] result is reshaped (a view) to [2, 8, 8, 16] before a host
    // transpose: the host step must be given the view's shape, not its source's.
    check("ttnn_mlir/conv.mlir");
}
