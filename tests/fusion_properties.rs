//! Property (issue 6): random graphs of elementwise ops, row reductions, broadcasts, matmuls
//! (with constant weights and between computed values, B transposed; two products of one norm,
//! which fuse chained after it with their columns split over the grid), softmax and the norm and
//! activation composites give the same numbers fused and unfused. Each graph goes through the
//! whole pipeline (e-graph optimization, fused lowering, unfused lowering), both programs run
//! on the runtime with bf16 numerics, and each output is compared with the f32 reference
//! interpreter and between the two programs.
//!
//! The shape is 96 x 64 (3 x 2 tiles) so that row and column blocks differ; the cases come
//! from a fixed seed, so CI runs the same 256 graphs every time.

mod lower_common;

use std::collections::BTreeMap;

use lower_common::{binary, constant, device, f32t, matmul, reduce, scalar, transpose_last, unary};
use petgraph::graph::NodeIndex;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ttfuse::agreement::Agreement;
use ttfuse::graph::{BinaryOp, Graph, Op, ReduceOp, TensorData, UnaryOp};
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::pipeline::{self, Model};
use ttfuse_runtime::exec::Dispatch;

const ROWS: usize = 96;
const COLS: usize = 64;

/// Builds one random graph, step by step, with fresh names for every node.
struct Builder {
    g: Graph,
    seed: u64,
}

impl Builder {
    fn name(&self, stem: &str) -> String {
        format!("{stem}_{}", self.g.dag.node_count())
    }

    fn un(&mut self, u: UnaryOp, x: NodeIndex) -> NodeIndex {
        let n = self.name("u");
        unary(&mut self.g, &n, u, x)
    }

    fn bin(&mut self, b: BinaryOp, x: NodeIndex, y: NodeIndex) -> NodeIndex {
        let n = self.name("b");
        binary(&mut self.g, &n, b, x, y)
    }

    fn scalar(&mut self, v: f32) -> NodeIndex {
        let n = self.name("s");
        scalar(&mut self.g, &n, v)
    }

    /// A seeded standard-normal constant scaled by `scale`.
    fn weight(&mut self, shape: &[usize], scale: f32) -> NodeIndex {
        self.seed += 1;
        let n = self.name("w");
        constant(&mut self.g, &n, shape, self.seed, scale)
    }

    fn row(&mut self, r: ReduceOp, x: NodeIndex) -> NodeIndex {
        let n = self.name("r");
        reduce(&mut self.g, &n, r, x)
    }

    fn mm(&mut self, a: NodeIndex, b: NodeIndex) -> NodeIndex {
        let n = self.name("mm");
        matmul(&mut self.g, &n, a, b)
    }

    /// softmax(a @ b^T / 8) @ b: scores over the rows of `b`, a batch-free attention.
    fn attention(&mut self, a: NodeIndex, b: NodeIndex) -> NodeIndex {
        let n = self.name("bt");
        let bt = transpose_last(&mut self.g, &n, b);
        let s = self.mm(a, bt);
        let scale = self.scalar(0.125);
        let scaled = self.bin(BinaryOp::Mul, s, scale);
        let n = self.name("softmax");
        let p = self
            .g
            .add(n, Op::Softmax { axis: 1 }, f32t(&[ROWS, ROWS]), &[scaled]);
        self.mm(p, b)
    }

