//! Timing-model overhead, measured quietly: for each bench kernel, alternates timed and untimed
//! runs `ROUNDS` times (default 7, env `TTFUSE_OVERHEAD_ROUNDS`) and prints the best wall time of
//! each and the timed/untimed ratio. Best-of-N filters the load of a shared machine; alternating
//! keeps slow phases from landing on one side only. Run with
//! `cargo bench -p ttfuse-runtime --bench overhead`.

use std::time::{Duration, Instant};

use ttfuse_runtime::calibrate::kernels;
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

fn measure(label: &str, module: &Module, kernel: &str, args: &[Tensor], rounds: usize) {
    let device = Device::load("wormhole_b0").expect("wormhole_b0");
    let run = |timed: bool| {
        let mut a = args.to_vec();
        let t = Instant::now();
        if timed {
            run_kernel(module, kernel, &device, &mut a).expect("bench kernel runs");
        } else {
            run_kernel_untimed(module, kernel, &device, &mut a).expect("bench kernel runs");
        }
        t.elapsed()
    };
    run(true);
    run(false);
    let (mut timed, mut untimed) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        timed = timed.min(run(true));
        untimed = untimed.min(run(false));
    }
    println!(
        "{label}: timed {:.1} ms, untimed {:.1} ms (best of {rounds}), timing adds {:+.1}%",
        timed.as_secs_f64() * 1e3,
        untimed.as_secs_f64() * 1e3,
        (timed.as_secs_f64() / untimed.as_secs_f64() - 1.0) * 100.0
    );
}

fn main() {
    let rounds = std::env::var("TTFUSE_OVERHEAD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mm = parse_module(include_str!("matmul_512.py"), "matmul_512.py").expect("parses");
    let args = [
        data(512, 512, 1, 2.0),
        data(512, 512, 2, 2.0),
        Tensor::zeros(512, 512),
    ];
    measure("matmul_512_one_core", &mm, "matmul_512", &args, rounds);

    let mlp = parse_module(include_str!("gpt2_mlp.py"), "gpt2_mlp.py").expect("parses");
    let args = [
        data(1024, 768, 3, 2.0),
        data(768, 3072, 4, 0.1),
        data(3072, 768, 5, 0.1),
        Tensor::zeros(1024, 768),
    ];
    measure("gpt2_mlp_8x8", &mlp, "gpt2_mlp", &args, rounds);

    let gemm = parse_module(&kernels::gemm(8, 8, 32, 32, 64, 8), "gemm.py").expect("parses");
    let args = [
        data(1024, 1024, 6, 2.0),
        data(1024, 2048, 7, 2.0),
        Tensor::zeros(1024, 2048),
    ];
    measure("gemm_1024x1024x2048_8x8", &gemm, "gemm", &args, rounds);
}
