//! An RMSNorm or a LayerNorm in the matmul kernel that reads it (`plan::group`'s
//! `normalize_in_products`, `plan::matmul_info::RowNorm`): the kernel reads the norm's input as A,
//! sums its squares as the K chunks pass (a LayerNorm's: centers it first, each core the chunk
//! it multicasts) and scales each product's rows, where the estimate finds that faster than a
//! norm kernel writing the normalized rows for the matmul kernel to read back.

mod lower_common;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use lower_common::*;
use petgraph::graph::NodeIndex;
use ttfuse::graph::{BinaryOp, Graph, Op, TensorData};
use ttfuse::lower::{Compiled, FusionMode};
use ttfuse::plan::estimate;
use ttfuse::plan::kernel::KernelDetail;
use ttfuse::plan::target::Target;
use ttfuse::plan::{BreakReason, PlannedKernel};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::ttl::print::print_kernel;

/// A constant row of `value`s, an RMSNorm's gain.
fn gain(g: &mut Graph, name: &str, cols: usize, value: f32) -> NodeIndex {
    let data = TensorData::F32 {
        shape: vec![cols],
        values: vec![value; cols],
    };
    g.add(name, Op::Constant(Arc::new(data)), f32t(&[cols]), &[])
}

/// `rmsnorm(x)` with gain `g_value`, x [rows, k], then `widths.len()` products of it, each a
/// graph output; the norm's node.
fn norm_and_products(rows: usize, k: usize, widths: &[usize], g_value: f32) -> (Graph, NodeIndex) {
    let norm = Op::RmsNorm { eps: 1e-6 };
    products_of(norm, rows, k, widths, g_value)
}

/// Norm `op` (gain `g_value`, no bias) of x [rows, k], then `widths.len()` products of it, each
/// a graph output; the norm's node.
fn products_of(
    op: Op,
    rows: usize,
    k: usize,
    widths: &[usize],
    g_value: f32,
) -> (Graph, NodeIndex) {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, k]));
    let gamma = gain(&mut g, "gamma", k, g_value);
    let n = g.add("norm", op, f32t(&[rows, k]), &[x, gamma]);
    for (i, &w) in widths.iter().enumerate() {
        let wt = constant(&mut g, &format!("w{i}"), &[k, w], 10 + i as u64, 0.04);
        let p = matmul(&mut g, &format!("p{i}"), n, wt);
        output(&mut g, &format!("y{i}"), p);
    }
    (g, n)
}

/// [`norm_and_products`]' graph.
fn norm_then_products(rows: usize, k: usize, widths: &[usize], g_value: f32) -> Graph {
    norm_and_products(rows, k, widths, g_value).0
}

/// A unit-gain `layernorm(x)` without bias, x [rows, k], then `widths.len()` products of it
/// (the optimizer folds a LayerNorm's gain and bias into the products' weights and bias).
fn layernorm_then_products(rows: usize, k: usize, widths: &[usize]) -> Graph {
    products_of(Op::LayerNorm { eps: 1e-5 }, rows, k, widths, 1.0).0
}

/// The matmul kernels of `c` that normalize their left operand.
fn normalizing(c: &Compiled) -> Vec<&PlannedKernel> {
    c.plan
        .kernels
        .iter()
        .filter(|k| matches!(&k.detail, KernelDetail::Matmul { info, .. } if info.norm.is_some()))
        .collect()
}

/// The text of kernel `name` of `c`.
fn kernel_text(c: &Compiled, name: &str) -> String {
    let k = c.program.kernels.iter().find(|k| k.name == name).unwrap();
    print_kernel(k)
}

