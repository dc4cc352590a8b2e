//! `optimize()` on small graphs in the forms exporters write: the result keeps inputs and outputs,
//! computes the same values as the input graph under the reference interpreter, and has the
//! expected shape (composites recognized, cheaper primitives chosen).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::NodeIndex;
use ttfuse::graph::infer::infer;
use ttfuse::graph::{BinaryOp, DType, Graph, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use ttfuse::optimize::{optimize, OptimizeError, OptimizeOptions, Optimized};
use ttfuse::reference;

/// A graph under construction; every node is typed by the graph's own inference.
struct B {
    g: Graph,
}

impl B {
    fn new() -> Self {
        B { g: Graph::new() }
    }

    fn input(&mut self, name: &str, shape: &[usize]) -> NodeIndex {
        self.g
            .add_input(name, TensorType::new(shape.to_vec(), DType::F32))
    }

    fn constant(&mut self, shape: &[usize], values: Vec<f32>) -> NodeIndex {
        let data = TensorData::F32 {
            shape: shape.to_vec(),
            values,
        };
        let name = format!("c{}", self.g.dag.node_count());
        self.g.add(
            name,
            Op::Constant(Arc::new(data)),
            TensorType::new(shape.to_vec(), DType::F32),
            &[],
        )
    }

    fn scalar(&mut self, v: f32) -> NodeIndex {
        self.constant(&[], vec![v])
    }

    fn op(&mut self, op: Op, inputs: &[NodeIndex]) -> NodeIndex {
        let tys: Vec<TensorType> = inputs.iter().map(|&i| self.g.node(i).ty.clone()).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = infer(&op, &refs).unwrap();
        let name = format!("n{}", self.g.dag.node_count());
        self.g.add(name, op, ty, inputs)
    }

    fn un(&mut self, u: UnaryOp, x: NodeIndex) -> NodeIndex {
        self.op(Op::Unary(u), &[x])
    }

    fn bin(&mut self, b: BinaryOp, x: NodeIndex, y: NodeIndex) -> NodeIndex {
        self.op(Op::Binary(b), &[x, y])
    }

    fn reduce(&mut self, r: ReduceOp, axis: usize, x: NodeIndex) -> NodeIndex {
        self.op(
            Op::Reduce {
                op: r,
                axes: vec![axis],
                keep_dims: true,
            },
            &[x],
        )
    }

    fn output(mut self, name: &str, x: NodeIndex) -> Graph {
        self.g.outputs.push((name.to_string(), x));
        self.g
    }
}

/// Deterministic pseudo-random values in [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn inputs_for(g: &Graph, scale: f32) -> BTreeMap<String, TensorData> {
    g.inputs
        .iter()
        .enumerate()
        .map(|(i, &idx)| {
            let n = g.node(idx);
            let data = TensorData::F32 {
                shape: n.ty.shape.clone(),
                values: values(n.ty.numel(), i as u64 + 7, scale),
            };
            (n.name.clone(), data)
        })
        .collect()
}

fn op_names(g: &Graph) -> Vec<String> {
    let mut v: Vec<String> = g.dag.node_weights().map(|n| n.op.name()).collect();
    v.sort();
    v
}

/// Optimizes `g` and checks interface and numerics; returns the result.
fn check(g: &Graph, opts: &OptimizeOptions, scale: f32) -> Optimized {
    let out = optimize(g, opts).unwrap();
    let sig = |g: &Graph| -> Vec<(String, TensorType)> {
        g.inputs
            .iter()
            .map(|&i| (g.node(i).name.clone(), g.node(i).ty.clone()))
            .collect()
    };
    assert_eq!(sig(&out.graph), sig(g), "inputs changed");
    let outs = |g: &Graph| -> Vec<(String, TensorType)> {
        g.outputs
            .iter()
            .map(|(n, i)| (n.clone(), g.node(*i).ty.clone()))
            .collect()
    };
    assert_eq!(outs(&out.graph), outs(g), "outputs changed");
    for idx in out.graph.dag.node_indices() {
        let n = out.graph.node(idx);
        if n.op == Op::Input {
            continue;
        }
        let tys: Vec<TensorType> = out
            .graph
            .inputs_of(idx)
            .iter()
            .map(|&i| out.graph.node(i).ty.clone())
            .collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        assert_eq!(
            infer(&n.op, &refs).unwrap(),
            n.ty,
            "node {} is mistyped",
            n.name
        );
    }
    let inputs = inputs_for(g, scale);
    let want = reference::run(g, &inputs).unwrap();
    let got = reference::run(&out.graph, &inputs).unwrap();
    for (name, w) in &want {
        let (w, o) = (w.to_f32(), got[name].to_f32());
        assert_eq!(w.len(), o.len());
        for (i, (a, b)) in w.iter().zip(&o).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "output {name}[{i}]: {a} vs {b}"
            );
        }
    }
    out
}

