//! Graphs and helpers shared by the lowering tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use ttfuse::graph::{BinaryOp, DType, Graph, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use ttfuse::inputs::{values, Fill};
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::lower::{compile, Compiled, FusionMode};
use ttfuse::plan::{KernelPlan, PlannedKernel};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_program, Dispatch, ProgramRun};
use ttfuse_runtime::timing::report::KernelReport;
use ttfuse_runtime::ttl::print::print_stmts;

pub fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(shape.to_vec(), DType::F32)
}

pub fn constant(g: &mut Graph, name: &str, shape: &[usize], seed: u64, scale: f32) -> NodeIndex {
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = values(n, Fill::Randn(seed))
        .into_iter()
        .map(|v| v * scale)
        .collect();
    let data = TensorData::F32 {
        shape: shape.to_vec(),
        values: vals,
    };
    g.add(name, Op::Constant(Arc::new(data)), f32t(shape), &[])
}

pub fn scalar(g: &mut Graph, name: &str, v: f32) -> NodeIndex {
    let data = TensorData::F32 {
        shape: vec![],
        values: vec![v],
    };
    g.add(name, Op::Constant(Arc::new(data)), f32t(&[]), &[])
}

pub fn unary(g: &mut Graph, name: &str, u: UnaryOp, x: NodeIndex) -> NodeIndex {
    let ty = g.node(x).ty.clone();
    g.add(name, Op::Unary(u), ty, &[x])
}

pub fn binary(g: &mut Graph, name: &str, b: BinaryOp, x: NodeIndex, y: NodeIndex) -> NodeIndex {
    let (sx, sy) = (g.node(x).ty.shape.clone(), g.node(y).ty.shape.clone());
    let rank = sx.len().max(sy.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (px, py) = (pad(&sx), pad(&sy));
    let shape: Vec<usize> = px.iter().zip(&py).map(|(&a, &b)| a.max(b)).collect();
    g.add(name, Op::Binary(b), f32t(&shape), &[x, y])
}

pub fn matmul(g: &mut Graph, name: &str, a: NodeIndex, b: NodeIndex) -> NodeIndex {
    let (sa, sb) = (g.node(a).ty.shape.clone(), g.node(b).ty.shape.clone());
    let mut shape = sa[..sa.len() - 1].to_vec();
    shape.push(sb[sb.len() - 1]);
    g.add(name, Op::MatMul, f32t(&shape), &[a, b])
}

pub fn transpose_last(g: &mut Graph, name: &str, x: NodeIndex) -> NodeIndex {
    let s = g.node(x).ty.shape.clone();
    let r = s.len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 1, r - 2);
    let shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    g.add(name, Op::Transpose { perm }, f32t(&shape), &[x])
}

pub fn reduce(g: &mut Graph, name: &str, op: ReduceOp, x: NodeIndex) -> NodeIndex {
    let mut s = g.node(x).ty.shape.clone();
    let r = s.len();
    s[r - 1] = 1;
    g.add(
        name,
        Op::Reduce {
            op,
            axes: vec![r - 1],
            keep_dims: true,
        },
        f32t(&s),
        &[x],
    )
}

pub fn output(g: &mut Graph, name: &str, n: NodeIndex) {
    g.outputs.push((name.to_string(), n));
}

/// exp(x) + bias, relu, * 0.125 on a [64, 128] input.
pub fn eltwise_chain() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 128]));
    let bias = constant(&mut g, "bias", &[128], 1, 0.5);
    let e = unary(&mut g, "e", UnaryOp::Exp, x);
    let a = binary(&mut g, "a", BinaryOp::Add, e, bias);
    let r = unary(&mut g, "r", UnaryOp::Relu, a);
    let s = scalar(&mut g, "scale", 0.125);
    let y = binary(&mut g, "y", BinaryOp::Mul, r, s);
    output(&mut g, "y", y);
    g
}

