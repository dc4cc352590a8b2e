//! Each TT-Lang block op run on the executor and checked against an independent f32
//! computation of the guide's semantics.

mod exec_util;

use exec_util::*;
use ttfuse_runtime::tensor::Tensor;

fn unary_case(expr: &str, lo: f32, hi: f32, f: impl Fn(f32) -> f32, rel: f32) {
    let x = tensor(64, 96, 7, lo, hi);
    let mut args = [x.clone(), Tensor::zeros(64, 96)];
    run(&unary_kernel(2, 3, expr), "k", &mut args).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let want: Vec<f32> = x.to_f32().iter().map(|&v| bf(f(v))).collect();
    assert_close(&args[1], &want, 1e-6, rel);
}

#[test]
fn unary_functions_match_f32() {
    unary_case("ttl.math.exp(a)", -2.0, 2.0, f32::exp, 0.008);
    unary_case("ttl.math.log(a)", 0.1, 4.0, f32::ln, 0.008);
    unary_case("ttl.math.sqrt(a)", 0.0, 4.0, f32::sqrt, 0.008);
    unary_case("ttl.math.rsqrt(a)", 0.1, 4.0, |v| 1.0 / v.sqrt(), 0.008);
    unary_case("ttl.math.recip(a)", 0.5, 4.0, |v| 1.0 / v, 0.008);
    unary_case("ttl.math.tanh(a)", -3.0, 3.0, f32::tanh, 0.008);
    unary_case(
        "ttl.math.sigmoid(a)",
        -4.0,
        4.0,
        |v| 1.0 / (1.0 + (-v).exp()),
        0.008,
    );
    unary_case("ttl.math.relu(a)", -1.0, 1.0, |v| v.max(0.0), 0.0);
    unary_case("ttl.math.abs(a)", -1.0, 1.0, f32::abs, 0.0);
    unary_case("ttl.math.neg(a)", -1.0, 1.0, |v| -v, 0.0);
    unary_case("-a", -1.0, 1.0, |v| -v, 0.0);
    unary_case("ttl.math.floor(a)", -5.0, 5.0, f32::floor, 0.0);
    unary_case("ttl.power(a, 3)", -2.0, 2.0, |v| v * v * v, 0.008);
}

fn binary_case(expr: &str, f: impl Fn(f32, f32) -> f32, rel: f32) {
    let x = tensor(32, 64, 1, -2.0, 2.0);
    let y = tensor(32, 64, 2, 0.5, 2.0);
    let mut args = [x.clone(), y.clone(), Tensor::zeros(32, 64)];
    run(&binary_kernel(1, 2, expr), "k", &mut args).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let want: Vec<f32> = x
        .to_f32()
        .iter()
        .zip(y.to_f32())
        .map(|(&a, b)| bf(f(a, b)))
        .collect();
    assert_close(&args[2], &want, 1e-6, rel);
}

#[test]
fn binary_ops_match_f32() {
    binary_case("a + b", |a, b| a + b, 0.0);
    binary_case("a - b", |a, b| a - b, 0.0);
    binary_case("a * b", |a, b| a * b, 0.0);
    binary_case("a / b", |a, b| a / b, 0.0);
    binary_case("ttl.math.max(a, b)", f32::max, 0.0);
    binary_case("ttl.math.min(a, b)", f32::min, 0.0);
    // A fused chain is computed in f32 and rounded once, at the store.
    binary_case(
        "ttl.math.relu(ttl.math.exp(a) + b) * a",
        |a, b| (a.exp() + b).max(0.0) * a,
        0.0,
    );
}

