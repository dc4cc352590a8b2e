//! Shapes that are not multiples of 32: tensors are zero-padded on the device and sliced back,
//! reductions mask the padded columns, and fused and unfused programs match the reference.

mod lower_common;

use std::collections::BTreeMap;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph, Op, ReduceOp, TensorData, UnaryOp};
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::lower::{compile, FusionMode};
use ttfuse_runtime::exec::{run_program, Dispatch};

/// exp(x) + bias, relu, * 0.125 on [100, 50].
fn eltwise_100x50() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[100, 50]));
    let bias = constant(&mut g, "bias", &[50], 1, 0.5);
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let a = binary(&mut g, "a", BinaryOp::Add, e, bias);
    let r = unary(&mut g, "r", UnaryOp::Relu, a);
    let s = scalar(&mut g, "scale", 0.125);
    let y = binary(&mut g, "y", BinaryOp::Mul, r, s);
    output(&mut g, "y", y);
    g
}

/// Softmax over a padded last axis, composite and spelled out (max, exp, sum, divide).
fn softmax_77x200() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[77, 200]));
    let y = g.add("y", Op::Softmax { axis: 1 }, f32t(&[77, 200]), &[x]);
    output(&mut g, "y", y);
    let x2 = g.add_input("x2", f32t(&[2, 7, 50]));
    let m = reduce(&mut g, "row_max", ReduceOp::Max, x2);
    let d = binary(&mut g, "shifted", BinaryOp::Sub, x2, m);
    let e = unary(&mut g, "exps", UnaryOp::Exp, d);
    let s = reduce(&mut g, "row_sum", ReduceOp::Sum, e);
    let p = binary(&mut g, "probs", BinaryOp::Div, e, s);
    output(&mut g, "probs", p);
    g
}

/// LayerNorm, RMSNorm, a mean and a min over a last axis of 50 (shifted so that padding zeros
/// would move every statistic).
fn norms_100x50() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[100, 50]));
    let shift = scalar(&mut g, "shift", 3.0);
    let xs = binary(&mut g, "xs", BinaryOp::Add, x, shift);
    let gamma = constant(&mut g, "gamma", &[50], 8, 0.5);
    let beta = constant(&mut g, "beta", &[50], 9, 0.5);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        f32t(&[100, 50]),
        &[xs, gamma, beta],
    );
    output(&mut g, "ln", ln);
    let g2 = constant(&mut g, "g2", &[50], 10, 0.5);
    let rms = g.add(
        "rms",
        Op::RmsNorm { eps: 1e-6 },
        f32t(&[100, 50]),
        &[xs, g2],
    );
    output(&mut g, "rms", rms);
    let mean = reduce(&mut g, "mean", ReduceOp::Mean, xs);
    output(&mut g, "mean", mean);
    let min = reduce(&mut g, "min", ReduceOp::Min, xs);
    output(&mut g, "min", min);
    g
}

/// relu(x @ w + b) @ w2 with x [77, 100], w [100, 50], w2 [50, 40]: padded M, K and N, and a
/// second matmul whose A operand is a kernel result (its padding is relu(0 + 0) = 0, and w2's
/// padding is zero anyway).
fn matmul_77x100x50() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[77, 100]));
    let w = constant(&mut g, "w", &[100, 50], 2, 0.1);
    let b = constant(&mut g, "b", &[50], 3, 0.1);
    let m = matmul(&mut g, "mm", x, w);
    let a = binary(&mut g, "biased", BinaryOp::Add, m, b);
    let h = unary(&mut g, "h", UnaryOp::Relu, a);
    output(&mut g, "h", h);
    let w2 = constant(&mut g, "w2", &[50, 40], 4, 0.1);
    let y = matmul(&mut g, "y", h, w2);
    output(&mut g, "y", y);
    g
}

fn padded_graphs() -> Vec<(&'static str, Graph)> {
    vec![
        ("eltwise_100x50", eltwise_100x50()),
        ("softmax_77x200", softmax_77x200()),
        ("norms_100x50", norms_100x50()),
        ("matmul_77x100x50", matmul_77x100x50()),
    ]
}

#[test]
fn padded_graphs_match_the_reference_fused_and_unfused() {
    let dev = device();
    for (name, g) in padded_graphs() {
        for mode in [FusionMode::Fused, FusionMode::Unfused] {
            let compiled = compile(&g, &dev, mode)
                .unwrap_or_else(|e| panic!("{name} {mode:?} compiles with padding: {e}"));
            assert!(
                compiled
                    .inputs
                    .iter()
                    .chain(&compiled.outputs)
                    .any(|b| b.device_dims() != ttfuse::plan::layout::flat2d(&b.shape)),
                "{name}: some binding is padded"
            );
            run_checked(&g, &dev, mode);
        }
    }
}

/// relu(x @ w + b) * 0.5 with x [rows, k], w [k, n], b [n] all graph inputs.
fn matmul_inputs(rows: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, k]));
    let w = g.add_input("w", f32t(&[k, n]));
    let b = g.add_input("b", f32t(&[n]));
    let m = matmul(&mut g, "mm", x, w);
    let a = binary(&mut g, "biased", BinaryOp::Add, m, b);
    let r = unary(&mut g, "r", UnaryOp::Relu, a);
    let half = scalar(&mut g, "half", 0.5);
    let y = binary(&mut g, "y", BinaryOp::Mul, r, half);
    output(&mut g, "y", y);
    g
}

