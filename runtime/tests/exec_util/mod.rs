//! Helpers shared by the executor tests: deterministic data, parsing and running kernels, and
//! comparison against independent f32 computations.
#![allow(dead_code)]

use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_kernel, ExecError, KernelReport};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::parse_module;

/// The Wormhole n150 target.
pub fn wormhole() -> Device {
    Device::load("wormhole_b0").expect("wormhole_b0 loads")
}

/// Deterministic pseudo-random values in [lo, hi), rounded to bf16.
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f32) / ((1u64 << 24) as f32);
            bf(lo + (hi - lo) * u)
        })
        .collect()
}

/// A tensor of deterministic values in [lo, hi).
pub fn tensor(rows: usize, cols: usize, seed: u64, lo: f32, hi: f32) -> Tensor {
    Tensor::from_f32(rows, cols, &values(rows * cols, seed, lo, hi))
}

/// A tensor filled with `v`.
pub fn filled(rows: usize, cols: usize, v: f32) -> Tensor {
    Tensor::from_f32(rows, cols, &vec![v; rows * cols])
}

/// Rounds to bf16 and back.
pub fn bf(v: f32) -> f32 {
    half::bf16::from_f32(v).to_f32()
}

/// Parses `src` and runs kernel `name` on Wormhole.
pub fn run(src: &str, name: &str, args: &mut [Tensor]) -> Result<KernelReport, ExecError> {
    let module = parse_module(src, "test.py").expect("test kernel parses");
    run_kernel(&module, name, &wormhole(), args)
}

/// Row-major f32 matmul of `a` (m x k) and `b` (k x n).
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j];
            }
        }
    }
    c
}

/// Asserts every element of `got` is within `abs + rel * |want|` of `want`.
pub fn assert_close(got: &Tensor, want: &[f32], abs: f32, rel: f32) {
    let g = got.to_f32();
    assert_eq!(g.len(), want.len(), "element count");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        let tol = abs + rel * b.abs();
        assert!(
            (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
            "element {i} (row {}, col {}): got {a}, want {b}",
            i / got.cols,
            i % got.cols
        );
    }
}

/// The error message of a failing run.
pub fn err_of(src: &str, name: &str, args: &mut [Tensor]) -> String {
    match run(src, name, args) {
        Ok(_) => panic!("kernel `{name}` was expected to fail"),
        Err(e) => e.to_string(),
    }
}

/// A one-core kernel `k(<inputs>, out)` that reads each input `(tensor, block, (rows, cols))`
/// whole into its own CB `<tensor>_cb` of that block shape, stores `expr` (with each input's
/// block bound to its name and `out`'s reserved block to `o`) into `out` (`out_shape` tiles) and
/// writes it back. Every CB holds `factor` blocks.
pub fn one_block_kernel(
    inputs: &[(&str, &str, (usize, usize))],
    out_shape: (usize, usize),
    factor: usize,
    expr: &str,
) -> String {
    let params: Vec<&str> = inputs.iter().map(|(t, _, _)| *t).collect();
    let params = params.join(", ");
    let (or, oc) = out_shape;
    let mut cbs = String::new();
    let mut waits = String::new();
    let mut reads = String::new();
    for (t, b, (r, c)) in inputs {
        cbs += &format!(
            "    {t}_cb = ttl.make_circular_buffer_like({t}, shape=({r}, {c}), buffer_factor={factor})\n"
        );
        waits += &format!("{t}_cb.wait() as {b}, ");
        reads += &format!(
            "        with {t}_cb.reserve() as blk:\n            tx = ttl.copy({t}[0:{r}, 0:{c}], blk)\n            tx.wait()\n"
        );
    }
    format!(
        r#"
import ttl

@ttl.kernel(grid=(1, 1))
def k({params}, out):
{cbs}    out_cb = ttl.make_circular_buffer_like(out, shape=({or}, {oc}), buffer_factor={factor})

    @ttl.compute()
    def compute():
        with {waits}out_cb.reserve() as o:
            o.store({expr})

    @ttl.datamovement()
    def dm_read():
{reads}
    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:{or}, 0:{oc}])
            tx.wait()
"#
    )
}

/// [`one_block_kernel`] on `r x c`-tile blocks with input `x` bound to `a`.
pub fn unary_kernel(r: usize, c: usize, expr: &str) -> String {
    one_block_kernel(&[("x", "a", (r, c))], (r, c), 2, expr)
}

/// [`one_block_kernel`] on `r x c`-tile blocks with inputs `x` and `y` bound to `a` and `b`.
pub fn binary_kernel(r: usize, c: usize, expr: &str) -> String {
    one_block_kernel(&[("x", "a", (r, c)), ("y", "b", (r, c))], (r, c), 2, expr)
}
