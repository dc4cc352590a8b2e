//! ONNX ops with no graph op of their own, built from primitives: activations (HardSwish,
//! PRelu, Elu, Selu, Mish), Ceil, Not, Mean, the L2/square/log-sum-exp reductions,
//! InstanceNormalization, Tile and LRN.

use petgraph::graph::NodeIndex;

use super::nn::reduce_axes;
use super::OpTable;
use crate::graph::{BinaryOp, DType, Op, ReduceOp, TensorData, UnaryOp};
use crate::import::onnx::NodeCtx;
use crate::import::ImportError;

type Out = Result<Vec<NodeIndex>, ImportError>;

const ADD: Op = Op::Binary(BinaryOp::Add);
const SUB: Op = Op::Binary(BinaryOp::Sub);
const MUL: Op = Op::Binary(BinaryOp::Mul);

/// Registers the composite ops.
pub fn register(t: &mut OpTable) {
    t.insert("HardSwish", hard_swish);
    t.insert("PRelu", prelu);
    t.insert("Elu", |c| {
        let alpha = c.attr_f("alpha", 1.0)?;
        elu(c, alpha, 1.0)
    });
    t.insert("Selu", |c| {
        let alpha = c.attr_f("alpha", 1.673_263_2)?;
        let gamma = c.attr_f("gamma", 1.050_701)?;
        elu(c, alpha, gamma)
    });
    t.insert("Mish", mish);
    t.insert("Ceil", ceil);
    t.insert("Not", not);
    t.insert("Mean", mean);
    t.insert("ReduceSumSquare", |c| reduce_squares(c, false));
    t.insert("ReduceL2", |c| reduce_squares(c, true));
    t.insert("ReduceLogSumExp", reduce_log_sum_exp);
    t.insert("InstanceNormalization", instance_norm);
    t.insert("Tile", tile);
    t.insert("LRN", lrn);
}

/// `x * clip(x/6 + 1/2, 0, 1)`.
fn hard_swish(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let gate = c.add_tmp(
        "gate",
        Op::HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        },
        &[x],
    )?;
    Ok(vec![c.add(MUL, &[x, gate])?])
}

/// `max(x, 0) + slope * min(x, 0)`.
fn prelu(c: &mut NodeCtx) -> Out {
    let (x, slope) = (c.input(0)?, c.input(1)?);
    let zero = c.scalar("zero", 0.0, c.ty(x).dtype);
    let pos = c.add_tmp("pos", Op::Binary(BinaryOp::Max), &[x, zero])?;
    let neg = c.add_tmp("neg", Op::Binary(BinaryOp::Min), &[x, zero])?;
    let scaled = c.add_tmp("scaled", MUL, &[neg, slope])?;
    Ok(vec![c.add(ADD, &[pos, scaled])?])
}

/// `gamma * (max(x, 0) + alpha * (exp(min(x, 0)) - 1))`: Elu (gamma 1) and Selu.
fn elu(c: &mut NodeCtx, alpha: f32, gamma: f32) -> Out {
    let x = c.input(0)?;
    let dtype = c.ty(x).dtype;
    let zero = c.scalar("zero", 0.0, dtype);
    let one = c.scalar("one", 1.0, dtype);
    let a = c.scalar("alpha", alpha, dtype);
    let pos = c.add_tmp("pos", Op::Binary(BinaryOp::Max), &[x, zero])?;
    let neg = c.add_tmp("neg", Op::Binary(BinaryOp::Min), &[x, zero])?;
    let e = c.add_tmp("exp", Op::Unary(UnaryOp::Exp), &[neg])?;
    let em1 = c.add_tmp("expm1", SUB, &[e, one])?;
    let scaled = c.add_tmp("scaled", MUL, &[em1, a])?;
    if gamma == 1.0 {
        return Ok(vec![c.add(ADD, &[pos, scaled])?]);
    }
    let sum = c.add_tmp("sum", ADD, &[pos, scaled])?;
    let g = c.scalar("gamma", gamma, dtype);
    Ok(vec![c.add(MUL, &[sum, g])?])
}