/// relu(x @ w + b) with x [64, 128], w [128, 96].
pub fn matmul_bias_relu() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 128]));
    let w = constant(&mut g, "w", &[128, 96], 2, 0.1);
    let b = constant(&mut g, "b", &[96], 3, 0.1);
    let m = matmul(&mut g, "mm", x, w);
    let a = binary(&mut g, "biased", BinaryOp::Add, m, b);
    let y = unary(&mut g, "y", UnaryOp::Relu, a);
    output(&mut g, "y", y);
    g
}

/// Softmax over the last axis of [64, 256], as the composite op.
pub fn softmax_composite() -> Graph {
    softmax_of(64, 256)
}

/// A softmax over the rows of an `[rows, cols]` input.
pub fn softmax_of(rows: usize, cols: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, cols]));
    let y = g.add("y", Op::Softmax { axis: 1 }, f32t(&[rows, cols]), &[x]);
    output(&mut g, "y", y);
    g
}

/// The stable softmax spelled out: exp(x - max) / sum(exp(x - max)) on [2, 32, 128].
pub fn softmax_decomposed() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[2, 32, 128]));
    let m = reduce(&mut g, "row_max", ReduceOp::Max, x);
    let d = binary(&mut g, "shifted", BinaryOp::Sub, x, m);
    let e = unary(&mut g, "exps", UnaryOp::Exp, d);
    let s = reduce(&mut g, "row_sum", ReduceOp::Sum, e);
    let y = binary(&mut g, "probs", BinaryOp::Div, e, s);
    output(&mut g, "probs", y);
    g
}

/// softmax(q @ k^T * 0.125) for q, k of [2, 64, 64] (two heads).
pub fn scaled_attention_scores() -> Graph {
    let mut g = Graph::new();
    let q = g.add_input("q", f32t(&[2, 64, 64]));
    let k = g.add_input("k", f32t(&[2, 64, 64]));
    let kt = transpose_last(&mut g, "k_t", k);
    let s = matmul(&mut g, "scores", q, kt);
    let c = scalar(&mut g, "inv_sqrt_d", 0.125);
    let sc = binary(&mut g, "scaled", BinaryOp::Mul, s, c);
    let p = g.add("probs", Op::Softmax { axis: 2 }, f32t(&[2, 64, 64]), &[sc]);
    output(&mut g, "probs", p);
    g
}

/// softmax(q @ k^T * 0.125) @ v for q, k, v of [2, 64, 64] (two heads): the context product
/// chained after the scores' softmax.
pub fn attention() -> Graph {
    attention_heads(2, 64)
}

/// Softmax attention over `heads` batches of `seq` rows and head size 64:
/// softmax(q @ k^T * 0.125) @ v.
pub fn attention_heads(heads: usize, seq: usize) -> Graph {
    attention_heads_masked(heads, seq, false)
}

/// [`attention_heads`], with the scores masked causally when `causal`: `Where` of a constant
/// `[seq, seq]` lower triangle, the scores and minus infinity, shared by every head.
pub fn attention_heads_masked(heads: usize, seq: usize, causal: bool) -> Graph {
    let below = |row: usize, key: usize| key <= row;
    attention_heads_with(heads, seq, causal.then_some(Mask::Where(&below)))
}