#[test]
fn an_rmsnorm_joins_the_matmul_kernel_of_the_products_that_read_it() {
    // Three projections of one norm (q, k, v) and a gated MLP's two. The MLP's at 512 rows: at
    // 256 its products apart, with K split over two copies of their 8x4 grid, are faster
    // (64.92 us with the norm kernel, against 82.11 for the one kernel).
    for (rows, widths) in [(256, vec![768, 768, 768]), (512, vec![2048, 2048])] {
        let g = norm_then_products(rows, 768, &widths, 1.0);
        let c = run_checked(&g, &device(), FusionMode::Fused);
        let ks = normalizing(&c);
        assert_eq!(c.plan.kernels.len(), 1, "{widths:?}: {:?}", c.plan.kernels);
        assert_eq!(ks.len(), 1, "{widths:?}");
        let k = ks[0];
        assert_eq!(k.ops[0], "RmsNorm");
        assert_eq!(k.ops.len(), 1 + widths.len());
        assert!(
            k.partition_summary.contains("A normalized in the kernel"),
            "{}",
            k.partition_summary
        );
        // The kernel reads x itself: no tensor holds the normalized rows.
        let text = kernel_text(&c, &k.name);
        assert!(text.contains("x_v * x_v"), "{text}");
        assert!(text.contains("ttl.math.rsqrt"), "{text}");
        assert!(!c.program.tensors.iter().any(|t| t.name.contains("norm")));
        // One scale per product, copied from one rsqrt.
        assert_eq!(text.matches("ttl.math.rsqrt").count(), 1, "{text}");
        assert!(text.contains(&format!("range({})", widths.len())), "{text}");
        run_kernel(&g, k);
    }
}

#[test]
fn a_small_core_keeps_its_kernels_double_buffered() {
    // On a core with 120 kB of L1, an RMSNorm and one product of 256 x 768 x 768: with the
    // buffers that share the row sums the kernel fits only single-buffered, and its compute
    // waits for every chunk passed along the grid (29.06 us in the runtime); each core
    // summing its rows alone keeps it double-buffered (22.20 us).
    let dev = small_l1_device(120_000);
    let g = norm_then_products(256, 768, &[768], 1.0);
    let c = run_checked(&g, &dev, FusionMode::Fused);
    let ks = normalizing(&c);
    assert_eq!(ks.len(), 1, "{:?}", c.plan.kernels);
    assert!(
        ks[0].partition.double_buffered,
        "{}",
        ks[0].partition_summary
    );
    assert_within_limits(&c.plan);
    // Three products fit with the norm only single-buffered: the norm kernel writes the rows
    // for the products' double-buffered kernels instead (63.50 us against 75.64).
    let g = norm_then_products(256, 768, &[768, 768, 768], 1.0);
    let c = run_checked(&g, &dev, FusionMode::Fused);
    assert!(normalizing(&c).is_empty(), "{:?}", c.plan.kernels);
    assert!(c.plan.kernels.iter().all(|k| k.partition.double_buffered));
    assert_within_limits(&c.plan);
}

#[test]
fn the_cores_of_a_grid_row_share_the_row_sums() {
    // More K chunks than grid columns (16 on 8 at K = 3072): each core squares and sums every
    // eighth chunk's rows, adding the second to the first, and the row's cores exchange their
    // partial sums instead of each summing all sixteen.
    let g = norm_then_products(512, 3072, &[768, 768], 1.0);
    assert_shares_sums(
        &g,
        Ordering::Greater,
        "each core of a grid row summing every GRID_X-th chunk's",
        &[
            "if kc % GRID_X == core_x:",
            "if kc >= GRID_X:",
            "_send_cb.wait() as blk",
            "_peers_cb.reserve() as blk",
        ],
    );
}

/// Compiles `g` (an RMSNorm and its products) into one normalizing kernel, checks that it
/// takes K in `chunks` than its grid has columns, that its summary says `summary` and its text
/// holds every line of `lines`, and runs it against the reference.
fn assert_shares_sums(g: &Graph, chunks: Ordering, summary: &str, lines: &[&str]) {
    let c = run_checked(g, &device(), FusionMode::Fused);
    let ks = normalizing(&c);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let k = ks[0];
    let p = &k.partition;
    assert_eq!(p.k_chunks.cmp(&(p.grid.0 as usize)), chunks, "{p:?}");
    assert!(
        k.partition_summary.contains(summary),
        "{}",
        k.partition_summary
    );
    let text = kernel_text(&c, &k.name);
    for line in lines {
        assert!(text.contains(line), "{line} not in {text}");
    }
    run_kernel(g, k);
}

#[test]
fn a_grid_row_with_more_cores_than_k_chunks_shares_the_sums_too() {
    // Five products of 1024 rows (LLaMA's q, k, their rotations and v) take K in 6 chunks on 8
    // grid columns: cores 0 to 5 each sum one chunk's squares and send their partial, cores 6
    // and 7 sum the last chunk themselves, so that every core uses the scaler tile it waits
    // for and receives five partials.
    let g = norm_then_products(1024, 768, &[768; 5], 1.0);
    assert_shares_sums(
        &g,
        Ordering::Less,
        "the cores past the last chunk's the last",
        &[
            "own = K_CHUNKS - 1",
            "if kc == own:",
            "for peer in range(K_CHUNKS):",
        ],
    );
}

