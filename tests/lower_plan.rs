//! The planner's decisions: what is fused, what is free, why the rest is not, and clear errors.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, DType, Graph, Op, TensorType, UnaryOp};
use ttfuse::lower::{compile, FusionMode};
use ttfuse::plan::{BreakReason, KernelKind};

fn names(c: &ttfuse::lower::Compiled) -> Vec<String> {
    c.plan.kernels.iter().map(|k| k.name.clone()).collect()
}

#[test]
fn an_elementwise_chain_is_one_kernel() {
    let c = compile(&eltwise_chain(), &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(names(&c), ["exp_add_relu_mul"]);
    let k = &c.plan.kernels[0];
    assert_eq!(k.kind, KernelKind::Eltwise);
    assert_eq!(k.nodes, ["e", "a", "r", "y"]);
    assert_eq!(k.reads, ["x", "bias"]);
    assert_eq!(k.writes, ["y"]);
    assert!(c.plan.breaks.is_empty());
}

#[test]
fn matmuls_take_their_epilogues_and_start_new_kernels() {
    let c = compile(&mlp2(), &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(names(&c), ["matmul_add_relu", "matmul_add"]);
    assert!(c.plan.kernels.iter().all(|k| k.kind == KernelKind::Matmul));
    assert_eq!(c.plan.breaks.len(), 1);
    let b = &c.plan.breaks[0];
    assert_eq!((b.producer.as_str(), b.consumer.as_str()), ("hr", "o"));
    assert!(matches!(&b.reason, BreakReason::OpKind { detail } if detail.contains("MatMul")));
}

#[test]
fn attention_scores_read_k_transposed_and_take_the_softmax_as_a_row_epilogue() {
    let c = compile(&scaled_attention_scores(), &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(names(&c), ["matmul_bt_mul_softmax"]);
    let k = &c.plan.kernels[0];
    assert_eq!(k.kind, KernelKind::Matmul);
    assert_eq!(c.plan.free.len(), 1);
    assert_eq!(c.plan.free[0].node, "k_t");
    assert_eq!(k.reads, ["q", "k"]);
    assert_eq!(k.writes, ["probs"]);
    // The softmax reduces whole rows: each block spans all of the scores' columns.
    assert_eq!(k.partition.col_blocks, 1);
    assert_eq!(k.partition.block.1, 64 / 32);
    assert!(c.plan.breaks.is_empty(), "{:?}", c.plan.breaks);
    let unfused =
        compile(&scaled_attention_scores(), &device(), FusionMode::Unfused).expect("compiles");
    assert_eq!(
        names(&unfused),
        ["transpose", "matmul", "mul", "softmax_rows"]
    );
    assert!(unfused
        .plan
        .breaks
        .iter()
        .all(|b| b.reason == BreakReason::FusionOff));
    assert_eq!(unfused.plan.breaks.len(), 3);
}

#[test]
fn the_context_product_chains_after_the_softmax_in_one_kernel() {
    let c = compile(&attention(), &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", names(&c));
    let k = &c.plan.kernels[0];
    assert_eq!(k.kind, KernelKind::Matmul);
    assert_eq!(k.nodes, ["scores", "scaled", "probs", "context"]);
    // The probabilities stay in L1: only the context is written, and v is read whole per block.
    assert_eq!(k.writes, ["context"]);
    assert_eq!(k.reads, ["q", "k", "v"]);
    assert!(c.plan.breaks.is_empty(), "{:?}", c.plan.breaks);
}

#[test]
fn a_chained_product_takes_its_elementwise_epilogue_and_a_plain_kernel_takes_none() {
    // mlp2: relu's kernel has no row-wise epilogue, so the second matmul starts its own.
    let c = compile(&mlp2(), &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(c.plan.kernels.len(), 2);
    // softmax(q k^T) @ v + bias: the bias is a row vector of the product's width.
    let mut g = attention();
    let o = g.outputs[0].1;
    let b = constant(&mut g, "ctx_bias", &[64], 13, 0.1);
    let y = binary(&mut g, "biased", BinaryOp::Add, o, b);
    g.outputs = vec![("biased".into(), y)];
    let c = compile(&g, &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(names(&c).len(), 1, "{:?}", c.plan.breaks);
    assert_eq!(c.plan.kernels[0].writes, ["biased"]);
    let want = ttfuse::reference::run(&g, &inputs_for(&g)).expect("reference runs");
    let (_, _, got) = run(&g, FusionMode::Fused);
    let p = ttfuse::agreement::pcc(&want["biased"].to_f32(), &got["biased"].to_f32());
    assert!(p >= 0.999, "pcc {p}");
}

#[test]
fn a_matmul_with_several_consumers_keeps_its_output_and_stops_its_epilogue() {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 64]));
    let w = constant(&mut g, "w", &[64, 64], 20, 0.2);
    let m = matmul(&mut g, "mm", x, w);
    let r = unary(&mut g, "r", UnaryOp::Relu, m);
    let y = binary(&mut g, "y", BinaryOp::Add, m, r);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(names(&c), ["matmul", "relu_add"]);
    assert!(c
        .plan
        .breaks
        .iter()
        .any(|b| b.producer == "mm" && b.reason == BreakReason::SeveralConsumers { consumers: 2 }));
}

#[test]
fn an_output_used_inside_its_kernel_is_written_and_kept_in_l1() {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 96]));
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let h = scalar(&mut g, "half", 0.5);
    let s = binary(&mut g, "s", BinaryOp::Mul, e, h);
    let t = unary(&mut g, "t", UnaryOp::Tanh, s);
    output(&mut g, "s", s);
    output(&mut g, "t", t);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1);
    assert_eq!(c.plan.kernels[0].writes, ["s", "t"]);
}