/// How [`attention_heads_with`] masks the scores where `visible(row, key)` is false.
pub enum Mask<'a> {
    /// `Where` of a constant `[seq, seq]` condition, the scores and minus infinity (GPT-2's
    /// export).
    Where(&'a dyn Fn(usize, usize) -> bool),
    /// The scores plus a constant `[seq, seq]` of zeros and minus infinities (LLaMA's).
    Added(&'a dyn Fn(usize, usize) -> bool),
}

/// [`attention_heads`], with the scores masked by `mask` when given, the mask shared by every
/// head.
pub fn attention_heads_with(heads: usize, seq: usize, mask: Option<Mask>) -> Graph {
    attention_heads_scaled(heads, seq, mask, None)
}

/// [`attention_heads_with`], with the probabilities multiplied by `probs_scale` when given,
/// before the values.
pub fn attention_heads_scaled(
    heads: usize,
    seq: usize,
    mask: Option<Mask>,
    probs_scale: Option<f32>,
) -> Graph {
    let mut g = Graph::new();
    let shape = [heads, seq, 64];
    let q = g.add_input("q", f32t(&shape));
    let k = g.add_input("k", f32t(&shape));
    let v = g.add_input("v", f32t(&shape));
    let kt = transpose_last(&mut g, "k_t", k);
    let s = matmul(&mut g, "scores", q, kt);
    let c = scalar(&mut g, "inv_sqrt_d", 0.125);
    let mut sc = binary(&mut g, "scaled", BinaryOp::Mul, s, c);
    let cells = |visible: &dyn Fn(usize, usize) -> bool| -> Vec<bool> {
        (0..seq * seq).map(|i| visible(i / seq, i % seq)).collect()
    };
    match mask {
        Some(Mask::Where(visible)) => {
            let cond_data = TensorData::I64 {
                shape: vec![seq, seq],
                values: cells(visible).into_iter().map(i64::from).collect(),
            };
            let cond_ty = TensorType::new(vec![seq, seq], DType::Bool);
            let cond = g.add("causal", Op::Constant(Arc::new(cond_data)), cond_ty, &[]);
            let minus_inf = scalar(&mut g, "minus_inf", f32::NEG_INFINITY);
            sc = g.add(
                "masked",
                Op::Where,
                f32t(&[heads, seq, seq]),
                &[cond, sc, minus_inf],
            );
        }
        Some(Mask::Added(visible)) => {
            let data = TensorData::F32 {
                shape: vec![seq, seq],
                values: cells(visible)
                    .into_iter()
                    .map(|v| if v { 0.0 } else { f32::NEG_INFINITY })
                    .collect(),
            };
            let m = g.add("mask", Op::Constant(Arc::new(data)), f32t(&[seq, seq]), &[]);
            sc = binary(&mut g, "masked", BinaryOp::Add, sc, m);
        }
        None => {}
    }
    let probs = f32t(&[heads, seq, seq]);
    let mut p = g.add("probs", Op::Softmax { axis: 2 }, probs, &[sc]);
    if let Some(f) = probs_scale {
        let factor = scalar(&mut g, "probs_scale", f);
        p = binary(&mut g, "scaled_probs", BinaryOp::Mul, p, factor);
    }
    let o = matmul(&mut g, "context", p, v);
    output(&mut g, "context", o);
    g
}

/// A classifier's head: `softmax(x @ w + b)`, x `[rows, features]`, over `classes` (the
/// logits `logits`, the probabilities `probs`).
pub fn classifier(rows: usize, features: usize, classes: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, features]));
    let w = constant(&mut g, "w", &[features, classes], 40, 0.03);
    let b = constant(&mut g, "b", &[classes], 41, 0.1);
    let m = matmul(&mut g, "logits", x, w);
    let l = binary(&mut g, "biased", BinaryOp::Add, m, b);
    let p = g.add(
        "probs",
        Op::Softmax { axis: 1 },
        f32t(&[rows, classes]),
        &[l],
    );
    output(&mut g, "probs", p);
    g
}

/// A gated MLP's `silu(x @ w1) * (x @ w3)` over `x` of `[rows, k]`.
pub fn gated(rows: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[rows, k]));
    let w1 = constant(&mut g, "w1", &[k, n], 50, 0.05);
    let w3 = constant(&mut g, "w3", &[k, n], 51, 0.05);
    let gate = matmul(&mut g, "gate", x, w1);
    let up = matmul(&mut g, "up", x, w3);
    let act = unary(&mut g, "act", UnaryOp::Silu, gate);
    let y = binary(&mut g, "y", BinaryOp::Mul, act, up);
    output(&mut g, "y", y);
    g
}

