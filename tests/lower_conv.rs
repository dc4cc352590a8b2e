//! Convolution models (and LRN, which the older CNNs put between their convolutions) run end
//! to end through the pipeline: in the fused program the ResNet
//! block's BatchNorms are folded into its convolutions, which stay TTNN convolutions where the
//! cost model finds them cheaper than matmul kernels gathering their windows (optimize::conv),
//! with a ReLU after them fused as TTNN conv2d's activation;
//! convolutions no reader gathers by tiles (3 channels, strides) and every unfused convolution
//! are host (TTNN) steps on tile-padded device tensors (16x16 images give 2-D views of 16
//! columns). Fused and unfused programs match the reference interpreter.

use std::collections::BTreeMap;
use std::path::Path;

use ttfuse::import::ImportOptions;
use ttfuse::inputs::complete_inputs;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::lower::Compiled;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::pipeline::{self, Compilation};
use ttfuse::plan::KernelKind;
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
fn resnet_block_folds_batchnorm_and_fuses_the_relu_into_its_first_convolution() {
    let c = check("resnet_block/model.onnx");
    let (f, u) = (c.fused.program.steps.len(), c.unfused.program.steps.len());
    assert!(f < u, "fused {f} steps, unfused {u}");
    let ops: Vec<&Vec<String>> = c.fused.plan.kernels.iter().map(|k| &k.ops).collect();
    let fused_ops: Vec<&str> = ops
        .iter()
        .flat_map(|o| o.iter().map(|s| s.as_str()))
        .collect();
    // BatchNorm is folded into the convolutions' weights and bias.
    assert!(!fused_ops.contains(&"BatchNorm"), "{ops:?}");
    // This block is the whole model: gathering its convolutions would add a layout change into
    // and out of the pixel-major form, and a TTNN convolution reads its prepared weights at
    // its roofline, so the cost model keeps them TTNN convolutions. The first applies its ReLU
    // (TTNN conv2d's fused activation), so conv + BatchNorm + ReLU is one op; the residual add
    // and the final ReLU are one kernel (the one-kernel form with the convolution, gathered,
    // is tests/lower_im2col.rs's).
    let device: Vec<Vec<&str>> = c
        .fused
        .plan
        .kernels
        .iter()
        .filter(|k| k.kind != KernelKind::Host)
        .map(|k| k.ops.iter().map(|o| o.as_str()).collect())
        .collect();
    assert_eq!(device, [vec!["Add", "Relu"]], "{ops:?}");
    let host: Vec<&str> = c
        .fused
        .plan
        .kernels
        .iter()
        .filter(|k| k.kind == KernelKind::Host)
        .flat_map(|k| k.ops.iter().map(|o| o.as_str()))
        .collect();
    assert_eq!(host, ["ConvRelu", "Conv"], "{ops:?}");
}

/// The fused program's kernels: `(kind, ops)` each.
fn fused_kernels(c: &Compilation) -> Vec<(KernelKind, Vec<&str>)> {
    c.fused
        .plan
        .kernels
        .iter()
        .map(|k| (k.kind, k.ops.iter().map(|o| o.as_str()).collect()))
        .collect()
}

#[test]
fn caffe2_batchnorm_scale_and_shift_fold_into_a_convolution_or_one_kernel() {
    // A DenseNet layer as Caffe2 exports it, each BatchNorm followed by a per-channel Mul and
    // Add: the pair after the 1x1 convolution folds into it with its BatchNorm (a TTNN conv2d
    // with its ReLU); the pre-activation BatchNorm, with no convolution before it, becomes a
    // scale and shift, which fold with its Mul and Add into one scale and shift
    // (`affine-fold`), then its ReLU, in one TT-Lang kernel. Ten launches become three; both
    // programs match the reference (PCC >= 0.999, in `check`).
    let c = check("ops/bn_scale_shift/model.onnx");
    let kernels = fused_kernels(&c);
    assert_eq!(
        kernels,
        [
            (KernelKind::Eltwise, vec!["Mul", "Add", "Relu"]),
            (KernelKind::Host, vec!["ConvRelu"]),
            (KernelKind::Host, vec!["Conv"]),
        ]
    );
    assert_eq!(c.unfused.program.steps.len(), 10);
}

#[test]
fn lrn_raises_to_its_fractional_power_in_a_tt_lang_kernel() {
    // LRN's (bias + alpha * mean(x^2))^-beta: TT-Lang raises only to integers and +-0.5, so
    // the power is exp(-beta * log(base)), in the kernel that computes the base, not a TTNN
    // pow between two kernels. Numbers checked against the reference (PCC >= 0.999).
    let c = check("ops/lrn/model.onnx");
    let kernels = fused_kernels(&c);
    let host: Vec<&str> = kernels
        .iter()
        .filter(|(kind, _)| *kind == KernelKind::Host)
        .flat_map(|(_, ops)| ops.iter().copied())
        .collect();
    assert!(!host.contains(&"Pow"), "{kernels:?}");
    let exps = kernels
        .iter()
        .filter(|(kind, ops)| {
            *kind != KernelKind::Host && ops.contains(&"Log") && ops.contains(&"Exp")
        })
        .count();
    assert_eq!(exps, 2, "{kernels:?}");
}

#[test]
fn ops_conv_pool_runs() {
    check("ops/conv_pool/model.onnx");
}

#[test]
fn ttnn_mlir_conv_runs_with_host_ops_seeing_view_shapes() {
    // The conv's [1, 1, 128, 16] result is reshaped (a view) to [2, 8, 8, 16] before a host
    // transpose: the host step must be given the view's shape, not its source's. The ReLU
    // after that transpose moves before it, into the convolution: no kernel is left.
    let c = check("ttnn_mlir/conv.mlir");
    let ops: Vec<(KernelKind, Vec<String>)> = c
        .fused
        .plan
        .kernels
        .iter()
        .map(|k| (k.kind, k.ops.clone()))
        .collect();
    assert!(
        ops.iter()
            .all(|(kind, o)| *kind == KernelKind::Host && !o.contains(&"Relu".to_string())),
        "{ops:?}"
    );
    assert!(ops.iter().any(|(_, o)| o == &["ConvRelu"]), "{ops:?}");
}