#[test]
fn ops_no_output_depends_on_get_no_kernel_in_either_mode() {
    // A graph built through the library API may hold dead ops (the importers prune theirs):
    // matmul + bias on the way to nothing, beside the live chain.
    let mut g = eltwise_chain();
    let x = g.inputs[0];
    let w = constant(&mut g, "dead_w", &[128, 64], 11, 0.1);
    let b = constant(&mut g, "dead_b", &[64], 12, 0.1);
    let m = matmul(&mut g, "dead_mm", x, w);
    binary(&mut g, "dead_add", BinaryOp::Add, m, b);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let c = compile(&g, &device(), mode).expect("compiles");
        let nodes: Vec<&String> = c.plan.kernels.iter().flat_map(|k| &k.nodes).collect();
        assert!(
            !nodes.iter().any(|n| n.starts_with("dead")),
            "{mode:?}: {nodes:?}"
        );
        for dead in ["dead_mm", "dead_add"] {
            assert!(
                c.plan
                    .free
                    .iter()
                    .any(|f| f.node == dead && f.reason.contains("no graph output")),
                "{mode:?}: {dead} not listed as free"
            );
        }
        let (_, _, outs) = run(&g, mode);
        assert!(outs.contains_key("y"));
    }
}

#[test]
fn reshapes_of_the_same_2d_view_are_free() {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[2, 32, 64]));
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let r = g.add(
        "flat",
        Op::Reshape {
            shape: vec![64, 64],
        },
        f32t(&[64, 64]),
        &[e],
    );
    let y = unary(&mut g, "y", UnaryOp::Relu, r);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let c = run_checked(&g, &device(), mode);
        assert_eq!(c.plan.free.len(), 1, "{mode:?}");
        assert_eq!(c.plan.free[0].node, "flat");
        let expect = if mode == FusionMode::Fused { 1 } else { 2 };
        assert_eq!(c.plan.kernels.len(), expect, "{mode:?}");
    }
}

#[test]
fn dimensions_that_are_not_tile_multiples_are_padded() {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[48, 64]));
    let y = unary(&mut g, "y", UnaryOp::Exp, x);
    output(&mut g, "y", y);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let c = run_checked(&g, &device(), mode);
        assert_eq!(
            c.inputs[0].device_dims(),
            (64, 64),
            "{mode:?}: 48 rows padded to 64"
        );
    }
}

