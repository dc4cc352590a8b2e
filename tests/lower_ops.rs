//! Every op the templates lower, alone and with each broadcast form, runs on the runtime fused
//! and unfused and matches the reference interpreter.

mod lower_common;

use lower_common::*;
use petgraph::graph::NodeIndex;
use ttfuse::graph::{BinaryOp, Graph, Op, ReduceOp, UnaryOp};
use ttfuse::lower::FusionMode;
use ttfuse::plan::KernelKind;

/// `|x| + 0.5`: inputs for ops that need positive values.
fn positive(g: &mut Graph, x: NodeIndex) -> NodeIndex {
    let a = unary(g, "abs_x", UnaryOp::Abs, x);
    let h = scalar(g, "half", 0.5);
    binary(g, "pos_x", BinaryOp::Add, a, h)
}

fn check(case: &str, build: impl Fn(&mut Graph, NodeIndex) -> NodeIndex) {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 96]));
    let y = build(&mut g, x);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let result = std::panic::catch_unwind(|| run_checked(&g, &device(), mode));
        assert!(result.is_ok(), "case {case} failed in {mode:?}");
    }
}

#[test]
fn unary_ops() {
    use UnaryOp::*;
    for u in [
        Exp, Tanh, Sigmoid, Relu, Abs, Neg, Gelu, GeluTanh, Silu, Softplus, Identity,
    ] {
        check(&format!("{u:?}"), |g, x| {
            let e = unary(g, "e", Exp, x);
            unary(g, "y", u, e)
        });
    }
    for u in [Log, Sqrt, Rsqrt, Recip] {
        check(&format!("{u:?}"), |g, x| {
            let p = positive(g, x);
            unary(g, "y", u, p)
        });
    }
    check("Floor", |g, x| {
        let s = scalar(g, "four", 4.0);
        let m = binary(g, "scaled", BinaryOp::Mul, x, s);
        unary(g, "y", Floor, m)
    });
}

#[test]
fn binary_ops_with_every_broadcast_form() {
    use BinaryOp::*;
    for b in [Add, Sub, Mul, Max, Min, Div] {
        check(&format!("{b:?} full"), |g, x| {
            let other = g.add_input("other", f32t(&[64, 96]));
            let rhs = if b == Div { positive(g, other) } else { other };
            binary(g, "y", b, x, rhs)
        });
        check(&format!("{b:?} row"), |g, x| {
            let row = constant(g, "row", &[96], 30, 1.0);
            let rhs = if b == Div { positive(g, row) } else { row };
            binary(g, "y", b, x, rhs)
        });
        check(&format!("{b:?} col"), |g, x| {
            let col = g.add_input("col", f32t(&[64, 1]));
            let rhs = if b == Div { positive(g, col) } else { col };
            binary(g, "y", b, x, rhs)
        });
        check(&format!("{b:?} scalar"), |g, x| {
            let s = scalar(g, "s", 0.75);
            binary(g, "y", b, x, s)
        });
        check(&format!("{b:?} row and col"), |g, _| {
            let row = g.add_input("row", f32t(&[1, 96]));
            let col = g.add_input("col", f32t(&[64, 1]));
            let rhs = if b == Div { positive(g, col) } else { col };
            binary(g, "y", b, row, rhs)
        });
    }
}

#[test]
fn powers_and_pointwise_composites() {
    for (e, needs_positive) in [
        (2.0, false),
        (3.0, false),
        (0.5, true),
        (-0.5, true),
        (-1.0, true),
    ] {
        check(&format!("pow {e}"), |g, x| {
            let base = if needs_positive { positive(g, x) } else { x };
            let c = scalar(g, "exponent", e);
            binary(g, "y", BinaryOp::Pow, base, c)
        });
    }
    check("clip", |g, x| {
        let ty = g.node(x).ty.clone();
        g.add(
            "y",
            Op::Clip {
                min: -0.5,
                max: 0.25,
            },
            ty,
            &[x],
        )
    });
    check("leaky relu", |g, x| {
        let ty = g.node(x).ty.clone();
        g.add("y", Op::LeakyRelu { alpha: 0.1 }, ty, &[x])
    });
    check("hard sigmoid", |g, x| {
        let ty = g.node(x).ty.clone();
        g.add(
            "y",
            Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            ty,
            &[x],
        )
    });
}

#[test]
fn row_reductions_and_their_broadcasts() {
    for r in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        check(&format!("{r:?}"), |g, x| reduce(g, "y", r, x));
        check(&format!("x - {r:?}"), |g, x| {
            let m = reduce(g, "m", r, x);
            binary(g, "y", BinaryOp::Sub, x, m)
        });
    }
}

