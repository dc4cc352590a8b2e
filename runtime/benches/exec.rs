//! Simulator throughput: wall time of running (functionally and with timing) a 512^3 bf16
//! matmul on one core, a GPT-2-sized fused MLP across the 8x8 grid and the calibration GEMM
//! (1024x1024x2048 on 8x8 with multicast). Each kernel is benched twice, with the timing model
//! (`<label>`) and without it (`<label>_untimed`, every cost zero), which measures what the
//! timing model adds to functional execution. Each bench also prints the simulated device time
//! and the model's effective TFLOPS once. `benches/overhead.rs` measures the same ratio as the
//! best of several alternating runs, which a loaded machine disturbs less.

use criterion::{criterion_group, criterion_main, Criterion};
use ttfuse_runtime::calibrate::{kernels, run_gemm, Calibration};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_kernel, run_kernel_untimed};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::ast::Module;
use ttfuse_runtime::ttl::parse::parse_module;

fn data(rows: usize, cols: usize, seed: u32, scale: f32) -> Tensor {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503));
            ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
        })
        .collect();
    Tensor::from_f32(rows, cols, &v)
}

fn bench_kernel(c: &mut Criterion, label: &str, module: &Module, kernel: &str, args: Vec<Tensor>) {
    let device = Device::load("wormhole_b0").expect("wormhole_b0");
    let mut once = args.clone();
    let r = run_kernel(module, kernel, &device, &mut once).expect("bench kernel runs");
    println!(
        "{label}: simulated {:.1} us ({:.0} cycles + {:.1} us dispatch), {:.2} TFLOPS, {} B DRAM",
        r.time_us,
        r.cycles,
        r.dispatch_us,
        r.flops / (r.time_us * 1e6),
        r.dram_read_bytes + r.dram_write_bytes
    );
    c.bench_function(label, |b| {
        b.iter(|| {
            let mut a = args.clone();
            run_kernel(module, kernel, &device, &mut a).expect("bench kernel runs")
        })
    });
    c.bench_function(&format!("{label}_untimed"), |b| {
        b.iter(|| {
            let mut a = args.clone();
            run_kernel_untimed(module, kernel, &device, &mut a).expect("bench kernel runs")
        })
    });
}

fn benches(c: &mut Criterion) {
    let mm = parse_module(include_str!("matmul_512.py"), "matmul_512.py").expect("parses");
    let args = vec![
        data(512, 512, 1, 2.0),
        data(512, 512, 2, 2.0),
        Tensor::zeros(512, 512),
    ];
    bench_kernel(c, "matmul_512_one_core", &mm, "matmul_512", args);

    let mlp = parse_module(include_str!("gpt2_mlp.py"), "gpt2_mlp.py").expect("parses");
    let args = vec![
        data(1024, 768, 3, 2.0),
        data(768, 3072, 4, 0.1),
        data(3072, 768, 5, 0.1),
        Tensor::zeros(1024, 768),
    ];
    bench_kernel(c, "gpt2_mlp_8x8", &mlp, "gpt2_mlp", args);

    let cal = Calibration::load("wormhole_b0").expect("calibration data");
    let row = cal
        .gemm
        .iter()
        .find(|g| (g.m, g.k, g.n) == (1024, 1024, 2048))
        .expect("the 1024x1024x2048 GEMM_FLOPS row");
    let device = Device::load("wormhole_b0").expect("wormhole_b0");
    let r = run_gemm(&device, row).expect("calibration GEMM runs");
    println!(
        "calibration GEMM 1024x1024x2048 {:?}: {:.2} TFLOPS modeled, {} published",
        row.fidelity,
        r.flops / (r.time_us * 1e6),
        row.tflops
    );
    let gemm = parse_module(&kernels::gemm(8, 8, 32, 32, 64, 8), "gemm.py").expect("parses");
    let args = vec![
        data(1024, 1024, 6, 2.0),
        data(1024, 2048, 7, 2.0),
        Tensor::zeros(1024, 2048),
    ];
    bench_kernel(c, "gemm_1024x1024x2048_8x8", &gemm, "gemm", args);
}

criterion_group! {
    name = exec;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(exec);