#[test]
fn batched_matmuls_with_unaligned_batches_are_named_in_the_error() {
    // Padding is per 2-D view, so [2, 48, 64] cannot be cut into per-batch tile rows.
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[2, 48, 64]));
    let b = g.add_input("b", f32t(&[2, 64, 64]));
    let y = matmul(&mut g, "y", a, b);
    output(&mut g, "y", y);
    let err = compile(&g, &device(), FusionMode::Fused)
        .expect_err("batched rows of 48 cannot be padded per batch")
        .to_string();
    assert!(
        err.contains("`y`") && err.contains("[2, 48, 64]") && err.contains("multiples of 32"),
        "{err}"
    );
}

#[test]
fn ops_without_a_template_run_as_host_steps() {
    let g = host_fallbacks();
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let c = run_checked(&g, &device(), mode);
        let kinds: Vec<KernelKind> = c.plan.kernels.iter().map(|k| k.kind).collect();
        assert_eq!(
            kinds,
            [KernelKind::Host, KernelKind::Host, KernelKind::Eltwise],
            "{mode:?}"
        );
        let hosts = c
            .program
            .steps
            .iter()
            .filter(|s| matches!(s, ttfuse_runtime::program::Step::Host { .. }))
            .count();
        assert_eq!((hosts, c.program.kernels.len()), (2, 1), "{mode:?}");
    }
}

#[test]
fn integer_tensors_on_the_device_are_an_error() {
    let mut g = Graph::new();
    let table = constant(&mut g, "table", &[64, 32], 50, 1.0);
    let ids = g.add_input("ids", TensorType::new(vec![32], DType::I64));
    let e = g.add(
        "embed",
        Op::Gather { axis: 0 },
        f32t(&[32, 32]),
        &[table, ids],
    );
    output(&mut g, "embed", e);
    let err = compile(&g, &device(), FusionMode::Fused)
        .expect_err("indices cannot live in bf16")
        .to_string();
    assert!(err.contains("`embed`") && err.contains("I64"), "{err}");
}

#[test]
fn explain_text_lists_kernels_buffers_and_reasons() {
    let c = compile(&scaled_attention_scores(), &device(), FusionMode::Fused).expect("compiles");
    let text = c.plan.to_text();
    for needle in [
        "matmul_bt_mul_softmax",
        "k_t (Transpose)",
        "circular buffer",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// The guide's pattern 3 on a tall input: LayerNorm, the two MLP products with bias, ReLU and
/// the residual in one kernel, since its whole-row blocks already fill the grid. Among the
/// block sizes that fit, the estimate picks two rows per block on 32 cores (20.9 us on the
/// runtime, against 24.2 us for one row per block on 64: fewer weight reads and block
/// overheads).
#[test]
fn norm_mlp_and_residual_chain_into_one_kernel_when_rows_fill_the_grid() {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[2048, 64]));
    let gamma = constant(&mut g, "gamma", &[64], 21, 0.5);
    let beta = constant(&mut g, "beta", &[64], 22, 0.1);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        f32t(&[2048, 64]),
        &[x, gamma, beta],
    );
    let w1 = constant(&mut g, "w1", &[64, 128], 23, 0.1);
    let b1 = constant(&mut g, "b1", &[128], 24, 0.1);
    let w2 = constant(&mut g, "w2", &[128, 64], 25, 0.1);
    let b2 = constant(&mut g, "b2", &[64], 26, 0.1);
    let h = matmul(&mut g, "h", ln, w1);
    let hb = binary(&mut g, "hb", BinaryOp::Add, h, b1);
    let hr = unary(&mut g, "hr", UnaryOp::Relu, hb);
    let o = matmul(&mut g, "o", hr, w2);
    let ob = binary(&mut g, "ob", BinaryOp::Add, o, b2);
    let y = binary(&mut g, "y", BinaryOp::Add, ob, x);
    output(&mut g, "y", y);
    let c = compile(&g, &device(), FusionMode::Fused).expect("compiles");
    assert_eq!(names(&c).len(), 1, "{:?}", c.plan.breaks);
    let k = &c.plan.kernels[0];
    assert_eq!(k.writes, ["y"]);
    assert!(k.partition.cores_used >= 32, "{}", k.partition_summary);
    let want = ttfuse::reference::run(&g, &inputs_for(&g)).expect("reference runs");
    let (_, fused, got) = run(&g, FusionMode::Fused);
    let (_, unfused, _) = run(&g, FusionMode::Unfused);
    let p = ttfuse::agreement::pcc(&want["y"].to_f32(), &got["y"].to_f32());
    assert!(p >= 0.999, "pcc {p}");
    assert!(
        fused.report.total_us < unfused.report.total_us,
        "fused {} us, unfused {} us",
        fused.report.total_us,
        unfused.report.total_us
    );
}