#[test]
fn the_estimate_keeps_the_norm_kernel_where_the_products_are_bound_by_their_math() {
    // Two products of 4096 rows, 1024 columns each, on blackhole: with the norm, blocks of 13
    // rows fit L1 only single-buffered, so each core's compute waits for every chunk passed
    // along its grid row and column, and the norm kernel's DRAM round trip is the cheaper
    // (in the runtime: 184.14 us for the norm in the products' kernel against 29.69 + 119.14
    // us apart; the estimate took the single-buffered kernel's chain and compute as
    // overlapping, 225.6k cycles against the run's 248.6k, and chose it). At 2048 rows,
    // double-buffered, the norm joins: 82.18 us against 17.11 + 66.87.
    let g = norm_then_products(4096, 768, &[1024, 1024], 1.0);
    let dev = Device::load("blackhole").unwrap();
    let c = run_checked(&g, &dev, FusionMode::Fused);
    assert!(normalizing(&c).is_empty());
    assert_eq!(c.plan.kernels[0].ops, ["RmsNorm"]);
    // The plan says why.
    assert!(
        c.plan.breaks.iter().any(|b| b.producer == "norm"
            && matches!(b.reason, BreakReason::Slower { fused_cycles, separate_cycles } if fused_cycles > separate_cycles)),
        "{:?}",
        c.plan.breaks
    );
    let g = norm_then_products(2048, 768, &[1024, 1024], 1.0);
    let c = run_checked(&g, &dev, FusionMode::Fused);
    assert_eq!(normalizing(&c).len(), 1, "{:?}", c.plan.kernels);
}

#[test]
fn a_kernel_bound_by_passing_its_weights_keeps_its_row_sums_unshared() {
    // Five products of 160 rows: one row tile per block, so each core's writer passes B's
    // chunks down its grid column for longer than the compute works, and sharing the row sums
    // would only add the partials' exchange to the compute's wait between the first and the
    // second product (measured on the LLaMA block at seq 128: 72.98 us shared against 72.19).
    // Not 128 rows: there the five products apart, each with K split over two copies of its
    // 8x4 grid, are as fast (70.51 us with the norm kernel, against 71.08); 5 grid rows leave
    // no room for a second copy.
    let g = norm_then_products(160, 768, &[768; 5], 1.0);
    let dev = device();
    let c = run_checked(&g, &dev, FusionMode::Fused);
    let ks = normalizing(&c);
    assert_eq!(ks.len(), 1, "{:?}", c.plan.kernels);
    let k = ks[0];
    assert!(
        !k.partition_summary.contains("sending"),
        "{}",
        k.partition_summary
    );
    // The estimate sees the writer's chain of chunks: within 5% of the run, dispatch included
    // (it was 30% under when it counted the compute alone).
    assert_estimate_meets_run(&g, &dev, k, 0.05);
}

/// Asserts that the estimate of kernel `k` of `g` is within `tolerance` (a fraction) of its
/// run on `dev`, dispatch included.
fn assert_estimate_meets_run(g: &Graph, dev: &Device, k: &PlannedKernel, tolerance: f64) {
    let run = run_kernel_on(g, dev, k);
    let ran = run.cycles + run.dispatch_us * dev.clock_ghz * 1000.0;
    let estimate = estimate::cycles(k, &Target::of(dev));
    let off = (estimate - ran).abs() / ran;
    assert!(
        off < tolerance,
        "estimate {estimate} against {ran} cycles run"
    );
}

#[test]
fn every_way_the_planner_sums_the_squares_computes_the_reference() {
    // Rows, K and products over both targets: the planner picks each kernel's K chunks and
    // whether its grid rows share the sums, with more cores than chunks or not. Each plan's
    // numbers are checked against the reference (run_checked), and the sweep must meet all
    // three ways.
    let mut ways = std::collections::BTreeSet::new();
    for dev in [device(), Device::load("blackhole").unwrap()] {
        for rows in [64, 256, 512] {
            for k in [256, 768, 1536] {
                for widths in [vec![256], vec![512, 512], vec![256, 256, 256]] {
                    let g = norm_then_products(rows, k, &widths, 1.0);
                    let c = run_checked(&g, &dev, FusionMode::Fused);
                    for kernel in normalizing(&c) {
                        let s = &kernel.partition_summary;
                        ways.insert(match () {
                            _ if s.contains("past the last chunk's") => "spare cores",
                            _ if s.contains("every GRID_X-th chunk's") => "shared",
                            _ => "own",
                        });
                    }
                }
            }
        }
    }
    assert_eq!(ways.len(), 3, "{ways:?}");
}