/// `x * tanh(softplus(x))`.
fn mish(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let sp = c.add_tmp("softplus", Op::Unary(UnaryOp::Softplus), &[x])?;
    let t = c.add_tmp("tanh", Op::Unary(UnaryOp::Tanh), &[sp])?;
    Ok(vec![c.add(MUL, &[x, t])?])
}

/// `-floor(-x)`.
fn ceil(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let n = c.add_tmp("neg", Op::Unary(UnaryOp::Neg), &[x])?;
    let f = c.add_tmp("floor", Op::Unary(UnaryOp::Floor), &[n])?;
    Ok(vec![c.add(Op::Unary(UnaryOp::Neg), &[f])?])
}

/// `x == false`.
fn not(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let f = c.constant("false", TensorData::i64(vec![], vec![0]), DType::Bool);
    Ok(vec![c.add(Op::Equal, &[x, f])?])
}

/// The elementwise mean of any number of inputs.
fn mean(c: &mut NodeCtx) -> Out {
    let n = c.inputs.len();
    let mut acc = c.input(0)?;
    for i in 1..n {
        let x = c.input(i)?;
        acc = c.add_tmp(&format!("sum{i}"), ADD, &[acc, x])?;
    }
    let k = c.scalar("count", n as f32, c.ty(acc).dtype);
    Ok(vec![c.add(Op::Binary(BinaryOp::Div), &[acc, k])?])
}

/// `Σ x²` over the axes, and its square root for ReduceL2.
fn reduce_squares(c: &mut NodeCtx, root: bool) -> Out {
    let x = c.input(0)?;
    let (axes, keep_dims) = reduce_axes(c, false)?;
    let x2 = c.add_tmp("square", MUL, &[x, x])?;
    let Some(axes) = axes else {
        return Ok(vec![if root {
            c.add(Op::Unary(UnaryOp::Abs), &[x])?
        } else {
            x2
        }]);
    };
    let sum = Op::Reduce {
        op: ReduceOp::Sum,
        axes,
        keep_dims,
    };
    if !root {
        return Ok(vec![c.add(sum, &[x2])?]);
    }
    let s = c.add_tmp("sum", sum, &[x2])?;
    Ok(vec![c.add(Op::Unary(UnaryOp::Sqrt), &[s])?])
}

/// `log Σ exp(x)`, computed as `m + log Σ exp(x - m)` with `m` the maximum.
fn reduce_log_sum_exp(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let (axes, keep_dims) = reduce_axes(c, false)?;
    let Some(axes) = axes else { return Ok(vec![x]) };
    let m = c.add_tmp(
        "max",
        Op::Reduce {
            op: ReduceOp::Max,
            axes: axes.clone(),
            keep_dims: true,
        },
        &[x],
    )?;
    let d = c.add_tmp("shifted", SUB, &[x, m])?;
    let e = c.add_tmp("exp", Op::Unary(UnaryOp::Exp), &[d])?;
    let s = c.add_tmp(
        "sum",
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: axes.clone(),
            keep_dims: true,
        },
        &[e],
    )?;
    let l = c.add_tmp("log", Op::Unary(UnaryOp::Log), &[s])?;
    if keep_dims {
        return Ok(vec![c.add(ADD, &[l, m])?]);
    }
    let y = c.add_tmp("kept", ADD, &[l, m])?;
    let shape: Vec<usize> = c
        .ty(x)
        .shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect();
    Ok(vec![c.add(Op::Reshape { shape }, &[y])?])
}

