//! The example models compile fused and unfused (ops without a template as host steps) and
//! their programs match the reference interpreter.

mod lower_common;

use std::path::Path;

use lower_common::*;
use ttfuse::import::{load, ImportOptions};
use ttfuse::lower::FusionMode;

fn check_model(name: &str) -> (usize, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
        .join("model.onnx");
    let g = load(&path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    let unfused = run_checked(&g, &device(), FusionMode::Unfused);
    (fused.plan.kernels.len(), unfused.plan.kernels.len())
}

#[test]
fn gpt2_block_runs_with_host_steps() {
    let (f, u) = check_model("gpt2_block");
    assert!(f < u, "fused {f} steps, unfused {u}");
}

#[test]
fn llama_block_runs_with_host_steps() {
    let (f, u) = check_model("llama_block");
    assert!(f < u, "fused {f} steps, unfused {u}");
}