/// `softmax(s) @ v` as `(exp(s - max) @ v) / sum`: the attention kernel divides the context
/// product's columns by the row sums instead of normalizing the scores, so no block of
/// normalized probabilities sits in L1; the numbers agree with the reference.
#[test]
fn attention_normalizes_after_the_context_product() {
    let g = attention();
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1, "{:?}", c.plan.breaks);
    let cbs: Vec<&str> = c.plan.kernels[0]
        .cbs
        .iter()
        .map(|cb| cb.name.as_str())
        .collect();
    assert!(cbs.contains(&"context_unnormalized_cb"), "{cbs:?}");
    assert!(cbs.contains(&"probs_sum_cb"), "{cbs:?}");
    // The scores' block is never divided: the division is over the 64 columns of v.
    assert!(!cbs.contains(&"probs_cb"), "{cbs:?}");
}

#[test]
fn a_matmul_s_blocks_keep_the_most_cores_busy_with_the_fewest_operand_reads() {
    // [256, 128] @ [128, 576] is 8 x 18 output tiles. No block shape has 64 blocks: 1x1 tiles
    // give 144, three per core on 48 cores, which 48 blocks of 1x3 tiles also keep busy, and
    // as an 8 x 6 block grid they share A along grid rows and B down grid columns, reading
    // each once.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[256, 128]));
    let w = constant(&mut g, "w", &[128, 576], 3, 0.1);
    let y = matmul(&mut g, "y", x, w);
    output(&mut g, "y", y);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let p = &c.plan.kernels[0].partition;
    assert_eq!((p.block, p.blocks, p.cores_used), ((1, 3), 48, 48), "{p:?}");
    assert!(p.multicast && p.grid == (6, 8), "{p:?}");
}

#[test]
fn a_transpose_of_axes_of_size_one_is_a_view() {
    // [1, 64, 96] to [64, 1, 96] (PyTorch's batch-first attention turning sequence-first):
    // the same elements in the same order, the same 2-D view.
    let transposed = |shape: &[usize], perm: Vec<usize>| {
        let mut g = Graph::new();
        let x = g.add_input("x", f32t(shape));
        let out: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let t = g.add("t", Op::Transpose { perm }, f32t(&out), &[x]);
        let y = unary(&mut g, "y", UnaryOp::Relu, t);
        output(&mut g, "y", y);
        g
    };
    let g = transposed(&[1, 64, 96], vec![1, 0, 2]);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(names(&c), ["relu"]);
    assert!(
        c.plan.free.iter().any(|f| f.node == "t"),
        "{:?}",
        c.plan.free
    );

    // Axes longer than one swapped: a transpose kernel.
    let g = transposed(&[1, 64, 96], vec![0, 2, 1]);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert!(
        c.plan.free.iter().all(|f| f.node != "t"),
        "{:?}",
        c.plan.free
    );
    let view = |shape: &[usize], perm: Vec<usize>| {
        let g = transposed(shape, perm);
        let t = g.dag.node_indices().find(|&n| g.node(n).name == "t");
        ttfuse::plan::group::is_view(&g, t.expect("the transpose"))
    };
    // [2, 32, 96] to [32, 2, 96] has the same 2-D view, but reorders its rows.
    assert!(!view(&[2, 32, 96], vec![1, 0, 2]));
    // [64, 96, 1] to [64, 1, 96] keeps the elements' order but not the 2-D view (96 rows of
    // one column each become one row of 96).
    assert!(!view(&[64, 96, 1], vec![0, 2, 1]));
    assert!(view(&[64, 1, 1, 96], vec![2, 0, 1, 3]));
}