#[test]
fn only_a_unit_gain_norm_read_only_by_products_joins_them() {
    // A gain scales A's columns, which the kernel's row scale cannot (the optimizer folds a
    // constant gain into the weights first).
    let g = norm_then_products(256, 768, &[768, 768, 768], 1.5);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert!(normalizing(&c).is_empty(), "{:?}", c.plan.kernels);
    // A norm that is also a graph output is written anyway.
    let (mut g, norm) = norm_and_products(256, 768, &[768, 768, 768], 1.0);
    output(&mut g, "normalized", norm);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert!(normalizing(&c).is_empty(), "{:?}", c.plan.kernels);
    // A LayerNorm's bias shifts A's columns alike.
    let (mut g, norm) = products_of(Op::LayerNorm { eps: 1e-5 }, 256, 768, &[2304], 1.0);
    let bias = gain(&mut g, "beta", 768, 0.5);
    g.dag.add_edge(bias, norm, 2);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert!(normalizing(&c).is_empty(), "{:?}", c.plan.kernels);
}

/// LLaMA's attention input: `rmsnorm(x)` [rows, k], then q and k each as a projection and its
/// rotated twin combined by the rotary's cos and sin tables, and v.
fn norm_qkv_rotary(rows: usize, k: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, k]));
    let gamma = gain(&mut g, "gamma", k, 1.0);
    let n = g.add(
        "norm",
        Op::RmsNorm { eps: 1e-6 },
        f32t(&[rows, k]),
        &[x, gamma],
    );
    let cos = constant(&mut g, "cos", &[rows, k], 3, 1.0);
    let sin = constant(&mut g, "sin", &[rows, k], 4, 1.0);
    for (i, name) in ["q", "k"].iter().enumerate() {
        let w = constant(&mut g, &format!("w{name}"), &[k, k], 10 + i as u64, 0.04);
        let wr = constant(&mut g, &format!("w{name}r"), &[k, k], 20 + i as u64, 0.04);
        let p = matmul(&mut g, &format!("{name}_projection"), n, w);
        let r = matmul(&mut g, &format!("{name}_rotated"), n, wr);
        let c = binary(&mut g, &format!("{name}_cos"), BinaryOp::Mul, p, cos);
        let s = binary(&mut g, &format!("{name}_sin"), BinaryOp::Mul, r, sin);
        let y = binary(&mut g, &format!("{name}_rows"), BinaryOp::Add, c, s);
        output(&mut g, name, y);
    }
    let wv = constant(&mut g, "wv", &[k, k], 30, 0.04);
    let v = matmul(&mut g, "v", n, wv);
    output(&mut g, "v", v);
    g
}