#[test]
fn matmul_accumulates_multi_tile_blocks_into_its_third_argument() {
    // a: 2x3 tiles, b: 3x2 tiles; c is a waited block of ones, so the result is ones + a@b.
    let src = one_block_kernel(
        &[
            ("a", "av", (2, 3)),
            ("b", "bv", (3, 2)),
            ("c", "cv", (2, 2)),
        ],
        (2, 2),
        1,
        "ttl.math.matmul(av, bv, cv)",
    );
    let a = tensor(64, 96, 3, -1.0, 1.0);
    let b = tensor(96, 64, 4, -1.0, 1.0);
    let mut args = [
        a.clone(),
        b.clone(),
        filled(64, 64, 1.0),
        Tensor::zeros(64, 64),
    ];
    let r = run(&src, "k", &mut args).unwrap();
    let want: Vec<f32> = matmul(&a.to_f32(), &b.to_f32(), 64, 96, 64)
        .iter()
        .map(|v| bf(v + 1.0))
        .collect();
    assert_close(&args[3], &want, 1e-3, 0.008);
    assert_eq!(r.flops, 2.0 * 64.0 * 96.0 * 64.0);
}

#[test]
fn matmul_into_a_fresh_reserved_block_starts_from_zero() {
    let src = unary_kernel(2, 2, "ttl.math.matmul(a, a, o)");
    let x = tensor(64, 64, 5, -1.0, 1.0);
    let mut args = [x.clone(), Tensor::zeros(64, 64)];
    run(&src, "k", &mut args).unwrap();
    let want: Vec<f32> = matmul(&x.to_f32(), &x.to_f32(), 64, 64, 64)
        .iter()
        .map(|&v| bf(v))
        .collect();
    assert_close(&args[1], &want, 1e-3, 0.008);
}

#[test]
fn transpose_of_a_non_square_block_transposes_every_element() {
    let src = r#"
import ttl

@ttl.kernel(grid=(1, 1))
def tr(x, out):
    inp_cb = ttl.make_circular_buffer_like(x, shape=(4, 2), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(2, 4), buffer_factor=2)

    @ttl.compute()
    def compute():
        with inp_cb.wait() as v, out_cb.reserve() as o:
            result = ttl.transpose(v, o)
            o.store(result)

    @ttl.datamovement()
    def dm_read():
        with inp_cb.reserve() as blk:
            tx = ttl.copy(x[0:4, 0:2], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:2, 0:4])
            tx.wait()
"#;
    let x = tensor(128, 64, 9, -1.0, 1.0);
    let mut args = [x.clone(), Tensor::zeros(64, 128)];
    run(src, "tr", &mut args).unwrap();
    let xv = x.to_f32();
    let want: Vec<f32> = (0..64 * 128)
        .map(|i| xv[(i % 128) * 64 + i / 128])
        .collect();
    assert_close(&args[1], &want, 0.0, 0.0);
}

/// A kernel reducing a 2x3-tile block with a scaler tile into an `out_shape` block.
fn reduce_kernel(op: &str, dims: &str, out_shape: (usize, usize)) -> String {
    let (orr, oc) = out_shape;
    format!(
        r#"
import ttl

@ttl.kernel(grid=(1, 1))
def red(x, scaler, out):
    x_cb = ttl.make_circular_buffer_like(x, shape=(2, 3), buffer_factor=2)
    s_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=({orr}, {oc}), buffer_factor=2)

    @ttl.compute()
    def compute():
        with x_cb.wait() as i, s_cb.wait() as s, out_cb.reserve() as o:
            o.store(ttl.math.{op}(i, s, o, dims={dims}))

    @ttl.datamovement()
    def dm_read():
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:2, 0:3], blk)
            tx.wait()
        with s_cb.reserve() as blk:
            tx = ttl.copy(scaler[0, 0], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:{orr}, 0:{oc}])
            tx.wait()
"#
    )
}