/// Two-layer MLP: relu(x @ w1 + b1) @ w2 + b2, x [64, 128], hidden 256.
pub fn mlp2() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 128]));
    let w1 = constant(&mut g, "w1", &[128, 256], 4, 0.1);
    let b1 = constant(&mut g, "b1", &[256], 5, 0.1);
    let w2 = constant(&mut g, "w2", &[256, 128], 6, 0.1);
    let b2 = constant(&mut g, "b2", &[128], 7, 0.1);
    let h = matmul(&mut g, "h", x, w1);
    let hb = binary(&mut g, "hb", BinaryOp::Add, h, b1);
    let hr = unary(&mut g, "hr", UnaryOp::Relu, hb);
    let o = matmul(&mut g, "o", hr, w2);
    let y = binary(&mut g, "y", BinaryOp::Add, o, b2);
    output(&mut g, "y", y);
    g
}

/// LayerNorm then RMSNorm of [64, 128] (gamma, beta row vectors).
pub fn norms() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[64, 128]));
    let gamma = constant(&mut g, "gamma", &[128], 8, 0.5);
    let beta = constant(&mut g, "beta", &[128], 9, 0.5);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        f32t(&[64, 128]),
        &[x, gamma, beta],
    );
    let g2 = constant(&mut g, "g2", &[128], 10, 0.5);
    let rms = g.add(
        "rms",
        Op::RmsNorm { eps: 1e-6 },
        f32t(&[64, 128]),
        &[ln, g2],
    );
    output(&mut g, "rms", rms);
    g
}

/// All the test graphs by name.
pub fn all_graphs() -> Vec<(&'static str, Graph)> {
    vec![
        ("eltwise_chain", eltwise_chain()),
        ("matmul_bias_relu", matmul_bias_relu()),
        ("softmax_composite", softmax_composite()),
        ("softmax_decomposed", softmax_decomposed()),
        ("scaled_attention_scores", scaled_attention_scores()),
        ("attention", attention()),
        ("mlp2", mlp2()),
        ("norms", norms()),
        ("mlp_block", mlp_block()),
        ("host_fallbacks", host_fallbacks()),
    ]
}

pub fn device() -> Device {
    Device::load("wormhole_b0").expect("wormhole_b0 data file loads")
}

pub fn inputs_for(g: &Graph) -> BTreeMap<String, TensorData> {
    ttfuse::inputs::complete_inputs(g, BTreeMap::new(), 42)
}

/// Compiles and runs `g` in `mode`, returning the compiled program, the run and the outputs.
pub fn run(g: &Graph, mode: FusionMode) -> (Compiled, ProgramRun, BTreeMap<String, TensorData>) {
    run_on(g, &device(), mode)
}

/// [`run`] on `dev`.
pub fn run_on(
    g: &Graph,
    dev: &Device,
    mode: FusionMode,
) -> (Compiled, ProgramRun, BTreeMap<String, TensorData>) {
    run_with(g, dev, mode, &inputs_for(g))
}