/// `(x - mean) / sqrt(var + eps) * scale + bias` over the spatial axes of each (n, c).
fn instance_norm(c: &mut NodeCtx) -> Out {
    let (x, scale, bias) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let eps = c.attr_f("epsilon", 1e-5)?;
    let shape = c.ty(x).shape.clone();
    if shape.len() < 3 {
        return Err(c.err(format!("input {shape:?} has no spatial axes")));
    }
    let dtype = c.ty(x).dtype;
    let axes: Vec<usize> = (2..shape.len()).collect();
    let mean = Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keep_dims: true,
    };
    let mu = c.add_tmp("mean", mean.clone(), &[x])?;
    let d = c.add_tmp("centered", SUB, &[x, mu])?;
    let d2 = c.add_tmp("squared", MUL, &[d, d])?;
    let var = c.add_tmp("var", mean, &[d2])?;
    let e = c.scalar("eps", eps, dtype);
    let ve = c.add_tmp("var_eps", ADD, &[var, e])?;
    let inv = c.add_tmp("rsqrt", Op::Unary(UnaryOp::Rsqrt), &[ve])?;
    let norm = c.add_tmp("normalized", MUL, &[d, inv])?;
    // Per-channel parameters broadcast as [C, 1, ..., 1].
    let mut pshape = vec![shape[1]];
    pshape.extend(std::iter::repeat_n(1, shape.len() - 2));
    let s = c.add_tmp(
        "scale",
        Op::Reshape {
            shape: pshape.clone(),
        },
        &[scale],
    )?;
    let b = c.add_tmp("bias", Op::Reshape { shape: pshape }, &[bias])?;
    let scaled = c.add_tmp("scaled", MUL, &[norm, s])?;
    Ok(vec![c.add(ADD, &[scaled, b])?])
}

/// Tile as reshape `[1, d0, 1, d1, ...]`, expand `[r0, d0, r1, d1, ...]`, reshape.
fn tile(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let reps = c
        .const_ints(1, "repeats")?
        .ok_or_else(|| c.err("the repeats input is required"))?;
    if reps.len() != shape.len() || reps.iter().any(|&r| r < 1) {
        return Err(c.err(format!(
            "repeats {reps:?} must hold one positive count per axis of {shape:?}"
        )));
    }
    if reps.iter().all(|&r| r == 1) {
        return Ok(vec![x]);
    }
    let spread: Vec<usize> = shape.iter().flat_map(|&d| [1, d]).collect();
    let wide: Vec<usize> = shape
        .iter()
        .zip(&reps)
        .flat_map(|(&d, &r)| [r as usize, d])
        .collect();
    let out: Vec<usize> = shape
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d * r as usize)
        .collect();
    let s = c.add_tmp("spread", Op::Reshape { shape: spread }, &[x])?;
    let e = c.add_tmp("expand", Op::Expand { shape: wide }, &[s])?;
    Ok(vec![c.add(Op::Reshape { shape: out }, &[e])?])
}

/// Local response normalization across channels:
/// `x / (bias + alpha/size * sum of x² over a window of size channels)^beta`. The window sum
/// is an average pool (padding counted) of x² seen as `[N, 1, C, H·W]`, times `size`.
fn lrn(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let dtype = c.ty(x).dtype;
    let size = c
        .attr_opt_i("size")?
        .ok_or_else(|| c.err("the `size` attribute is required"))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s >= 1)
        .ok_or_else(|| c.err(format!("size {size} must be positive")))?;
    let (alpha, beta, bias) = (
        c.attr_f("alpha", 1e-4)?,
        c.attr_f("beta", 0.75)?,
        c.attr_f("bias", 1.0)?,
    );
    if shape.len() < 3 {
        return Err(c.err(format!("input {shape:?} has no spatial axes")));
    }
    let rest: usize = shape[2..].iter().product();
    let sq = c.add_tmp("square", MUL, &[x, x])?;
    let columns = Op::Reshape {
        shape: vec![shape[0], 1, shape[1], rest],
    };
    let sq = c.add_tmp("columns", columns, &[sq])?;
    let (before, after) = ((size - 1) / 2, size / 2);
    let window = Op::Pool {
        op: ReduceOp::Mean,
        kernel: [size, 1],
        stride: [1, 1],
        pads: [before, 0, after, 0],
        count_include_pad: true,
    };
    let mean = c.add_tmp("window_mean", window, &[sq])?;
    let mean = c.add_tmp("window", Op::Reshape { shape }, &[mean])?;
    // alpha/size * sum = alpha * mean.
    let a = c.scalar("alpha", alpha, dtype);
    let scaled = c.add_tmp("scaled", MUL, &[mean, a])?;
    let b = c.scalar("bias", bias, dtype);
    let base = c.add_tmp("base", ADD, &[scaled, b])?;
    let p = c.scalar("neg_beta", -beta, dtype);
    let factor = c.add_tmp("factor", Op::Binary(BinaryOp::Pow), &[base, p])?;
    Ok(vec![c.add(MUL, &[x, factor])?])
}