#[test]
fn reduce_keeps_rows_cols_or_scalar_and_applies_the_scaler() {
    let x = tensor(64, 96, 11, -1.0, 1.0);
    let xv = x.to_f32();
    // A non-uniform scaler shows the elementwise multiplication of the result tile.
    let sv: Vec<f32> = (0..1024).map(|i| bf(0.5 + (i % 7) as f32 * 0.25)).collect();
    let scaler = Tensor::from_f32(32, 32, &sv);
    for (op, is_sum) in [("reduce_sum", true), ("reduce_max", false)] {
        let fold = |vals: &mut dyn Iterator<Item = f32>| -> f32 {
            if is_sum {
                vals.sum()
            } else {
                vals.fold(f32::NEG_INFINITY, f32::max)
            }
        };
        // dims=[0]: per-row results in column 0 of a 2x1-tile block.
        let mut args = [x.clone(), scaler.clone(), filled(64, 32, 9.0)];
        run(&reduce_kernel(op, "[0]", (2, 1)), "red", &mut args).unwrap();
        let mut want = vec![0.0f32; 64 * 32];
        for i in 0..64 {
            want[i * 32] = bf(fold(&mut (0..96).map(|j| xv[i * 96 + j])) * sv[(i % 32) * 32]);
        }
        assert_close(&args[2], &want, 1e-3, 0.01);

        // dims=[1]: per-column results in row 0 of a 1x3-tile block.
        let mut args = [x.clone(), scaler.clone(), filled(32, 96, 9.0)];
        run(&reduce_kernel(op, "[1]", (1, 3)), "red", &mut args).unwrap();
        let mut want = vec![0.0f32; 32 * 96];
        for j in 0..96 {
            want[j] = bf(fold(&mut (0..64).map(|i| xv[i * 96 + j])) * sv[j % 32]);
        }
        assert_close(&args[2], &want, 1e-3, 0.01);

        // dims=[0, 1]: one scalar at [0, 0].
        let mut args = [x.clone(), scaler.clone(), filled(32, 32, 9.0)];
        run(&reduce_kernel(op, "[0, 1]", (1, 1)), "red", &mut args).unwrap();
        let mut want = vec![0.0f32; 32 * 32];
        want[0] = bf(fold(&mut xv.iter().copied()) * sv[0]);
        assert_close(&args[2], &want, 1e-2, 0.01);
    }
}

#[test]
fn reduce_into_a_wrong_out_shape_is_a_shape_error() {
    let mut args = [
        tensor(64, 96, 1, 0.0, 1.0),
        filled(32, 32, 1.0),
        Tensor::zeros(64, 96),
    ];
    let e = err_of(
        &reduce_kernel("reduce_sum", "[0]", (2, 3)),
        "red",
        &mut args,
    );
    assert!(
        e.contains("shape mismatch") && e.contains("gives 2x1 tiles"),
        "{e}"
    );
}

fn broadcast_kernel(dims: &str, in_shape: (usize, usize)) -> String {
    let (r, c) = in_shape;
    format!(
        r#"
import ttl

@ttl.kernel(grid=(1, 1))
def bc(x, out):
    x_cb = ttl.make_circular_buffer_like(x, shape=({r}, {c}), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(2, 3), buffer_factor=2)

    @ttl.compute()
    def compute():
        with x_cb.wait() as v, out_cb.reserve() as o:
            o.store(ttl.math.broadcast(v, o, dims={dims}))

    @ttl.datamovement()
    def dm_read():
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:{r}, 0:{c}], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:2, 0:3])
            tx.wait()
"#
    )
}

#[test]
fn broadcast_copies_column_0_row_0_or_element_0() {
    // dims=[1]: column 0 of a 2x1-tile block across all 96 columns.
    let x = tensor(64, 32, 21, -1.0, 1.0);
    let xv = x.to_f32();
    let mut args = [x.clone(), Tensor::zeros(64, 96)];
    run(&broadcast_kernel("[1]", (2, 1)), "bc", &mut args).unwrap();
    let want: Vec<f32> = (0..64 * 96).map(|i| xv[(i / 96) * 32]).collect();
    assert_close(&args[1], &want, 0.0, 0.0);

    // dims=[0]: row 0 of a 1x3-tile block down all 64 rows.
    let x = tensor(32, 96, 22, -1.0, 1.0);
    let xv = x.to_f32();
    let mut args = [x.clone(), Tensor::zeros(64, 96)];
    run(&broadcast_kernel("[0]", (1, 3)), "bc", &mut args).unwrap();
    let want: Vec<f32> = (0..64 * 96).map(|i| xv[i % 96]).collect();
    assert_close(&args[1], &want, 0.0, 0.0);

    // dims=[0, 1]: element [0, 0] everywhere.
    let x = tensor(32, 32, 23, -1.0, 1.0);
    let v0 = x.to_f32()[0];
    let mut args = [x, Tensor::zeros(64, 96)];
    run(&broadcast_kernel("[0, 1]", (1, 1)), "bc", &mut args).unwrap();
    assert_close(&args[1], &vec![v0; 64 * 96], 0.0, 0.0);

    // A 1x3 input cannot be broadcast along columns.
    let mut args = [tensor(32, 96, 1, 0.0, 1.0), Tensor::zeros(64, 96)];
    let e = err_of(&broadcast_kernel("[1]", (1, 3)), "bc", &mut args);
    assert!(e.contains("copied across columns"), "{e}");
}