/// Runs `g` on `inputs` and returns output `y` as the device holds it (padded 2-D view).
fn run_device(
    g: &Graph,
    mode: FusionMode,
    inputs: &BTreeMap<String, TensorData>,
) -> (usize, usize, Vec<f32>) {
    let dev = device();
    let c = compile(g, &dev, mode).expect("compiles");
    let mut dev_inputs = BTreeMap::new();
    for b in &c.inputs {
        dev_inputs.insert(b.tensor.clone(), b.to_device(&inputs[&b.name]));
    }
    let run = run_program(
        &c.program,
        &dev,
        &dev_inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .expect("runs");
    let b = c.outputs.iter().find(|b| b.name == "y").expect("output y");
    let t = &run.tensors[&b.tensor];
    (t.rows, t.cols, t.to_f32())
}

/// `values` of a `[r, c]` matrix placed in the top-left corner of a zero `[pr, pc]` one.
fn embed(values: &[f32], (r, c): (usize, usize), (pr, pc): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0.0; pr * pc];
    for i in 0..r {
        out[i * pc..i * pc + c].copy_from_slice(&values[i * c..(i + 1) * c]);
    }
    out
}

#[test]
fn padded_results_equal_the_aligned_computation_bit_for_bit() {
    // A [77, 100] @ [100, 50] problem gives exactly the numbers of the same problem embedded
    // in zeros at [96, 128] @ [128, 64], in both modes: padding never reaches real results.
    let small = matmul_inputs(77, 100, 50);
    let big = matmul_inputs(96, 128, 64);
    let inputs = inputs_for(&small);
    let mut big_inputs = BTreeMap::new();
    for (name, (shape, pshape)) in [
        ("x", ((77, 100), (96, 128))),
        ("w", ((100, 50), (128, 64))),
        ("b", ((1, 50), (1, 64))),
    ] {
        let vals = embed(&inputs[name].to_f32(), shape, pshape);
        let dims = if name == "b" {
            vec![pshape.1]
        } else {
            vec![pshape.0, pshape.1]
        };
        big_inputs.insert(
            name.to_string(),
            TensorData::F32 {
                shape: dims,
                values: vals,
            },
        );
    }
    let expected = ttfuse::reference::run(&small, &inputs).expect("reference runs")["y"].to_f32();
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        let (rows, cols, padded) = run_device(&small, mode, &inputs);
        let (brows, bcols, aligned) = run_device(&big, mode, &big_inputs);
        assert_eq!(
            (rows, cols),
            (96, 64),
            "{mode:?}: [77, 50] is held as [96, 64]"
        );
        assert_eq!((brows, bcols), (96, 64));
        for i in 0..77 {
            for j in 0..50 {
                assert_eq!(
                    padded[i * 64 + j].to_bits(),
                    aligned[i * 64 + j].to_bits(),
                    "{mode:?} [{i}, {j}]"
                );
            }
        }
        let got: Vec<f32> = (0..77)
            .flat_map(|i| padded[i * 64..i * 64 + 50].to_vec())
            .collect();
        let p = ttfuse::agreement::pcc(&expected, &got);
        assert!(p >= 0.999, "{mode:?}: pcc {p}");
    }
}

#[test]
fn masks_are_program_constants_only_where_a_reduction_meets_padding() {
    let dev = device();
    let c = compile(&softmax_77x200(), &dev, FusionMode::Fused).expect("compiles");
    let masks: Vec<_> = c
        .program
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("col_mask"))
        .collect();
    assert!(!masks.is_empty(), "softmax over 200 columns reads a mask");
    for m in masks {
        assert_eq!(m.rows, 32);
        assert!(m.cols == 224 || m.cols == 64, "{} cols", m.cols);
    }
    let aligned = compile(&softmax_composite(), &dev, FusionMode::Fused).expect("compiles");
    assert!(
        !aligned
            .program
            .tensors
            .iter()
            .any(|t| t.name.starts_with("col_mask")),
        "tile-aligned reductions need no mask"
    );
}

#[test]
fn a_padded_inner_dimension_between_two_computed_operands_is_an_error() {
    // q @ k^T with both from exp(): neither operand's padding is known to be zero.
    let mut g = Graph::new();
    let q = g.add_input("q", f32t(&[64, 50]));
    let k = g.add_input("k", f32t(&[50, 64]));
    let eq = unary(&mut g, "eq", UnaryOp::Exp, q);
    let ek = unary(&mut g, "ek", UnaryOp::Exp, k);
    let s = matmul(&mut g, "s", eq, ek);
    output(&mut g, "s", s);
    let err = compile(&g, &device(), FusionMode::Unfused)
        .expect_err("padded K of computed operands is refused");
    let msg = err.to_string();
    assert!(msg.contains("`s`") && msg.contains("50"), "{msg}");
}

#[test]
fn padded_transposes_and_transposed_operands_match_the_reference() {
    // A [77, 50] transpose, and q @ k^T with K = 50 where k^T's padding comes from the input's.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[77, 50]));
    let xt = transpose_last(&mut g, "xt", x);
    output(&mut g, "xt", xt);
    let q = g.add_input("q", f32t(&[64, 50]));
    let k = g.add_input("k", f32t(&[40, 50]));
    let kt = transpose_last(&mut g, "kt", k);
    let s = matmul(&mut g, "s", q, kt);
    let p = g.add("p", Op::Softmax { axis: 1 }, f32t(&[64, 40]), &[s]);
    output(&mut g, "p", p);
    for mode in [FusionMode::Fused, FusionMode::Unfused] {
        run_checked(&g, &device(), mode);
    }
}