/// [`run_on`] with the graph's `inputs` given.
pub fn run_with(
    g: &Graph,
    dev: &Device,
    mode: FusionMode,
    inputs: &BTreeMap<String, TensorData>,
) -> (Compiled, ProgramRun, BTreeMap<String, TensorData>) {
    let compiled = compile(g, dev, mode).unwrap_or_else(|e| panic!("compile {mode:?}: {e}"));
    let mut dev_inputs = BTreeMap::new();
    for b in &compiled.inputs {
        dev_inputs.insert(b.tensor.clone(), b.to_device(&inputs[&b.name]));
    }
    let run = run_program(
        &compiled.program,
        dev,
        &dev_inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .unwrap_or_else(|e| panic!("run {mode:?}: {e}"));
    let mut outs = BTreeMap::new();
    for b in &compiled.outputs {
        outs.insert(b.name.clone(), b.from_device(&run.tensors[&b.tensor]));
    }
    (compiled, run, outs)
}

/// wormhole_b0 with only `bytes` of L1 left for circular buffers.
pub fn small_l1_device(bytes: u64) -> Device {
    let mut d = device();
    d.l1.total_bytes = d.l1.reserved_bytes + bytes;
    d
}

/// Compiles and runs `g` on `dev` and asserts every output matches the reference with
/// pcc >= 0.999. Returns the compiled program.
pub fn run_checked(g: &Graph, dev: &Device, mode: FusionMode) -> Compiled {
    let compiled = compile(g, dev, mode).unwrap_or_else(|e| panic!("compile {mode:?}: {e}"));
    let inputs = inputs_for(g);
    let expected = ttfuse::reference::run(g, &inputs).expect("reference runs");
    let mut dev_inputs = BTreeMap::new();
    for b in &compiled.inputs {
        dev_inputs.insert(b.tensor.clone(), b.to_device(&inputs[&b.name]));
    }
    let run = run_program(
        &compiled.program,
        dev,
        &dev_inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .unwrap_or_else(|e| panic!("run {mode:?}: {e}"));
    // Every block a kernel waits for, it reads (tt-lang's simulator rejects a compute thread
    // that pops a block no store read).
    for k in &run.report.kernels {
        let unread: Vec<&String> = k
            .warnings
            .iter()
            .filter(|w| w.contains("popped without being read"))
            .collect();
        assert!(unread.is_empty(), "{mode:?} kernel {}: {unread:?}", k.name);
    }
    // Each thread asks for its core once (a busy-core guard binds it for the block loop).
    for k in &compiled.program.kernels {
        for t in &k.threads {
            let calls = print_stmts(&t.body, 0).matches("ttl.core(").count();
            assert!(
                calls <= 1,
                "{mode:?} kernel {} {}: {calls} ttl.core calls",
                k.name,
                t.name
            );
        }
    }
    for b in &compiled.outputs {
        let got = b.from_device(&run.tensors[&b.tensor]).to_f32();
        let want = expected[&b.name].to_f32();
        let p = ttfuse::agreement::pcc(&want, &got);
        assert!(p >= 0.999, "{mode:?} output {}: pcc {p}", b.name);
        // PCC does not see a scale of the whole output.
        let scale = median_ratio(&got, &want);
        assert!(
            (scale - 1.0).abs() <= 0.02,
            "{mode:?} output {}: {scale} times the reference",
            b.name
        );
    }
    compiled
}

/// The median of `got / want` over the elements whose reference is at least a tenth of the
/// median magnitude (1 when there are none): a wrong scale of a whole output, which its PCC
/// does not see, moves it, while bf16 rounding of a few extreme values does not.
pub fn median_ratio(got: &[f32], want: &[f32]) -> f32 {
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let Some(typical) = median(want.iter().map(|w| w.abs()).collect()) else {
        return 1.0;
    };
    let ratios: Vec<f32> = got
        .iter()
        .zip(want)
        .filter(|(_, w)| w.abs() >= 0.1 * typical && w.abs() > 0.0)
        .map(|(g, w)| g / w)
        .collect();
    median(ratios).unwrap_or(1.0)
}

/// A transformer MLP block: x + (gelu(layernorm(x) @ w1 + b1) @ w2 + b2), x [128, 256],
/// hidden 1024.
pub fn mlp_block() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[128, 256]));
    let gamma = constant(&mut g, "ln_gamma", &[256], 40, 0.3);
    let beta = constant(&mut g, "ln_beta", &[256], 41, 0.1);
    let ln = g.add(
        "ln",
        Op::LayerNorm { eps: 1e-5 },
        f32t(&[128, 256]),
        &[x, gamma, beta],
    );
    let w1 = constant(&mut g, "w_fc", &[256, 1024], 42, 0.06);
    let b1 = constant(&mut g, "b_fc", &[1024], 43, 0.1);
    let w2 = constant(&mut g, "w_proj", &[1024, 256], 44, 0.03);
    let b2 = constant(&mut g, "b_proj", &[256], 45, 0.1);
    let h = matmul(&mut g, "fc", ln, w1);
    let hb = binary(&mut g, "fc_bias", BinaryOp::Add, h, b1);
    let act = unary(&mut g, "act", UnaryOp::Gelu, hb);
    let p = matmul(&mut g, "proj", act, w2);
    let pb = binary(&mut g, "proj_bias", BinaryOp::Add, p, b2);
    let y = binary(&mut g, "residual", BinaryOp::Add, pb, x);
    output(&mut g, "y", y);
    g
}

