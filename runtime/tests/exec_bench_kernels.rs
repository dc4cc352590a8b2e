//! The benchmark kernels (runtime/benches/*.py) compute what they claim.

mod exec_util;

use exec_util::*;
use ttfuse_runtime::tensor::Tensor;

#[test]
fn matmul_512_bench_kernel() {
    let a = tensor(512, 512, 1, -1.0, 1.0);
    let b = tensor(512, 512, 2, -1.0, 1.0);
    let mut args = [a.clone(), b.clone(), Tensor::zeros(512, 512)];
    let r = run(
        include_str!("../benches/matmul_512.py"),
        "matmul_512",
        &mut args,
    )
    .unwrap();
    let want = matmul(&a.to_f32(), &b.to_f32(), 512, 512, 512);
    assert_close(&args[2], &want, 0.05, 0.01);
    assert_eq!(r.flops, 2.0 * 512.0 * 512.0 * 512.0);
}

#[test]
fn gpt2_mlp_bench_kernel() {
    let x = tensor(1024, 768, 3, -1.0, 1.0);
    let w_fc = tensor(768, 3072, 4, -0.05, 0.05);
    let w_proj = tensor(3072, 768, 5, -0.05, 0.05);
    let mut args = [
        x.clone(),
        w_fc.clone(),
        w_proj.clone(),
        Tensor::zeros(1024, 768),
    ];
    let r = run(
        include_str!("../benches/gpt2_mlp.py"),
        "gpt2_mlp",
        &mut args,
    )
    .unwrap();
    let h: Vec<f32> = matmul(&x.to_f32(), &w_fc.to_f32(), 1024, 768, 3072)
        .iter()
        .map(|v| v.max(0.0).powi(2))
        .collect();
    let want = matmul(&h, &w_proj.to_f32(), 1024, 3072, 768);
    let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close(&args[3], &want, 0.01 * peak, 0.02);
    assert_eq!(r.cores.len(), 64);
    assert_eq!(r.noc_bytes, 8 * 7 * 96 * 2048);
}