/// Options for a backend without composite kernels: every composite must be decomposed.
fn no_composites() -> OptimizeOptions {
    let mut opts = OptimizeOptions::default();
    opts.cost.composite_kernels.clear();
    opts
}

fn count(names: &[String], op: &str) -> usize {
    names.iter().filter(|n| *n == op).count()
}

#[test]
fn div_by_sqrt_becomes_mul_by_rsqrt() {
    let mut b = B::new();
    let x = b.input("x", &[64, 64]);
    let y = b.input("y", &[64, 64]);
    let ay = b.un(UnaryOp::Abs, y);
    let s = b.un(UnaryOp::Sqrt, ay);
    let d = b.bin(BinaryOp::Div, x, s);
    let g = b.output("out", d);
    let out = check(&g, &OptimizeOptions::default(), 2.0);
    let names = op_names(&out.graph);
    assert_eq!(
        (count(&names, "Rsqrt"), count(&names, "Mul")),
        (1, 1),
        "{names:?}"
    );
    assert_eq!(count(&names, "Sqrt") + count(&names, "Div"), 0, "{names:?}");
    assert!(out.report.cost_after < out.report.cost_before);
}

/// RMSNorm as torch exports it without fusion: Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul, Mul.
fn rmsnorm_graph() -> Graph {
    let mut b = B::new();
    let x = b.input("x", &[8, 64]);
    let gamma = b.constant(&[64], values(64, 3, 1.0));
    let two = b.scalar(2.0);
    let eps = b.scalar(1e-5);
    let sq = b.bin(BinaryOp::Pow, x, two);
    let ms = b.reduce(ReduceOp::Mean, 1, sq);
    let a = b.bin(BinaryOp::Add, ms, eps);
    let r = b.un(UnaryOp::Sqrt, a);
    let inv = b.un(UnaryOp::Recip, r);
    let n = b.bin(BinaryOp::Mul, x, inv);
    let y = b.bin(BinaryOp::Mul, n, gamma);
    b.output("y", y)
}

#[test]
fn rmsnorm_without_a_kernel_is_lowered_to_its_cheapest_primitives() {
    let out = check(&rmsnorm_graph(), &no_composites(), 2.0);
    assert!(
        out.report
            .rules_fired
            .keys()
            .any(|k| k.starts_with("rmsnorm-")),
        "{:?}",
        out.report.rules_fired
    );
    let names = op_names(&out.graph);
    assert_eq!(count(&names, "Rsqrt"), 1, "{names:?}");
    for gone in ["Pow", "Sqrt", "Recip", "Div"] {
        assert_eq!(count(&names, gone), 0, "{gone} left in {names:?}");
    }
    assert!(out.report.cost_after < out.report.cost_before);
}

#[test]
fn rmsnorm_is_recognized_as_one_composite_by_default() {
    let out = check(&rmsnorm_graph(), &OptimizeOptions::default(), 2.0);
    let names = op_names(&out.graph);
    assert_eq!(count(&names, "RmsNorm"), 1, "{names:?}");
}

#[test]
fn imported_softmax_without_a_kernel_is_decomposed_into_the_stable_row_form() {
    let mut b = B::new();
    let x = b.input("x", &[4, 32, 64]);
    let s = b.op(Op::Softmax { axis: 2 }, &[x]);
    let g = b.output("p", s);
    assert_eq!(
        op_names(&optimize(&g, &OptimizeOptions::default()).unwrap().graph),
        ["Input", "Softmax"]
    );
    // Large inputs: the unstable form would overflow exp.
    let out = check(&g, &no_composites(), 120.0);
    let names = op_names(&out.graph);
    assert_eq!(count(&names, "Softmax"), 0, "{names:?}");
    for want in ["ReduceMax", "Sub", "Exp", "ReduceSum"] {
        assert_eq!(count(&names, want), 1, "{want} in {names:?}");
    }
    // The division by the row sum is one reciprocal per row and a multiply.
    assert_eq!(
        (count(&names, "Recip"), count(&names, "Div")),
        (1, 0),
        "{names:?}"
    );
}