    /// Applies step `code` to the [ROWS, COLS] values `a` and `b`; every step returns a
    /// [ROWS, COLS] value whose size stays bounded for bounded inputs.
    fn step(&mut self, code: u8, a: NodeIndex, b: NodeIndex) -> NodeIndex {
        match code % 17 {
            0 => self.bin(BinaryOp::Add, a, b),
            1 => self.bin(BinaryOp::Sub, a, b),
            2 => {
                let t = self.un(UnaryOp::Tanh, b);
                self.bin(BinaryOp::Mul, a, t)
            }
            3 => self.un(UnaryOp::Tanh, a),
            4 => self.un(UnaryOp::Relu, a),
            5 => {
                // SiLU as exported: a * sigmoid(a)
                let s = self.un(UnaryOp::Sigmoid, a);
                self.bin(BinaryOp::Mul, a, s)
            }
            6 => {
                let ab = self.un(UnaryOp::Abs, a);
                let ng = self.un(UnaryOp::Neg, ab);
                self.un(UnaryOp::Exp, ng)
            }
            7 => {
                // a @ W + bias (a matmul with its epilogue)
                let w = self.weight(&[COLS, COLS], 0.125);
                let bias = self.weight(&[COLS], 0.5);
                let m = self.mm(a, w);
                self.bin(BinaryOp::Add, m, bias)
            }
            8 => self.attention(a, b),
            9 => {
                // stable softmax over rows, spelled out
                let m = self.row(ReduceOp::Max, a);
                let d = self.bin(BinaryOp::Sub, a, m);
                let e = self.un(UnaryOp::Exp, d);
                let s = self.row(ReduceOp::Sum, e);
                self.bin(BinaryOp::Div, e, s)
            }
            10 => {
                // a - mean over each row (a row reduction broadcast back)
                let m = self.row(ReduceOp::Mean, a);
                self.bin(BinaryOp::Sub, a, m)
            }
            11 => {
                // a scaled by a per-row statistic of b
                let s = self.row(ReduceOp::Mean, b);
                self.bin(BinaryOp::Mul, a, s)
            }
            12 => {
                // a column vector broadcast across the columns
                let c = self.weight(&[ROWS, 1], 1.0);
                self.bin(BinaryOp::Add, a, c)
            }
            13 => {
                let gamma = self.weight(&[COLS], 0.5);
                let beta = self.weight(&[COLS], 0.5);
                // eps 0.1: a row that is constant but for rounding (x + c - x) has a variance
                // of bf16 noise, which a tiny eps would scale up to O(1) values on the device
                // while f32 keeps it below eps; an ill-conditioned input, not a fusion bug.
                let n = self.name("ln");
                self.g.add(
                    n,
                    Op::LayerNorm { eps: 0.1 },
                    f32t(&[ROWS, COLS]),
                    &[a, gamma, beta],
                )
            }
            14 => {
                // GELU, erf form as torch exports it
                let s2 = self.scalar(std::f32::consts::SQRT_2);
                let one = self.scalar(1.0);
                let half = self.scalar(0.5);
                let q = self.bin(BinaryOp::Div, a, s2);
                let e = self.un(UnaryOp::Erf, q);
                let p = self.bin(BinaryOp::Add, e, one);
                let m = self.bin(BinaryOp::Mul, a, p);
                self.bin(BinaryOp::Mul, m, half)
            }
            15 => {
                // two products of one norm combined, as a gated MLP or q, k and v: chained
                // after the norm in one kernel, their columns cut over the grid together
                let g = self.weight(&[COLS], 0.5);
                let n = self.name("rms");
                let r = self
                    .g
                    .add(n, Op::RmsNorm { eps: 0.1 }, f32t(&[ROWS, COLS]), &[a, g]);
                let (w1, w2) = (
                    self.weight(&[COLS, COLS], 0.125),
                    self.weight(&[COLS, COLS], 0.125),
                );
                let (p1, p2) = (self.mm(r, w1), self.mm(r, w2));
                let act = self.un(UnaryOp::Tanh, p1);
                self.bin(BinaryOp::Mul, act, p2)
            }
            _ => self.bin(BinaryOp::Max, a, b),
        }
    }
}

/// A graph from a program: each step combines two earlier values; the last two are outputs.
fn build(program: &[(u8, u8, u8)], seed: u64) -> Graph {
    let mut b = Builder {
        g: Graph::new(),
        seed,
    };
    let x = b.g.add_input("x", f32t(&[ROWS, COLS]));
    let y = b.g.add_input("y", f32t(&[ROWS, COLS]));
    let mut values = vec![x, y];
    for &(code, i, j) in program {
        let a = values[i as usize % values.len()];
        let c = values[j as usize % values.len()];
        let v = b.step(code, a, c);
        values.push(v);
    }
    let n = values.len();
    b.g.outputs.push(("out0".into(), values[n - 1]));
    if values[n - 2] != x && values[n - 2] != y {
        b.g.outputs.push(("out1".into(), values[n - 2]));
    }
    b.g
}

