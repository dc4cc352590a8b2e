//! Compile time of a 12-layer GPT-2-small-sized graph: import, optimize, lower (fused) and print
//! every kernel as TT-Lang, each phase also timed on its own.
//!
//! The model is not committed (341 MB); make it first with
//! `/work/pyenv/bin/python models/make_gpt2_blocks.py` (needs torch).
//! Run: `cargo bench --bench gpt2_compile`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ttfuse::import::ImportOptions;
use ttfuse::lower::{self, FusionMode};
use ttfuse::optimize::{self, OptimizeOptions};
use ttfuse::pipeline;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::ttl::print::print_kernel;

fn model_path() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-models/gpt2_small_blocks.onnx");
    if !path.exists() {
        panic!(
            "{} is absent: make it with `/work/pyenv/bin/python models/make_gpt2_blocks.py` \
             (needs torch)",
            path.display()
        );
    }
    path
}

/// Import, optimize, fused lowering and printing every kernel; returns the printed bytes.
fn compile_once(path: &Path, device: &Device, opts: &OptimizeOptions) -> usize {
    let model = pipeline::load_model(Some(path), &ImportOptions::default()).expect("imports");
    let optimized = optimize::optimize(&model.graph, opts).expect("optimizes");
    let fused = lower::compile(&optimized.graph, device, FusionMode::Fused).expect("lowers");
    fused
        .program
        .kernels
        .iter()
        .map(|k| print_kernel(k).len())
        .sum()
}

fn gpt2_small_compile(c: &mut Criterion) {
    let path = model_path();
    let device = Device::load("wormhole_b0").expect("wormhole_b0 exists");
    let opts = OptimizeOptions {
        cost: optimize::cost::CostModel::from_device(&device),
        ..OptimizeOptions::default()
    };

    let t = Instant::now();
    let model = pipeline::load_model(Some(&path), &ImportOptions::default()).expect("imports");
    let import = t.elapsed();
    let t = Instant::now();
    let optimized = optimize::optimize(&model.graph, &opts).expect("optimizes");
    let opt = t.elapsed();
    let t = Instant::now();
    let fused = lower::compile(&optimized.graph, &device, FusionMode::Fused).expect("lowers");
    let low = t.elapsed();
    let t = Instant::now();
    let printed: usize = fused
        .program
        .kernels
        .iter()
        .map(|k| print_kernel(k).len())
        .sum();
    let print = t.elapsed();
    eprintln!(
        "phases: import {import:?}, optimize {opt:?}, lower (plan + emit) {low:?}, print {print:?}; \
         {} kernels, {printed} bytes of TT-Lang",
        fused.program.kernels.len()
    );
    for s in &optimized.report.stages {
        eprintln!(
            "  stage {}: {} iterations, {} e-nodes, {}",
            s.name, s.iterations, s.egraph_nodes, s.stop_reason
        );
    }

    let mut group = c.benchmark_group("gpt2_small_blocks");
    group.sample_size(10);
    group.bench_function("import_to_printed_kernels", |b| {
        b.iter(|| compile_once(&path, &device, &opts))
    });
    group.finish();
}

criterion_group!(benches, gpt2_small_compile);
criterion_main!(benches);