#[test]
fn exported_softmax_shares_its_exponential() {
    let mut b = B::new();
    let x = b.input("x", &[16, 64]);
    let m = b.reduce(ReduceOp::Max, 1, x);
    let d = b.bin(BinaryOp::Sub, x, m);
    let e = b.un(UnaryOp::Exp, d);
    let s = b.reduce(ReduceOp::Sum, 1, e);
    let p = b.bin(BinaryOp::Div, e, s);
    let g = b.output("p", p);
    let out = check(&g, &OptimizeOptions::default(), 50.0);
    assert!(
        out.report.rules_fired.contains_key("softmax-stable"),
        "{:?}",
        out.report.rules_fired
    );
    assert_eq!(op_names(&out.graph), ["Input", "Softmax"]);
    let names = op_names(&check(&g, &no_composites(), 50.0).graph);
    assert_eq!(count(&names, "Exp"), 1, "{names:?}");
}

#[test]
fn layernorm_expanded_form_keeps_its_values() {
    let mut b = B::new();
    let x = b.input("x", &[8, 32]);
    let gamma = b.constant(&[32], values(32, 5, 1.0));
    let beta = b.constant(&[32], values(32, 6, 1.0));
    let two = b.scalar(2.0);
    let eps = b.scalar(1e-5);
    let mean = b.reduce(ReduceOp::Mean, 1, x);
    let d = b.bin(BinaryOp::Sub, x, mean);
    let sq = b.bin(BinaryOp::Pow, d, two);
    let var = b.reduce(ReduceOp::Mean, 1, sq);
    let ve = b.bin(BinaryOp::Add, var, eps);
    let sd = b.un(UnaryOp::Sqrt, ve);
    let n = b.bin(BinaryOp::Div, d, sd);
    let s = b.bin(BinaryOp::Mul, n, gamma);
    let y = b.bin(BinaryOp::Add, s, beta);
    let g = b.output("y", y);
    let out = check(&g, &OptimizeOptions::default(), 3.0);
    assert!(
        out.report.rules_fired.contains_key("layernorm"),
        "{:?}",
        out.report.rules_fired
    );
    let names = op_names(&out.graph);
    assert_eq!(
        count(&names, "Sqrt") + count(&names, "Div") + count(&names, "Pow"),
        0,
        "{names:?}"
    );
}

#[test]
fn activations_in_exporter_form_keep_their_values() {
    let mut b = B::new();
    let x = b.input("x", &[8, 64]);
    // GELU (erf): Mul(Mul(x, Add(Erf(Div(x, sqrt2)), 1)), 0.5)
    let s2 = b.scalar(std::f32::consts::SQRT_2);
    let one = b.scalar(1.0);
    let half = b.scalar(0.5);
    let q = b.bin(BinaryOp::Div, x, s2);
    let e = b.un(UnaryOp::Erf, q);
    let a = b.bin(BinaryOp::Add, e, one);
    let m = b.bin(BinaryOp::Mul, x, a);
    let gelu = b.bin(BinaryOp::Mul, m, half);
    // SiLU: x * sigmoid(x), on the GELU output.
    let sg = b.un(UnaryOp::Sigmoid, gelu);
    let silu = b.bin(BinaryOp::Mul, gelu, sg);
    let g = b.output("y", silu);
    let out = check(&g, &OptimizeOptions::default(), 3.0);
    let fired = &out.report.rules_fired;
    assert!(fired.keys().any(|k| k.starts_with("gelu-erf")), "{fired:?}");
    assert!(fired.contains_key("silu"), "{fired:?}");
    assert!(out.report.cost_after <= out.report.cost_before);
}

#[test]
fn cancelling_transposes_disappear() {
    let mut b = B::new();
    let x = b.input("x", &[2, 3, 4]);
    let t1 = b.op(
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        &[x],
    );
    let t2 = b.op(
        Op::Transpose {
            perm: vec![1, 2, 0],
        },
        &[t1],
    );
    let r = b.un(UnaryOp::Relu, t2);
    let g = b.output("y", r);
    let out = check(&g, &OptimizeOptions::default(), 1.0);
    assert_eq!(op_names(&out.graph), ["Input", "Relu"]);
}

#[test]
fn outputs_that_share_work_share_nodes() {
    let mut b = B::new();
    let x = b.input("x", &[32, 32]);
    let e = b.un(UnaryOp::Exp, x);
    let one = b.scalar(1.0);
    let y1 = b.bin(BinaryOp::Mul, e, one);
    let y2 = b.un(UnaryOp::Neg, e);
    let mut g = b.output("a", y1);
    g.outputs.push(("b".into(), y2));
    let out = check(&g, &OptimizeOptions::default(), 1.0);
    assert_eq!(op_names(&out.graph), ["Exp", "Input", "Neg"]);
}