/// The largest magnitude of any value the reference computes on the way to `graph`'s
/// outputs: the scale that bf16 rounding errors are relative to.
fn computation_scale(graph: &Graph, inputs: &BTreeMap<String, TensorData>) -> f64 {
    let mut every_value = graph.clone();
    every_value.outputs = graph
        .dag
        .node_indices()
        .filter(|&n| !matches!(graph.node(n).op, Op::Constant(_)))
        .map(|n| (graph.node(n).name.clone(), n))
        .collect();
    let values = ttfuse::reference::run(&every_value, inputs).expect("reference runs");
    values
        .values()
        .flat_map(|t| t.to_f32())
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())))
}

/// Whether `a` (the agreement of one output with `want`) is agreement: PCC >= 0.999; or, where
/// bf16 rounding dominates any correlation, errors of a few bf16 steps: within 4 steps (2^-6) of
/// the output's own magnitude for an output whose values barely vary, within 2% of the
/// computation's `scale` for a near-cancellation (values under 5% of that scale).
fn agrees(a: Agreement, want: &TensorData, scale: f64) -> bool {
    let magnitude = want
        .to_f32()
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    a.pcc >= 0.999
        || a.max_abs_err <= magnitude / 64.0
        || (magnitude < 0.05 * scale && a.max_abs_err <= 0.02 * scale)
}

/// Checks that the fused and unfused programs of `graph` both match the reference interpreter
/// and each other ([`agrees`]).
fn check(graph: Graph, seed: u64) -> Result<(), TestCaseError> {
    let model = Model {
        name: "random".into(),
        graph,
    };
    let dev = device();
    let c = pipeline::compile(&model, &dev, &OptimizeOptions::default())
        .map_err(|e| TestCaseError::fail(format!("compile: {e:#}")))?;
    let inputs = ttfuse::inputs::complete_inputs(&model.graph, BTreeMap::new(), seed);
    let reference = pipeline::reference_outputs(&model.graph, &inputs)
        .map_err(|e| TestCaseError::fail(format!("reference: {e:#}")))?;
    let run = |compiled, mode: &str| {
        pipeline::execute(compiled, &dev, &inputs, &GraphHostOps, Dispatch::Traced)
            .map_err(|e| TestCaseError::fail(format!("{mode} run: {e:#}")))
    };
    let scale = computation_scale(&model.graph, &inputs);
    let fused = run(&c.fused, "fused")?;
    let unfused = run(&c.unfused, "unfused")?;
    let pairs = [
        ("fused vs reference", &reference, &fused.outputs),
        ("unfused vs reference", &reference, &unfused.outputs),
        ("fused vs unfused", &unfused.outputs, &fused.outputs),
    ];
    for (what, want, got) in pairs {
        let (per_output, _) = pipeline::agreement(want, got)
            .map_err(|e| TestCaseError::fail(format!("{what}: {e:#}")))?;
        for (name, a) in per_output {
            prop_assert!(
                agrees(a, &want[&name], scale),
                "{what}, output {name}: PCC {} (max |err| {}, values up to {scale}); fused program has {} launches",
                a.pcc,
                a.max_abs_err,
                c.fused.program.launches()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(20261201),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fused_and_unfused_agree(
        program in prop::collection::vec((0u8..17, any::<u8>(), any::<u8>()), 1..7),
        seed in 0u64..1000,
    ) {
        check(build(&program, seed), seed)?;
    }
}

/// Every step code on its own, over both inputs, so each kind of op is covered whatever the
/// random cases draw.
#[test]
fn every_step_alone_agrees() {
    for code in 0..17u8 {
        let g = build(&[(code, 0, 1)], u64::from(code));
        check(g, 7).unwrap_or_else(|e| panic!("step {code}: {e}"));
    }
}

/// Graphs the property found broken, kept as fixed cases.
#[test]
fn graphs_that_once_failed_agree() {
    let cases: [&[(u8, u8, u8)]; 3] = [
        // An op no output needs: the unfused lowering emitted a kernel without a body.
        &[(0, 0, 0), (7, 0, 0), (3, 4, 0), (0, 0, 9)],
        // x + x and softmax(x) each read by the other's kernel: a cycle between kernels.
        &[(0, 0, 0), (9, 93, 0), (1, 59, 94), (0, 17, 38)],
        // softmax(x x^T) @ x + x in one row-wise kernel: x read through one parameter.
        &[(8, 44, 6), (8, 108, 114), (0, 0, 83), (0, 64, 72)],
    ];
    for program in cases {
        check(build(program, 0), 0).unwrap_or_else(|e| panic!("{program:?}: {e}"));
    }
}