#[test]
fn a_product_split_off_a_norm_kernel_rejoins_the_kernel_whose_epilogue_reads_it() {
    // On blackhole the first pass chains q's projection into the norm's row-wise kernel, where
    // its rotary epilogue does not fit, so the epilogue joins the other products' kernel; then
    // the chain is split off as slower. The lone projection, which that kernel's epilogue
    // reads, now joins it as its first product, and the norm joins them all: one kernel
    // instead of three (the LLaMA block at seq 1024 on blackhole: 7 kernels and 356.77 us ->
    // 5 and 343.26). At 256 rows: at 128 the norm kernel and the products' with K split over
    // two copies of their grid rows are faster (31.30 us against 38.16).
    let g = norm_qkv_rotary(256, 768);
    let c = run_checked(&g, &Device::load("blackhole").unwrap(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let ops = &c.plan.kernels[0].ops;
    assert_eq!(ops.iter().filter(|o| *o == "MatMul").count(), 5, "{ops:?}");
    assert_eq!(ops[0], "RmsNorm");
}

/// The kernels of `c` that center their left operand (a LayerNorm's).
fn centering(c: &Compiled) -> Vec<&PlannedKernel> {
    normalizing(c)
        .into_iter()
        .filter(|k| k.partition_summary.contains("LayerNorm of"))
        .collect()
}

#[test]
fn a_layernorm_joins_its_products_each_core_centering_the_chunk_it_multicasts() {
    // GPT-2's c_attn at 256 rows: the norm's kernel and the product's apart take 12.21 and
    // 50.87 us; together 52.87 (the GPT-2 block at seq 256: 6 kernels, 246.86 us -> 5, 236.65).
    let g = layernorm_then_products(256, 768, &[2304]);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let k = centering(&c)[0];
    let text = kernel_text(&c, &k.name);
    for line in [
        "norm_kept_v = norm_kept_cb.wait()",
        "if kc == core_x:",
        "ttl.math.matmul(norm_kept_v, ",
        "own_blk = norm_sent_cb.wait()",
        "ttl.copy(own_blk, ttl.Pipe(",
        "norm_kept_cb.pop()",
    ] {
        assert!(
            text.contains(line),
            "{line} not in {}: {text}",
            k.partition_summary
        );
    }
    // A is read from DRAM once, a chunk per core, like B (and each core's two constant tiles,
    // the reductions' scaler and epsilon).
    let run = run_kernel(&g, k);
    let tile = 2048;
    let (a, b, constants) = (
        256 * 768 * 2,
        768 * 2304 * 2,
        k.partition.cores_used * 2 * tile,
    );
    assert_eq!(run.dram_read_bytes, (a + b + constants) as u64);
}

#[test]
fn every_layout_that_centers_a_computes_the_reference() {
    // Rows, K and products over both targets: one block per core or several on the same rows,
    // and K in as many chunks as grid columns or fewer (the cores past the last chunk's
    // receiving it from its core). Each plan's numbers are checked against the reference, and
    // the sweep must meet every way. At 512 rows on Wormhole, K in as many chunks as grid
    // columns takes several blocks per core (at 256 rows, the norm apart and the product with
    // K split over the grid's rows are faster: 110.93 us against 156.99).
    let mut ways = std::collections::BTreeSet::new();
    let mut record = |g: &Graph, dev: &Device| {
        let c = run_checked(g, dev, FusionMode::Fused);
        for kernel in centering(&c) {
            let p = &kernel.partition;
            ways.insert((p.k_chunks < p.grid.0 as usize, p.blocks_per_core > 1));
        }
    };
    for dev in [device(), Device::load("blackhole").unwrap()] {
        for rows in [256, 1024] {
            for k in [768, 2048] {
                for widths in [vec![2304], vec![768, 768], vec![3072]] {
                    record(&layernorm_then_products(rows, k, &widths), &dev);
                }
            }
        }
    }
    record(&layernorm_then_products(512, 2048, &[3072]), &device());
    assert_eq!(ways.len(), 4, "{ways:?}");
}

#[test]
fn a_centered_kernel_estimate_meets_its_run() {
    // GPT-2's c_attn at 1024 rows: 64 cores read their chunks at once, at their share of the
    // chip's bandwidth, before the first product (the estimate was 7% under when it counted
    // each core's own read rate, and chose the fused kernel where it was slower).
    let g = layernorm_then_products(1024, 768, &[2304]);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_estimate_meets_run(&g, &device(), centering(&c)[0], 0.03);
}

#[test]
fn a_layernorm_centers_rows_far_from_zero_as_exactly_as_its_own_kernel() {
    // Rows whose mean is about 30 times their spread: subtracting `mean * colsum(W)` from the
    // uncentered product would cancel in bf16 (the product's rounding, 2^-9 of about 30 times
    // the result, a PCC near 0.998); centering each chunk first meets the reference as the
    // norm's own kernel does, on the same bf16 rows.
    let g = layernorm_then_products(256, 768, &[2304]);
    let mut inputs = inputs_for(&g);
    let x = inputs["x"].to_f32().iter().map(|v| v + 8.0).collect();
    inputs.insert(
        "x".into(),
        TensorData::F32 {
            shape: vec![256, 768],
            values: x,
        },
    );
    let dev = device();
    let want = ttfuse::reference::run(&g, &inputs).unwrap()["y0"].to_f32();
    let (c, _, fused) = run_with(&g, &dev, FusionMode::Fused, &inputs);
    assert_eq!(centering(&c).len(), 1, "{:?}", c.plan.kernels);
    let (c, _, apart) = run_with(&g, &dev, FusionMode::Unfused, &inputs);
    assert!(centering(&c).is_empty());
    let pcc =
        |got: &BTreeMap<String, TensorData>| ttfuse::agreement::pcc(&want, &got["y0"].to_f32());
    let (fused, apart) = (pcc(&fused), pcc(&apart));
    // 0.99950 against 0.99958 (the mean's bf16 rounding, which both share, dominates).
    assert!(fused > apart - 5e-4, "{fused} against {apart}");
}

/// A block's attention projection and residual, then its MLP's LayerNorm and up-projection:
/// `h = a @ wo + bias + x` [rows, d] (a graph output too, for the block's last residual),
/// then a unit-gain LayerNorm of `h` and its product with a [d, width] weight.
fn projection_then_layernorm(rows: usize, d: usize, width: usize) -> Graph {
    projection_then_norm(Op::LayerNorm { eps: 1e-5 }, rows, d, width)
}

/// [`projection_then_layernorm`] with norm `op`.
fn projection_then_norm(op: Op, rows: usize, d: usize, width: usize) -> Graph {
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[rows, d]));
    let x = g.add_input("x", f32t(&[rows, d]));
    let wo = constant(&mut g, "wo", &[d, d], 5, 0.04);
    let bias = constant(&mut g, "bias", &[d], 6, 0.1);
    let p = matmul(&mut g, "projection", a, wo);
    let biased = binary(&mut g, "biased", BinaryOp::Add, p, bias);
    let h = binary(&mut g, "h", BinaryOp::Add, biased, x);
    output(&mut g, "h", h);
    let gamma = gain(&mut g, "gamma", d, 1.0);
    let n = g.add("norm", op, f32t(&[rows, d]), &[h, gamma]);
    let w = constant(&mut g, "w", &[d, width], 7, 0.04);
    let up = matmul(&mut g, "up", n, w);
    output(&mut g, "y", up);
    g
}

