//! A chained product's columns split over cores (`plan::wide`): a norm fused into the
//! projection after it recomputes its rows on every core and multiplies by that core's chunk of
//! columns. Every split kernel is checked against the reference interpreter.

mod lower_common;

use lower_common::{binary, constant, device, matmul, output, run_checked, unary};
use ttfuse::graph::{BinaryOp, Graph, Op, UnaryOp};
use ttfuse::lower::FusionMode;
use ttfuse::plan::PlannedKernel;
use ttfuse_runtime::ttl::print::print_kernel;

/// `gelu(layernorm(h) @ w + b)` for `h = x + r`, x and r [rows, 128], w [128, cols]; with
/// `residual_out` h is a graph output too (a residual stream the block passes on).
fn norm_projection(rows: usize, cols: usize, residual_out: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", lower_common::f32t(&[rows, 128]));
    let r = g.add_input("r", lower_common::f32t(&[rows, 128]));
    let h = binary(&mut g, "h", BinaryOp::Add, x, r);
    let gamma = constant(&mut g, "gamma", &[128], 1, 0.5);
    let beta = constant(&mut g, "beta", &[128], 2, 0.5);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        lower_common::f32t(&[rows, 128]),
        &[h, gamma, beta],
    );
    let w = constant(&mut g, "w", &[128, cols], 3, 0.1);
    let b = constant(&mut g, "b", &[cols], 4, 0.1);
    let p = matmul(&mut g, "p", ln, w);
    let pb = binary(&mut g, "pb", BinaryOp::Add, p, b);
    let y = unary(&mut g, "y", UnaryOp::Gelu, pb);
    output(&mut g, "y", y);
    if residual_out {
        output(&mut g, "h", h);
    }
    g
}

/// The fused kernel that computes node `node`.
fn kernel_of<'a>(kernels: &'a [PlannedKernel], node: &str) -> &'a PlannedKernel {
    kernels
        .iter()
        .find(|k| k.nodes.iter().any(|n| n == node))
        .unwrap_or_else(|| panic!("no kernel computes {node}"))
}

#[test]
fn a_norm_fuses_into_a_wider_projection_split_over_the_grid() {
    let g = norm_projection(64, 384, false);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let k = &c.plan.kernels[0];
    let chunk = k.partition.wide.expect("the product's columns are split");
    assert_eq!(
        k.partition.col_blocks * chunk,
        384 / 32,
        "{}",
        k.partition_summary
    );
    assert!(k.partition.cores_used > 2, "{}", k.partition_summary);
    assert!(print_kernel(&c.program.kernels[0]).contains("wide_col"));
}

#[test]
fn a_projection_as_wide_as_the_norm_splits_and_writes_the_residual_once() {
    // The product is as wide as the kernel's rows (class Full before the split), and the
    // residual h, a graph output too, is written by the first chunk's blocks only.
    let g = norm_projection(64, 128, true);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let k = kernel_of(&c.plan.kernels, "p");
    assert!(k.nodes.iter().any(|n| n == "h"), "{:?}", k.nodes);
    let chunk = k.partition.wide.expect("the product's columns are split");
    let tile_bytes = 32 * 32 * 2;
    let h_bytes = (64 / 32) * (128 / 32) * tile_bytes;
    let y_bytes = h_bytes;
    assert_eq!(
        k.dram_write_bytes,
        (h_bytes + y_bytes) as u64,
        "{}: chunks of {chunk}",
        k.partition_summary
    );
    let text = print_kernel(&c.program.kernels[0]);
    assert!(text.contains("if wide_col < 1:"), "{text}");
}

#[test]
fn a_norm_and_the_two_products_of_a_gated_mlp_split_together() {
    // silu(rms(x) @ w1) * (rms(x) @ w3): both products of the norm chain into its kernel, and
    // each block takes the same chunk of both.
    let mut g = Graph::new();
    let x = g.add_input("x", lower_common::f32t(&[64, 128]));
    let gamma = constant(&mut g, "gamma", &[128], 1, 0.5);
    let rms = g.add(
        "rms",
        Op::RmsNorm { eps: 1e-6 },
        lower_common::f32t(&[64, 128]),
        &[x, gamma],
    );
    let w1 = constant(&mut g, "w1", &[128, 256], 2, 0.1);
    let w3 = constant(&mut g, "w3", &[128, 256], 3, 0.1);
    let h1 = matmul(&mut g, "h1", rms, w1);
    let act = unary(&mut g, "act", UnaryOp::Silu, h1);
    let h3 = matmul(&mut g, "h3", rms, w3);
    let y = binary(&mut g, "y", BinaryOp::Mul, act, h3);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.breaks);
    let k = &c.plan.kernels[0];
    assert!(k.partition.wide.is_some(), "{}", k.partition_summary);
    let text = print_kernel(&c.program.kernels[0]);
    for w in ["w1", "w3"] {
        assert!(
            text.contains(&format!("ttl.copy({w}[0:4, wide_col:wide_col + ")),
            "{w} is not read by chunk:\n{text}"
        );
    }
}

#[test]
fn an_epilogue_reading_the_norm_itself_is_not_split() {
    // y = ln(x) @ w + ln(x): the epilogue needs the norm's columns of its chunk, which the
    // kernel holds only as whole rows, so the product keeps its columns together.
    let mut g = Graph::new();
    let x = g.add_input("x", lower_common::f32t(&[64, 128]));
    let gamma = constant(&mut g, "gamma", &[128], 1, 0.5);
    let beta = constant(&mut g, "beta", &[128], 2, 0.5);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        lower_common::f32t(&[64, 128]),
        &[x, gamma, beta],
    );
    let w = constant(&mut g, "w", &[128, 128], 3, 0.1);
    let p = matmul(&mut g, "p", ln, w);
    let y = binary(&mut g, "y", BinaryOp::Add, p, ln);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    for k in &c.plan.kernels {
        assert!(
            k.partition.wide.is_none(),
            "{}: {}",
            k.name,
            k.partition_summary
        );
    }
}

#[test]
fn unfused_programs_never_split_products() {
    let g = norm_projection(64, 384, true);
    let c = run_checked(&g, &device(), FusionMode::Unfused);
    assert!(c.plan.kernels.iter().all(|k| k.partition.wide.is_none()));
}
