//! Compile time per model: import, optimize and lower to the fused program (what `fuse` does
//! before writing files), and the same plus running both programs (what `compare` does).
//!
//! Run: `cargo bench --bench compile`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use ttfuse::import::ImportOptions;
use ttfuse::inputs;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::pipeline;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

fn model_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    [
        "mlp/model.onnx",
        "attention/model.onnx",
        "attention_mlp/model.onnx",
        "key_use_case/program.py",
    ]
    .iter()
    .map(|rel| {
        (
            rel.split('/').next().unwrap_or(rel).to_string(),
            root.join(rel),
        )
    })
    .collect()
}

fn compile_time(c: &mut Criterion) {
    let device = Device::load("wormhole_b0").expect("wormhole_b0 exists");
    let mut group = c.benchmark_group("import_to_fused_program");
    group.sample_size(20);
    for (name, path) in model_files() {
        group.bench_function(&name, |b| {
            b.iter(|| {
                let model =
                    pipeline::load_model(Some(&path), &ImportOptions::default()).expect("imports");
                pipeline::compile(&model, &device, &OptimizeOptions::default()).expect("compiles")
            })
        });
    }
    group.finish();
}

fn compare_time(c: &mut Criterion) {
    let device = Device::load("wormhole_b0").expect("wormhole_b0 exists");
    let mut group = c.benchmark_group("compare");
    group.sample_size(10);
    for (name, path) in model_files() {
        let model = pipeline::load_model(Some(&path), &ImportOptions::default()).expect("imports");
        let compilation =
            pipeline::compile(&model, &device, &OptimizeOptions::default()).expect("compiles");
        let inputs = inputs::complete_inputs(&model.graph, BTreeMap::new(), 0);
        group.bench_function(&name, |b| {
            b.iter(|| {
                for compiled in [&compilation.unfused, &compilation.fused] {
                    pipeline::execute(compiled, &device, &inputs, &GraphHostOps, Dispatch::Traced)
                        .expect("runs");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compile_time, compare_time);
criterion_main!(benches);