/// relu(erf(where(causal_mask, a, b))): two ops without a TT-Lang template, then a kernel.
pub fn host_fallbacks() -> Graph {
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[32, 64]));
    let b = g.add_input("b", f32t(&[32, 64]));
    let mask: Vec<i64> = (0..32 * 64)
        .map(|i| ((i / 64) >= (i % 64)) as i64)
        .collect();
    let cond_data = TensorData::I64 {
        shape: vec![32, 64],
        values: mask,
    };
    let cond_ty = TensorType::new(vec![32, 64], DType::Bool);
    let cond = g.add("mask", Op::Constant(Arc::new(cond_data)), cond_ty, &[]);
    let w = g.add("pick", Op::Where, f32t(&[32, 64]), &[cond, a, b]);
    let e = unary(&mut g, "e", UnaryOp::Erf, w);
    let y = unary(&mut g, "y", UnaryOp::Relu, e);
    output(&mut g, "y", y);
    g
}

/// Checks every kernel of `plan` against its target's limits: the L1 it reports is the sum of
/// its buffers, which fit a core's L1, in no more buffers than a core has.
pub fn assert_within_limits(plan: &KernelPlan) {
    for k in &plan.kernels {
        let bytes: u64 = k
            .cbs
            .iter()
            .map(|c| (c.shape.0 * c.shape.1 * c.buffer_factor) as u64 * 2048)
            .sum();
        assert_eq!(
            k.l1_bytes, bytes,
            "{}: reported L1 is the sum of its buffers",
            k.name
        );
        assert!(
            bytes <= plan.target.l1_bytes,
            "{}: {bytes} B of buffers on a {} B core",
            k.name,
            plan.target.l1_bytes
        );
        assert!(
            k.cbs.len() <= plan.target.max_cbs as usize,
            "{}: {} buffers",
            k.name,
            k.cbs.len()
        );
    }
}

/// A convolution of `x` (NCHW) into `out` channels with a bias, `kernel` square with "same"
/// padding, its ReLU fused when `relu`.
pub fn conv_node(
    g: &mut Graph,
    name: &str,
    x: NodeIndex,
    out: usize,
    kernel: usize,
    relu: bool,
) -> NodeIndex {
    let s = g.node(x).ty.shape.clone();
    let seed = g.dag.node_count() as u64;
    let w = constant(
        g,
        &format!("{name}.w"),
        &[out, s[1], kernel, kernel],
        seed,
        0.05,
    );
    let b = constant(g, &format!("{name}.b"), &[out], seed + 1, 0.1);
    g.add(
        name,
        Op::Conv {
            kernel: [kernel; 2],
            stride: [1; 2],
            pads: [kernel / 2; 4],
            dilation: [1; 2],
            groups: 1,
            relu,
            pixels: None,
        },
        f32t(&[s[0], out, s[2], s[3]]),
        &[x, w, b],
    )
}

/// Bytes of a bf16 tile.
pub const TILE: u64 = 32 * 32 * 2;

/// Runs `g` fused and returns the report of its only kernel, `k` as planned, checking that
/// the plan counted the DRAM bytes the kernel read.
pub fn run_kernel(g: &Graph, k: &PlannedKernel) -> KernelReport {
    run_kernel_on(g, &device(), k)
}

/// [`run_kernel`] on `dev`.
pub fn run_kernel_on(g: &Graph, dev: &Device, k: &PlannedKernel) -> KernelReport {
    let (_, run, _) = run_on(g, dev, FusionMode::Fused);
    let report = run.report.kernels[0].clone();
    assert_eq!(
        k.dram_read_bytes, report.dram_read_bytes,
        "the plan counts what runs"
    );
    report
}
