//! Property: on random graphs built from elementwise ops, row reductions and the exporter forms
//! of softmax, RMSNorm, GELU and SiLU, `optimize()` keeps every output's values (reference
//! interpreter), never raises the modeled cost, and keeps inputs and outputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use proptest::prelude::*;
use ttfuse::graph::infer::infer;
use ttfuse::graph::{BinaryOp, DType, Graph, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use ttfuse::optimize::{optimize, OptimizeOptions};
use ttfuse::reference;

const SHAPE: [usize; 2] = [4, 16];

struct B {
    g: Graph,
}

impl B {
    fn op(&mut self, op: Op, inputs: &[NodeIndex]) -> NodeIndex {
        let tys: Vec<TensorType> = inputs.iter().map(|&i| self.g.node(i).ty.clone()).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = infer(&op, &refs).expect("generated ops are well typed");
        let name = format!("n{}", self.g.dag.node_count());
        self.g.add(name, op, ty, inputs)
    }

    fn scalar(&mut self, v: f32) -> NodeIndex {
        let name = format!("c{}", self.g.dag.node_count());
        let data = TensorData::F32 {
            shape: vec![],
            values: vec![v],
        };
        self.g.add(
            name,
            Op::Constant(Arc::new(data)),
            TensorType::new(vec![], DType::F32),
            &[],
        )
    }

    fn un(&mut self, u: UnaryOp, x: NodeIndex) -> NodeIndex {
        self.op(Op::Unary(u), &[x])
    }

    fn bin(&mut self, b: BinaryOp, x: NodeIndex, y: NodeIndex) -> NodeIndex {
        self.op(Op::Binary(b), &[x, y])
    }

    fn row(&mut self, r: ReduceOp, x: NodeIndex) -> NodeIndex {
        self.op(
            Op::Reduce {
                op: r,
                axes: vec![1],
                keep_dims: true,
            },
            &[x],
        )
    }

    /// Applies step `code` to values `a` and `b` (bounded results for bounded inputs).
    fn step(&mut self, code: u8, a: NodeIndex, b: NodeIndex) -> NodeIndex {
        match code % 16 {
            0 => self.bin(BinaryOp::Add, a, b),
            1 => self.bin(BinaryOp::Sub, a, b),
            2 => self.bin(BinaryOp::Mul, a, b),
            3 => {
                // a / (1 + |b|)
                let one = self.scalar(1.0);
                let ab = self.un(UnaryOp::Abs, b);
                let d = self.bin(BinaryOp::Add, one, ab);
                self.bin(BinaryOp::Div, a, d)
            }
            4 => self.un(UnaryOp::Neg, a),
            5 => self.un(UnaryOp::Tanh, a),
            6 => {
                // sqrt(|a|) as pow(|a|, 0.5)
                let ab = self.un(UnaryOp::Abs, a);
                let h = self.scalar(0.5);
                self.bin(BinaryOp::Pow, ab, h)
            }
            7 => {
                let two = self.scalar(2.0);
                self.bin(BinaryOp::Pow, a, two)
            }
            8 => {
                // stable softmax over rows, as exported
                let m = self.row(ReduceOp::Max, a);
                let d = self.bin(BinaryOp::Sub, a, m);
                let e = self.un(UnaryOp::Exp, d);
                let s = self.row(ReduceOp::Sum, e);
                self.bin(BinaryOp::Div, e, s)
            }
            9 => {
                // RMSNorm, Pow/ReduceMean/Add/Sqrt/Reciprocal/Mul form, gamma = b's first row
                let two = self.scalar(2.0);
                let eps = self.scalar(1e-5);
                let sq = self.bin(BinaryOp::Pow, a, two);
                let ms = self.row(ReduceOp::Mean, sq);
                let ad = self.bin(BinaryOp::Add, ms, eps);
                let sr = self.un(UnaryOp::Sqrt, ad);
                let inv = self.un(UnaryOp::Recip, sr);
                let n = self.bin(BinaryOp::Mul, a, inv);
                let g = self.op(
                    Op::Slice {
                        axes: vec![0],
                        starts: vec![0],
                        ends: vec![1],
                        steps: vec![1],
                    },
                    &[b],
                );
                self.bin(BinaryOp::Mul, n, g)
            }
            10 => {
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
            11 => {
                let s = self.un(UnaryOp::Sigmoid, a);
                self.bin(BinaryOp::Mul, a, s)
            }
            12 => {
                // a - mean(a) over rows
                let m = self.row(ReduceOp::Mean, a);
                self.bin(BinaryOp::Sub, a, m)
            }
            13 => {
                let one = self.scalar(1.0);
                self.bin(BinaryOp::Mul, one, a)
            }
            14 => {
                // a transposed twice
                let t = self.op(Op::Transpose { perm: vec![1, 0] }, &[a]);
                self.op(Op::Transpose { perm: vec![1, 0] }, &[t])
            }
            _ => self.bin(BinaryOp::Max, a, b),
        }
    }
}

/// A graph from a program: each step combines two earlier values; the last two are outputs.
fn build(program: &[(u8, u8, u8)]) -> Graph {
    let mut b = B { g: Graph::new() };
    let ty = TensorType::new(SHAPE.to_vec(), DType::F32);
    let mut values = vec![b.g.add_input("x", ty.clone()), b.g.add_input("y", ty)];
    for &(code, i, j) in program {
        let a = values[i as usize % values.len()];
        let c = values[j as usize % values.len()];
        let v = b.step(code, a, c);
        values.push(v);
    }
    let n = values.len();
    b.g.outputs.push(("out0".into(), values[n - 1]));
    b.g.outputs.push(("out1".into(), values[n - 2]));
    b.g
}

fn inputs(seed: u64) -> BTreeMap<String, TensorData> {
    let mut s = seed | 1;
    ["x", "y"]
        .iter()
        .map(|name| {
            let values = (0..SHAPE[0] * SHAPE[1])
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 4001) as f32 / 1000.0 - 2.0
                })
                .collect();
            (
                name.to_string(),
                TensorData::F32 {
                    shape: SHAPE.to_vec(),
                    values,
                },
            )
        })
        .collect()
}

fn close(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-3 * a.abs().max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn optimize_keeps_values(program in prop::collection::vec((0u8..16, any::<u8>(), any::<u8>()), 1..10), seed in any::<u64>()) {
        let g = build(&program);
        let out = optimize(&g, &OptimizeOptions::default()).unwrap();
        prop_assert!(out.report.cost_after <= out.report.cost_before, "{:?}", out.report);
        prop_assert_eq!(out.graph.outputs.len(), 2);
        let inputs = inputs(seed);
        let want = reference::run(&g, &inputs).unwrap();
        let got = reference::run(&out.graph, &inputs).unwrap();
        for (name, w) in &want {
            for (i, (a, b)) in w.to_f32().iter().zip(got[name].to_f32()).enumerate() {
                prop_assert!(close(*a, b), "{}[{}]: {} vs {} for {:?}", name, i, a, b, program);
            }
        }
    }
}