#[test]
fn matmul_shapes() {
    // A row vector times a matrix, a batched A with a shared B, and a residual epilogue.
    let mut g = Graph::new();
    let v = g.add_input("v", f32t(&[1, 128]));
    let w = constant(&mut g, "w", &[128, 64], 31, 0.1);
    let y = matmul(&mut g, "y", v, w);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        run_checked(&g, &device(), mode);
    }
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[2, 64, 128]));
    let w = constant(&mut g, "w", &[128, 128], 32, 0.1);
    let m = matmul(&mut g, "m", x, w);
    let y = binary(&mut g, "y", BinaryOp::Add, m, x);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let c = run_checked(&g, &device(), mode);
        let expect = if mode == FusionMode::Fused { 1 } else { 2 };
        assert_eq!(c.plan.kernels.len(), expect);
    }
    // A Gram matrix: both operands are the same tensor, B read transposed.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 96]));
    let xt = transpose_last(&mut g, "x_t", x);
    let y = matmul(&mut g, "gram", x, xt);
    output(&mut g, "gram", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        run_checked(&g, &device(), mode);
    }
}

#[test]
fn an_op_joins_one_producer_kernel_and_reads_the_other_from_dram() {
    // Matmul kernels of different left operands do not merge: the sum joins one and reads the
    // other's product.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 64]));
    let z = g.add_input("z", f32t(&[64, 64]));
    let w1 = constant(&mut g, "w1", &[64, 64], 33, 0.1);
    let w2 = constant(&mut g, "w2", &[64, 64], 34, 0.1);
    let m1 = matmul(&mut g, "m1", x, w1);
    let m2 = matmul(&mut g, "m2", z, w2);
    let y = binary(&mut g, "y", BinaryOp::Add, m1, m2);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 2);
    assert!(c.plan.breaks.iter().any(|b| matches!(
        &b.reason,
        ttfuse::plan::BreakReason::JoinedOtherProducer { .. }
    ) && b.consumer == "y"));
}

#[test]
fn an_elementwise_kernel_merges_into_a_matmul_kernel_that_shares_a_consumer() {
    // `relu(exp(x)) + x @ w`: the elementwise ops become more of the matmul's epilogue.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 64]));
    let w = constant(&mut g, "w", &[64, 64], 33, 0.1);
    let m = matmul(&mut g, "m", x, w);
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let r = unary(&mut g, "r", UnaryOp::Relu, e);
    let y = binary(&mut g, "y", BinaryOp::Add, r, m);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1);
    assert_eq!(c.plan.kernels[0].kind, KernelKind::Matmul);
    // Not when the elementwise kernel computes the matmul's operand.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 64]));
    let w = constant(&mut g, "w", &[64, 64], 33, 0.1);
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let m = matmul(&mut g, "m", e, w);
    let y = binary(&mut g, "y", BinaryOp::Add, e, m);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 2);
}

#[test]
fn invariant_column_and_row_operands_are_read_once() {
    // One row block: the column vector is loop-invariant; one column block: the row vector is.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[32, 96]));
    let col = g.add_input("per_row", f32t(&[32, 1]));
    let row = g.add_input("per_col", f32t(&[96]));
    let a = binary(&mut g, "a", BinaryOp::Sub, x, col);
    let y = binary(&mut g, "y", BinaryOp::Mul, a, row);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        run_checked(&g, &device(), mode);
    }
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_read_before_loop(&fused, "per_row[");
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[256, 32]));
    let row = g.add_input("per_col", f32t(&[1, 32]));
    let y = binary(&mut g, "y", BinaryOp::Add, x, row);
    output(&mut g, "y", y);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_read_before_loop(&fused, "per_col[");
}

/// The reader copies `tensor_index` before its block loop starts.
fn assert_read_before_loop(c: &ttfuse::lower::Compiled, tensor_index: &str) {
    let text = ttfuse_runtime::ttl::print::print_kernel(&c.program.kernels[0]);
    let reader = &text[text.find("def dm_read").expect("reader")..];
    let read = reader
        .find(&format!("ttl.copy({tensor_index}"))
        .expect("read of the operand");
    let first_loop = reader.find("for ").expect("block loop");
    assert!(
        read < first_loop,
        "{tensor_index} is read inside the loop:\n{reader}"
    );
}