#[test]
fn multicore_streaming_kernel_covers_every_tile() {
    // 2x2 grid, each core streams 2x2 blocks of 1x2 tiles of a 128x256 tensor through a
    // double-buffered CB with loops and index arithmetic.
    let src = r#"
import ttl

ROWS_PER_CORE = 2
BLOCKS = 2

@ttl.kernel(grid=(2, 2))
def stream(inp, bias, out):
    inp_cb = ttl.make_circular_buffer_like(inp, shape=(1, 2), buffer_factor=2)
    bias_cb = ttl.make_circular_buffer_like(bias, shape=(1, 2), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(1, 2), buffer_factor=2)
    PER_CORE = ROWS_PER_CORE * BLOCKS

    @ttl.compute()
    def compute():
        for _ in range(PER_CORE):
            with inp_cb.wait() as i, bias_cb.wait() as b, out_cb.reserve() as o:
                o.store(ttl.math.exp(i) + b)

    @ttl.datamovement()
    def dm_read():
        x, y = ttl.core(dims=2)
        for r in range(ROWS_PER_CORE):
            for blk_idx in range(BLOCKS):
                row = y * ROWS_PER_CORE + r
                col = x * 4 + blk_idx * 2
                with inp_cb.reserve() as blk:
                    tx = ttl.copy(inp[row, col:col + 2], blk)
                    tx.wait()
                with bias_cb.reserve() as blk:
                    tx = ttl.copy(bias[row:row + 1, col:col + 2], blk)
                    tx.wait()

    @ttl.datamovement()
    def dm_write():
        x, y = ttl.core(dims=2)
        for r in range(ROWS_PER_CORE):
            for blk_idx in range(BLOCKS):
                row = y * ROWS_PER_CORE + r
                col = x * 4 + blk_idx * 2
                with out_cb.wait() as blk:
                    tx = ttl.copy(blk, out[row:row + 1, col:col + 2])
                    tx.wait()
"#;
    let inp = tensor(128, 256, 31, -1.0, 1.0);
    let bias = tensor(128, 256, 32, -1.0, 1.0);
    let mut args = [inp.clone(), bias.clone(), Tensor::zeros(128, 256)];
    let r = run(src, "stream", &mut args).unwrap();
    let want: Vec<f32> = inp
        .to_f32()
        .iter()
        .zip(bias.to_f32())
        .map(|(&a, b)| bf(a.exp() + b))
        .collect();
    assert_close(&args[2], &want, 1e-6, 0.008);
    assert_eq!(r.cores.len(), 4);
    assert_eq!(r.dram_read_bytes, 2 * 128 * 256 * 2);
    assert_eq!(r.dram_write_bytes, 128 * 256 * 2);
}

#[test]
fn explicit_pop_push_and_values_kept_across_nested_withs() {
    let src = r#"
import ttl

@ttl.kernel(grid=(1, 1))
def k(x, y, out):
    x_cb = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=2)
    y_cb = ttl.make_circular_buffer_like(y, shape=(1, 1), buffer_factor=2)
    t_cb = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        xv = x_cb.wait()
        with y_cb.wait() as yv:
            with t_cb.reserve() as t:
                t.store(xv * yv)
            with t_cb.wait() as tv:
                o = out_cb.reserve()
                if True and not False:
                    o.store(tv + xv)
                else:
                    o.store(tv)
                out_cb.push()
        x_cb.pop()

    @ttl.datamovement()
    def dm_read():
        blk = x_cb.reserve()
        tx = ttl.copy(x[0, 0], blk)
        tx.wait()
        x_cb.push()
        with y_cb.reserve() as blk:
            tx = ttl.copy(y[0, 0], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0, 0])
            tx.wait()