#[test]
fn a_layernorm_s_input_product_joins_the_kernel_that_normalizes_it() {
    // GPT-2's attention projection and residual before its MLP's LayerNorm, at 1024 rows: each
    // core computes the chunk of `h` it multicasts (and writes it), instead of a kernel of its
    // own writing `h` for the norm's kernel to read back (the GPT-2 block at seq 1024: 5
    // kernels and 490.34 us -> 4 and 484.07).
    let g = projection_then_layernorm(1024, 768, 3072);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let k = centering(&c)[0];
    assert!(
        k.partition_summary.contains("A computed in the kernel"),
        "{}",
        k.partition_summary
    );
    assert_eq!(k.partition.k_chunks, k.partition.grid.0 as usize);
    let text = kernel_text(&c, &k.name);
    for line in [
        "for kc in range(IN_K_CHUNKS):",
        "projection_written_cb.wait() as blk",
        "ttl.copy(blk, h[core_y * BLOCK_M:core_y * BLOCK_M + BLOCK_M, core_x * BLOCK_K:",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    // The plan counts the product's operands, the adds and `h` written.
    run_kernel(&g, k);
    // The estimate keeps within 5% of the run (it was 26% over when it counted the product's
    // compute as both the reader's wait and the compute's work, and kept the kernels apart).
    assert_estimate_meets_run(&g, &device(), k, 0.05);
}

#[test]
fn the_estimate_weighs_computing_a_layernorm_s_input_in_its_products_kernel() {
    // Rows and widths over both targets: where the product joins the kernel that normalizes
    // its result, that kernel's numbers meet the reference; where the estimate keeps it apart,
    // the plan says why.
    let mut ways = std::collections::BTreeSet::new();
    for dev in [device(), Device::load("blackhole").unwrap()] {
        for rows in [256, 1024] {
            for (d, width) in [(768, 3072), (512, 2048)] {
                let g = projection_then_layernorm(rows, d, width);
                let c = run_checked(&g, &dev, FusionMode::Fused);
                let normalizing = centering(&c);
                if normalizing.is_empty() {
                    continue;
                }
                let computed = normalizing
                    .iter()
                    .any(|k| k.partition_summary.contains("A computed in the kernel"));
                let slower = c.plan.breaks.iter().any(|b| {
                    b.producer == "h"
                        && b.consumer == "norm"
                        && matches!(b.reason, BreakReason::Slower { .. })
                });
                assert!(computed != slower, "{rows} {d}: {:?}", c.plan.breaks);
                ways.insert(computed);
            }
        }
    }
    assert_eq!(ways.len(), 2, "{ways:?}");
}

#[test]
fn a_norm_s_input_product_joins_wherever_the_norm_was_planned() {
    // An RMSNorm at 1024 rows before one product, a kernel of its own: it moves with the
    // projection into the product's kernel, whose cores keep the chunk they compute as a
    // LayerNorm's. GPT-2's LayerNorm at 512 rows, which the projection's kernel had taken in
    // its row-wise epilogue: it moves with the projection too. Each is one kernel, and meets
    // the reference.
    let cases = [
        (
            Op::RmsNorm { eps: 1e-6 },
            1024,
            "RMSNorm of h: each core of a grid row takes",
        ),
        (
            Op::LayerNorm { eps: 1e-5 },
            512,
            "LayerNorm of h: each core of a grid row takes",
        ),
    ];
    for (op, rows, summary) in cases {
        let g = projection_then_norm(op, rows, 768, 3072);
        let c = run_checked(&g, &device(), FusionMode::Fused);
        assert_eq!(c.plan.kernels.len(), 1, "{rows}: {:?}", c.plan.kernels);
        let s = &c.plan.kernels[0].partition_summary;
        assert!(
            s.contains("A computed in the kernel") && s.contains(summary),
            "{s}"
        );
    }
}

#[test]
fn a_normalizing_kernel_whose_last_block_row_overlaps_reads_and_writes_that_row_s_rows() {
    // On Blackhole, GPT-2's c_attn (LayerNorm then x @ W [768, 2304]) and its MLP's
    // up-projection (the attention projection and residual computed in the kernel, then the
    // LayerNorm) at 1024 rows lie across the grid in block rows of 3 tiles, the last
    // overlapping the one before by 1: its grid row takes its chunks (and writes `h`) from
    // row 29, not 30, which would run past the 32 rows.
    let blackhole = Device::load("blackhole").expect("blackhole data file loads");
    let shifted = "core_y * BLOCK_M - core_y * BLOCK_M // LAST_ROW * ROW_OVERLAP";
    for (g, computed) in [
        (layernorm_then_products(1024, 768, &[2304]), false),
        (projection_then_layernorm(1024, 768, 3072), true),
    ] {
        let c = run_checked(&g, &blackhole, FusionMode::Fused);
        let k = centering(&c)[0];
        let p = &k.partition;
        assert_eq!((p.block.0, p.overlap.0), (3, 1), "{}", k.partition_summary);
        let text = kernel_text(&c, &k.name);
        assert!(text.contains(shifted), "{text}");
        assert_eq!(
            text.contains(&format!("ttl.copy(blk, h[{shifted}:")),
            computed,
            "{text}"
        );
        assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
        // The plan counts the overlapped row's reads (and a computed input's writes) twice.
        let report = run_kernel_on(&g, &blackhole, k);
        assert_eq!(k.dram_write_bytes, report.dram_write_bytes);
    }
}

#[test]
fn a_computed_norm_input_spreads_over_more_cores_than_k_chunks() {
    // On blackhole, a LLaMA-sized attention projection and residual, then an RMSNorm (or a
    // LayerNorm) and a product of 2048 columns at 512 rows: K (24 tiles) in 8 chunks of 3 over
    // a grid row of 11 cores, the 3 past the last chunk's computing that chunk again rather
    // than the kernel keeping to 8x8 cores (the LLaMA block at seq 512: 5 kernels and 179.16
    // us -> 4 and 174.08). Only the chunk's own core writes it.
    let blackhole = Device::load("blackhole").expect("blackhole data file loads");
    for op in [Op::RmsNorm { eps: 1e-5 }, Op::LayerNorm { eps: 1e-5 }] {
        let g = projection_then_norm(op, 512, 768, 2048);
        let c = run_checked(&g, &blackhole, FusionMode::Fused);
        assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
        let k = normalizing(&c)[0];
        let p = &k.partition;
        assert!(
            p.k_chunks < p.grid.0 as usize
                && k.partition_summary.contains("compute that one again"),
            "{}",
            k.partition_summary
        );
        let text = kernel_text(&c, &k.name);
        let writer = &text[text.find("def dm_write").expect("writer")..];
        assert!(
            writer.contains(
                "if core_x < K_CHUNKS:\n            with projection_written_cb.wait() as blk:"
            ),
            "{writer}"
        );
        // The plan counts the spare cores' second reads of the last chunk's operands.
        let report = run_kernel_on(&g, &blackhole, k);
        assert_eq!(k.dram_write_bytes, report.dram_write_bytes);
    }
}
