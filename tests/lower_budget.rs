//! Partitioning under the core's limits: K streamed when operands do not fit, single buffering
//! when double buffering does not fit, guarded loops when blocks do not divide over the grid,
//! and clear errors when nothing fits.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph, UnaryOp};
use ttfuse::lower::{compile, FusionMode};

fn long_k_matmul() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 1024]));
    let w = constant(&mut g, "w", &[1024, 64], 11, 0.05);
    let b = constant(&mut g, "b", &[64], 12, 0.1);
    let m = matmul(&mut g, "mm", x, w);
    let a = binary(&mut g, "biased", BinaryOp::Add, m, b);
    let y = unary(&mut g, "y", UnaryOp::Relu, a);
    output(&mut g, "y", y);
    g
}

#[test]
fn k_is_streamed_in_chunks_when_operands_do_not_fit() {
    let dev = small_l1_device(16 * 1024);
    let c = run_checked(&long_k_matmul(), &dev, FusionMode::Fused);
    assert_within_limits(&c.plan);
    let k = &c.plan.kernels[0];
    assert_eq!(c.plan.kernels.len(), 1);
    assert!(
        k.partition.k_chunks > 1,
        "K is streamed: {}",
        k.partition_summary
    );
    // K in chunks, in each part of K when it is split over the grid's rows (a product of 2 row
    // tiles leaves most grid rows free).
    let p = &k.partition;
    assert_eq!(p.k_chunks * p.k_block.unwrap_or(0) * p.k_split, 1024 / 32);
    // Each chunk's product is one compute stage: the first chunk's into the running sum, every
    // later chunk's with the running sum added after the matmul (first chunk, loop, last), on
    // the first part's cores and on the others'.
    let source = ttfuse_runtime::ttl::print::print_kernel(&c.program.kernels[0]);
    let products: Vec<&str> = source
        .lines()
        .filter(|l| l.contains(".store(ttl.math.matmul("))
        .collect();
    let copies = if p.k_split > 1 { 2 } else { 1 };
    assert_eq!(products.len(), 3 * copies, "{source}");
    let summed = products.iter().filter(|l| l.ends_with("_acc_v)")).count();
    assert_eq!(summed, 2 * copies, "{source}");
    // With the full L1 the planner takes more room than the small budget has: the budget
    // shaped the plan above.
    let roomy = compile(&long_k_matmul(), &device(), FusionMode::Fused).expect("compiles");
    let roomy = &roomy.plan.kernels[0];
    assert!(roomy.l1_bytes > 16 * 1024, "{}", roomy.partition_summary);
}

#[test]
fn transposed_batched_matmul_streams_k_with_small_l1() {
    let mut g = Graph::new();
    let q = g.add_input("q", f32t(&[2, 64, 256]));
    let k = g.add_input("k", f32t(&[2, 64, 256]));
    let kt = transpose_last(&mut g, "k_t", k);
    let s = matmul(&mut g, "scores", q, kt);
    let c = scalar(&mut g, "scale", 0.0625);
    let y = binary(&mut g, "scaled", BinaryOp::Mul, s, c);
    output(&mut g, "scaled", y);
    let dev = small_l1_device(48 * 1024);
    let fused = run_checked(&g, &dev, FusionMode::Fused);
    assert_within_limits(&fused.plan);
    assert_eq!(
        fused.plan.kernels.len(),
        1,
        "transpose read in the matmul, scale in its epilogue"
    );
    assert!(fused.plan.kernels[0].partition.k_chunks > 1);
    assert_eq!(fused.plan.free.len(), 1, "the transpose needs no kernel");
    let unfused = run_checked(&g, &dev, FusionMode::Unfused);
    assert_eq!(unfused.plan.kernels.len(), 3);
}

#[test]
fn leftover_blocks_are_guarded() {
    // 67 tile rows: blocks do not divide evenly over the cores.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[67 * 32, 64]));
    let e = unary(&mut g, "e", UnaryOp::Sigmoid, x);
    let y = binary(&mut g, "y", BinaryOp::Mul, x, e);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let p = &c.plan.kernels[0].partition;
    assert!(p.guarded, "{}", c.plan.kernels[0].partition_summary);
    assert!(p.blocks_per_core * (p.grid.0 * p.grid.1) as usize > p.blocks);
}

#[test]
fn long_rows_are_cut_into_segments_or_single_buffered() {
    // 192 tiles a row (384 KB a block): the input, exponentials and result fit a core's L1
    // with one block each, not with the input and result double-buffered. One row tile is cut
    // into segments over the cores instead, each double-buffered (numbers checked).
    let c = run_checked(&softmax_of(32, 6144), &device(), FusionMode::Fused);
    assert_within_limits(&c.plan);
    let p = &c.plan.kernels[0].partition;
    assert!(p.segments.is_some() && p.double_buffered, "{p:?}");
    // 193 tiles a row (a prime count) cut into no segments that fill the cores in rounds:
    // blocks of whole rows, single-buffered.
    let c = compile(&softmax_of(33 * 32, 193 * 32), &device(), FusionMode::Fused).unwrap();
    assert_within_limits(&c.plan);
    let p = &c.plan.kernels[0].partition;
    assert!(p.segments.is_none() && !p.double_buffered, "{p:?}");
}

#[test]
fn nothing_fits_is_a_clear_error() {
    let dev = small_l1_device(4 * 1024);
    let err = compile(&softmax_composite(), &dev, FusionMode::Fused)
        .expect_err("two tiles of L1 cannot hold a softmax");
    let msg = err.to_string();
    assert!(msg.contains("`y`") && msg.contains("does not fit"), "{msg}");
    // It quotes the layout that came closest: whole rows (8 tiles) one tile row high, and what
    // it needs, which a core of that much L1 then has room for.
    assert!(msg.contains("blocks of 1x8 tiles need "), "{msg}");
    let need: u64 = msg
        .split("need ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in: {msg}"));
    let c = compile(
        &softmax_composite(),
        &small_l1_device(need),
        FusionMode::Fused,
    )
    .expect("the quoted need fits");
    assert_within_limits(&c.plan);
    let fitted = compile(
        &softmax_composite(),
        &small_l1_device(need - 1),
        FusionMode::Fused,
    );
    assert!(fitted.is_err(), "one byte less does not fit");
}

#[test]
fn fusion_stops_at_the_l1_budget() {
    // Each norm fits alone; on a small core the fused row kernel would not.
    let g = norms();
    let roomy = compile(&g, &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(roomy.plan.kernels.len(), 1);
    let budget = roomy.plan.kernels[0].l1_bytes;
    let unfused = compile(&g, &device(), FusionMode::Unfused).expect("compiles");
    let biggest_alone = unfused
        .plan
        .kernels
        .iter()
        .map(|k| k.l1_bytes)
        .max()
        .unwrap_or(0);
    assert!(biggest_alone < budget);
    let dev = small_l1_device(biggest_alone);
    let tight = run_checked(&g, &dev, FusionMode::Fused);
    assert_within_limits(&tight.plan);
    assert_eq!(tight.plan.kernels.len(), 2);
    assert!(
        tight
            .plan
            .breaks
            .iter()
            .any(|b| matches!(b.reason, ttfuse::plan::BreakReason::Budget { .. })),
        "{:?}",
        tight.plan.breaks
    );
}