"#;
    let x = tensor(32, 32, 41, -2.0, 2.0);
    let y = tensor(32, 32, 42, -2.0, 2.0);
    let mut args = [x.clone(), y.clone(), Tensor::zeros(32, 32)];
    run(src, "k", &mut args).unwrap();
    // t is stored (rounded to bf16) before it is added to x.
    let want: Vec<f32> = x
        .to_f32()
        .iter()
        .zip(y.to_f32())
        .map(|(&a, b)| bf(bf(a * b) + a))
        .collect();
    assert_close(&args[2], &want, 0.0, 0.0);
}

#[test]
fn ttl_where_selects_per_element_and_warns_that_the_guide_calls_it_broken() {
    // The condition is zero on every third element and a nonzero value of either sign elsewhere.
    let cond: Vec<f32> = values(32 * 64, 51, -2.0, 2.0)
        .iter()
        .enumerate()
        .map(|(i, &v)| match (i % 3, v == 0.0) {
            (0, _) => 0.0,
            (_, true) => 1.0,
            _ => v,
        })
        .collect();
    let x = Tensor::from_f32(32, 64, &cond);
    let y = tensor(32, 64, 52, -2.0, 2.0);
    let want: Vec<f32> = cond
        .iter()
        .zip(y.to_f32())
        .map(|(&c, b)| if c != 0.0 { b } else { -b })
        .collect();
    // The guide's spelling and the TT-Lang specification's.
    for f in ["ttl.where", "ttl.math.where"] {
        let mut args = [x.clone(), y.clone(), Tensor::zeros(32, 64)];
        let src = binary_kernel(1, 2, &format!("{f}(a, b, ttl.math.neg(b))"));
        let r = run(&src, "k", &mut args).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_close(&args[2], &want, 0.0, 0.0);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        let w = &r.warnings[0];
        assert!(
            w.starts_with("kernel `k`, thread `compute`, line 13: `ttl.where` is called broken"),
            "{w}"
        );
    }
    // Operands of different shapes are an error.
    let src = binary_kernel(1, 2, "ttl.where(a, b, a)")
        .replace("y, shape=(1, 2)", "y, shape=(1, 1)")
        .replace("y[0:1, 0:2]", "y[0:1, 0:1]");
    let mut args = [x, y, Tensor::zeros(32, 64)];
    let e = run(&src, "k", &mut args).unwrap_err().to_string();
    assert!(
        e.contains("line 13")
            && e.contains("on blocks of 1x2, 1x1 and 1x2 tiles: shapes must match"),
        "{e}"
    );
}

#[test]
fn core_dims_1_is_the_linear_index_and_dims_3_pads_a_zero() {
    // Grid 4x2: the reader takes tile [y + z, x] of a 2x4-tile tensor with `ttl.core(dims=3)`,
    // the writer puts it at tile [0, i] of a 1x8-tile tensor with `i = ttl.core(dims=1)`. With
    // i = x + 4 * y (the TT-Lang specification's flattening), out is x's tile rows side by side.
    let src = r#"
import ttl

@ttl.kernel(grid=(4, 2))
def k(x, out):
    x_cb = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        with x_cb.wait() as a, out_cb.reserve() as o:
            o.store(ttl.math.abs(a))

    @ttl.datamovement()
    def dm_read():
        cx, cy, cz = ttl.core(dims=3)
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[cy + cz, cx], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        i = ttl.core(dims=1)
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0, i])
            tx.wait()
"#;
    let x = tensor(64, 128, 61, -2.0, 2.0);
    let mut args = [x.clone(), Tensor::zeros(32, 256)];
    run(src, "k", &mut args).unwrap();
    let xv = x.to_f32();
    let mut want = vec![0.0f32; 32 * 256];
    for i in 0..8 {
        for r in 0..32 {
            for c in 0..32 {
                let src = (32 * (i / 4) + r) * 128 + 32 * (i % 4) + c;
                want[r * 256 + 32 * i + c] = xv[src].abs();
            }
        }
    }
    assert_close(&args[1], &want, 0.0, 0.0);
}