#[test]
fn node_limit_holds_and_the_result_is_still_correct() {
    let g = rmsnorm_graph();
    let free = optimize(&g, &OptimizeOptions::default()).unwrap().report;
    let (base, full) = (free.initial_nodes, free.stages.last().unwrap().egraph_nodes);
    assert!(
        full > base + 2,
        "the test needs rules that grow the e-graph ({base} -> {full})"
    );
    for limit in [0, base, base + 1, base + 2, full - 1] {
        let opts = OptimizeOptions {
            node_limit: limit,
            ..Default::default()
        };
        let out = check(&g, &opts, 2.0);
        assert!(out.report.hit_limit, "limit {limit}");
        for s in &out.report.stages {
            assert!(s.egraph_nodes <= limit.max(base), "{s:?} over {limit}");
        }
    }
}

#[test]
fn time_and_iteration_limits_still_give_a_correct_graph() {
    let g = rmsnorm_graph();
    let out = check(
        &g,
        &OptimizeOptions {
            time_limit: Duration::ZERO,
            ..Default::default()
        },
        2.0,
    );
    assert!(out.report.hit_limit);
    assert!(
        out.report
            .stages
            .iter()
            .all(|s| s.stop_reason == "time limit"),
        "{:?}",
        out.report.stages
    );
    let out = check(
        &g,
        &OptimizeOptions {
            iter_limit: 1,
            ..Default::default()
        },
        2.0,
    );
    assert!(
        out.report
            .stages
            .iter()
            .any(|s| s.stop_reason == "iteration limit"),
        "{:?}",
        out.report.stages
    );
}

#[test]
fn same_input_gives_the_same_graph() {
    let render = |o: &Optimized| -> String {
        let g = &o.graph;
        let nodes: Vec<String> = g
            .topo_order()
            .into_iter()
            .map(|i| format!("{:?} <- {:?}", g.node(i), g.inputs_of(i)))
            .collect();
        format!(
            "{nodes:#?} {:?} {}",
            g.outputs,
            serde_json::to_string(&o.report.rules_fired).unwrap()
        )
    };
    let g = rmsnorm_graph();
    let a = render(&optimize(&g, &OptimizeOptions::default()).unwrap());
    let b = render(&optimize(&g, &OptimizeOptions::default()).unwrap());
    assert_eq!(a, b);
}