#[test]
fn a_transpose_with_other_consumers_keeps_its_kernel_and_the_matmul_reads_its_input() {
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[64, 96]));
    let b = g.add_input("b", f32t(&[64, 96]));
    let bt = transpose_last(&mut g, "b_t", b);
    let m = matmul(&mut g, "m", a, bt);
    output(&mut g, "m", m);
    output(&mut g, "b_t", bt);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let names: Vec<&str> = c.plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["transpose", "matmul_bt"]);
}

#[test]
fn a_wide_classifier_s_softmax_stays_with_its_matmul_in_column_segments() {
    // `softmax(x @ w + b)` over 1024 classes with one row tile: whole-row blocks would keep
    // the product on one core. Its columns in segments over a grid row instead, the cores
    // exchanging their softmax partials, it spreads over the row and needs no second kernel
    // (on the runtime: 24.19 us, against 28.78 us as a matmul and a segmented softmax).
    let g = classifier(32, 1024, 1024);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let kinds: Vec<KernelKind> = c.plan.kernels.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, [KernelKind::Matmul]);
    let p = &c.plan.kernels[0].partition;
    assert!(p.segments.is_some_and(|s| s > 1), "{p:?}");
    assert_eq!(p.cores_used, p.segments.unwrap_or(0));
    assert!(c.plan.breaks.iter().all(|b| b.consumer != "probs"));
}

#[test]
fn a_norm_after_a_residual_projection_runs_in_its_kernel_in_column_segments() {
    // A transformer's attention projection and residual at 1024 tokens, then a LayerNorm:
    // 8 block rows of whole-row blocks would leave 56 cores idle. In segments over the grid
    // rows, the cores of a grid row exchange the norm's partial sums (on the runtime: 51.75
    // us, against 35.39 + 25.72 us for the product and the norm apart).
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[1024, 768]));
    let r = g.add_input("r", f32t(&[1024, 768]));
    let w = constant(&mut g, "w", &[768, 768], 42, 0.03);
    let gamma = constant(&mut g, "gamma", &[768], 43, 0.5);
    let m = matmul(&mut g, "proj", x, w);
    let h = binary(&mut g, "h", BinaryOp::Add, m, r);
    let ty = g.node(h).ty.clone();
    let n = g.add("norm", Op::LayerNorm { eps: 1e-5 }, ty, &[h, gamma]);
    output(&mut g, "norm", n);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let kinds: Vec<KernelKind> = c.plan.kernels.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, [KernelKind::Matmul]);
    let k = &c.plan.kernels[0];
    let p = &k.partition;
    assert!(p.multicast, "{}", k.partition_summary);
    assert_eq!(
        (p.segments, p.grid),
        (Some(8), (8, 8)),
        "{}",
        k.partition_summary
    );
    run_kernel(&g, k);
}

#[test]
fn a_softmax_normalizes_with_one_reciprocal_per_row() {
    // The SFPU's divide costs about fifteen multiplies a tile: the row sums are inverted once
    // and multiply the exponentials, with and without a product after the softmax.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 256]));
    let ty = g.node(x).ty.clone();
    let p = g.add("probs", Op::Softmax { axis: 1 }, ty, &[x]);
    let v = constant(&mut g, "v", &[256, 64], 42, 0.1);
    let o = matmul(&mut g, "weighted", p, v);
    output(&mut g, "weighted", o);
    let alone = softmax_graph();
    for graph in [&g, &alone] {
        let c = run_checked(graph, &device(), FusionMode::Fused);
        assert_eq!(c.program.kernels.len(), 1);
        let text = ttfuse_runtime::ttl::print::print_kernel(&c.program.kernels[0]);
        assert!(text.contains("ttl.math.recip("), "{text}");
        assert!(!text.contains(" / "), "a division per element:\n{text}");
    }
}

/// `softmax(x)` alone, over rows of 256.
fn softmax_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 256]));
    let ty = g.node(x).ty.clone();
    let p = g.add("probs", Op::Softmax { axis: 1 }, ty, &[x]);
    output(&mut g, "probs", p);
    g
}