#[test]
fn a_bad_rule_file_is_named_with_its_line() {
    let dir = std::env::temp_dir().join(format!("ttfuse-optimize-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (stage, text) in ttfuse::optimize::rules::STAGES {
        std::fs::write(dir.join(format!("{stage}.rules")), text).unwrap();
    }
    std::fs::write(
        dir.join("fuse.rules"),
        "# ok\n\nbroken: (mul ?x ?y) => (mul ?x ?z)\n",
    )
    .unwrap();
    let opts = OptimizeOptions {
        rules_dir: Some(dir.clone()),
        ..Default::default()
    };
    let err = optimize(&rmsnorm_graph(), &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OptimizeError::Rules(_)));
    assert!(msg.contains("fuse.rules:3:") && msg.contains("?z"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mistyped_node_is_reported_by_name() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(vec![4, 8], DType::F32));
    let bad = g.add(
        "wrong",
        Op::Unary(UnaryOp::Exp),
        TensorType::new(vec![8, 4], DType::F32),
        &[x],
    );
    g.outputs.push(("y".into(), bad));
    let err = optimize(&g, &OptimizeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`wrong`") && err.contains("[8, 4]"), "{err}");
}

/// One pre-norm transformer block as exporters unfold it: RMSNorm (pow/sqrt/reciprocal form),
/// attention with an exported stable softmax, LayerNorm (expanded), MLP with erf GELU.
fn transformer_block(b: &mut B, x: NodeIndex, d: usize, seed: u64) -> NodeIndex {
    let w = |b: &mut B, k: u64, r: usize, c: usize| {
        b.constant(&[r, c], values(r * c, seed * 10 + k, 0.1))
    };
    // RMSNorm
    let two = b.scalar(2.0);
    let eps = b.scalar(1e-6);
    let g = b.constant(&[d], values(d, seed, 1.0));
    let sq = b.bin(BinaryOp::Pow, x, two);
    let ms = b.reduce(ReduceOp::Mean, 1, sq);
    let a = b.bin(BinaryOp::Add, ms, eps);
    let r = b.un(UnaryOp::Sqrt, a);
    let n = b.bin(BinaryOp::Div, x, r);
    let h = b.bin(BinaryOp::Mul, n, g);
    // attention
    let (wq, wk, wv) = (w(b, 1, d, d), w(b, 2, d, d), w(b, 3, d, d));
    let q = b.op(Op::MatMul, &[h, wq]);
    let k = b.op(Op::MatMul, &[h, wk]);
    let v = b.op(Op::MatMul, &[h, wv]);
    let kt = b.op(Op::Transpose { perm: vec![1, 0] }, &[k]);
    let s = b.op(Op::MatMul, &[q, kt]);
    let scale = b.scalar(1.0 / (d as f32).sqrt());
    let s = b.bin(BinaryOp::Mul, s, scale);
    let m = b.reduce(ReduceOp::Max, 1, s);
    let sh = b.bin(BinaryOp::Sub, s, m);
    let e = b.un(UnaryOp::Exp, sh);
    let z = b.reduce(ReduceOp::Sum, 1, e);
    let p = b.bin(BinaryOp::Div, e, z);
    let o = b.op(Op::MatMul, &[p, v]);
    let x1 = b.bin(BinaryOp::Add, x, o);
    // LayerNorm, expanded
    let gamma = b.constant(&[d], values(d, seed + 1, 1.0));
    let beta = b.constant(&[d], values(d, seed + 2, 0.5));
    let mean = b.reduce(ReduceOp::Mean, 1, x1);
    let dv = b.bin(BinaryOp::Sub, x1, mean);
    let sq = b.bin(BinaryOp::Mul, dv, dv);
    let var = b.reduce(ReduceOp::Mean, 1, sq);
    let ve = b.bin(BinaryOp::Add, var, eps);
    let sd = b.un(UnaryOp::Sqrt, ve);
    let nn = b.bin(BinaryOp::Div, dv, sd);
    let ln = b.bin(BinaryOp::Mul, nn, gamma);
    let ln = b.bin(BinaryOp::Add, ln, beta);
    // MLP with erf GELU
    let (w1, w2) = (w(b, 4, d, 2 * d), w(b, 5, 2 * d, d));
    let u = b.op(Op::MatMul, &[ln, w1]);
    let s2 = b.scalar(std::f32::consts::SQRT_2);
    let one = b.scalar(1.0);
    let half = b.scalar(0.5);
    let q2 = b.bin(BinaryOp::Div, u, s2);
    let er = b.un(UnaryOp::Erf, q2);
    let ad = b.bin(BinaryOp::Add, er, one);
    let mu = b.bin(BinaryOp::Mul, u, ad);
    let ge = b.bin(BinaryOp::Mul, mu, half);
    let dn = b.op(Op::MatMul, &[ge, w2]);
    b.bin(BinaryOp::Add, x1, dn)
}

#[test]
fn transformer_blocks_keep_their_values_and_lose_their_slow_ops() {
    let mut b = B::new();
    let mut x = b.input("x", &[32, 64]);
    for layer in 0..3 {
        x = transformer_block(&mut b, x, 64, layer + 1);
    }
    let g = b.output("y", x);
    let started = std::time::Instant::now();
    let out = check(&g, &OptimizeOptions::default(), 1.0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let fired = &out.report.rules_fired;
    for rule in ["softmax-stable", "layernorm", "gelu-erf-b"] {
        assert_eq!(fired.get(rule), Some(&3), "{rule} in {fired:?}");
    }
    assert!(fired.keys().any(|k| k.starts_with("rmsnorm-")), "{fired:?}");
    let names = op_names(&out.graph);
    assert_eq!(
        count(&names, "Sqrt") + count(&names, "Div") + count(&names, "Pow"),
        0,
        "{names:?}"
    );
    // Per block: attention (2 matmuls) and the MLP (2) are composites; the 3 projections
    // remain matmuls.
    assert_eq!(count(&names, "Attention"), 3, "{names:?}");
    assert_eq!(count(&names, "Mlp"), 3, "{names:?}");
    assert_eq!(count(&names, "MatMul"), 9, "{names:?}");
    assert!(
        out.report.cost_after < out.report.cost_before,
        "{:?}",
        out.report
    );
}

#[test]
fn division_by_a_constant_expression_becomes_one_multiply() {
    // Exporters write attention scaling as x / sqrt(d) with d a constant.
    let mut b = B::new();
    let x = b.input("x", &[64, 64]);
    let d = b.scalar(64.0);
    let s = b.un(UnaryOp::Sqrt, d);
    let q = b.bin(BinaryOp::Div, x, s);
    let g = b.output("y", q);
    let out = check(&g, &OptimizeOptions::default(), 4.0);
    assert_eq!(op_names(&out.graph), ["Constant", "Input", "Mul"]);
}