#[test]
fn two_products_of_one_operand_share_a_kernel_and_its_epilogue() {
    let c = run_checked(&gated(64, 128, 256), &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1);
    let k = &c.plan.kernels[0];
    assert_eq!(k.kind, KernelKind::Matmul);
    assert_eq!(k.ops, ["MatMul", "MatMul", "Silu", "Mul"]);
    // With K streamed in chunks (a core too small for whole K blocks), each product keeps its
    // own partial and running sums.
    let c = run_checked(
        &gated(64, 2048, 256),
        &small_l1_device(96 * 1024),
        FusionMode::Fused,
    );
    assert_eq!(c.plan.kernels.len(), 1);
    assert!(
        c.plan.kernels[0].partition.k_chunks > 2,
        "{:?}",
        c.plan.kernels[0].partition
    );
    // Unfused: three kernels and the multiply.
    let c = run_checked(&gated(64, 128, 256), &device(), FusionMode::Unfused);
    assert_eq!(c.plan.kernels.len(), 4);
}

/// `s` (`[64, 128]`) split into 2 heads of 64 columns, then scaled per (row, column) of a head:
/// the graph's output.
fn split_and_scaled(g: &mut Graph, s: NodeIndex) {
    let r = g.add(
        "r",
        Op::Reshape {
            shape: vec![64, 2, 64],
        },
        f32t(&[64, 2, 64]),
        &[s],
    );
    let t = g.add(
        "t",
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        f32t(&[2, 64, 64]),
        &[r],
    );
    let c = constant(g, "c", &[64, 64], 52, 1.0);
    let y = binary(g, "y", BinaryOp::Mul, t, c);
    output(g, "y", y);
}

#[test]
fn an_elementwise_kernel_writes_its_output_with_the_heads_split() {
    // The add's kernel writes each head's columns as that head's rows, so the split needs no
    // step.
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[64, 128]));
    let b = g.add_input("b", f32t(&[64, 128]));
    let s = binary(&mut g, "s", BinaryOp::Add, a, b);
    split_and_scaled(&mut g, s);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    let kinds: Vec<KernelKind> = fused.plan.kernels.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, [KernelKind::Eltwise, KernelKind::Eltwise]);
    assert!(fused.plan.free.iter().any(|f| f.node == "t"));
    let unfused = run_checked(&g, &device(), FusionMode::Unfused);
    assert!(unfused
        .plan
        .kernels
        .iter()
        .any(|k| k.kind == KernelKind::Host));
    // After a softmax the add does not join the row-wise kernel (whose blocks span both
    // heads): it starts the kernel that splits the heads.
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[64, 128]));
    let b = g.add_input("b", f32t(&[64, 128]));
    let ty = g.node(a).ty.clone();
    let p = g.add("p", Op::Softmax { axis: 1 }, ty, &[a]);
    let s = binary(&mut g, "s", BinaryOp::Add, p, b);
    split_and_scaled(&mut g, s);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    let kinds: Vec<KernelKind> = fused.plan.kernels.iter().map(|k| k.kind).collect();
    assert_eq!(
        kinds,
        [
            KernelKind::RowWise,
            KernelKind::Eltwise,
            KernelKind::Eltwise
        ]
    );
}

/// `x @ w_i + b_i` for three projections of one `x` of `[64, k]`, each an output.
fn projections(k: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, k]));
    for (i, name) in ["q", "k", "v"].into_iter().enumerate() {
        let seed = 60 + 2 * i as u64;
        let w = constant(&mut g, &format!("w{name}"), &[k, 128], seed, 0.05);
        let b = constant(&mut g, &format!("b{name}"), &[128], seed + 1, 0.1);
        let m = matmul(&mut g, &format!("{name}_mm"), x, w);
        let y = binary(&mut g, name, BinaryOp::Add, m, b);
        output(&mut g, name, y);
    }
    g
}

#[test]
fn projections_of_one_operand_with_no_shared_consumer_share_a_kernel() {
    // Attention's q, k and v: one kernel, three products, three outputs.
    let c = run_checked(&projections(128), &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.kernels);
    let products = c.plan.kernels[0]
        .ops
        .iter()
        .filter(|o| *o == "MatMul")
        .count();
    assert_eq!(products, 3);
    // With K streamed in chunks, each product's bias waits while the next product's chunks
    // stream in: the reader sends the biases first, so nothing deadlocks. On a 2x2 grid
    // (on 8x8 cores each product apart splits K over copies of its grid rows, and the three
    // kernels are faster: 25.65 us against 39.70).
    let mut dev = small_l1_device(160 * 1024);
    (dev.grid.x, dev.grid.y) = (2, 2);
    let c = run_checked(&projections(2048), &dev, FusionMode::Fused);
    let k = &c.plan.kernels[0];
    assert!(k.partition.k_chunks > 2, "{:?}", k.partition);
    assert!(
        k.ops.iter().filter(|o| *o == "MatMul").count() > 1,
        "{:?}",
        k.ops
    );
}
