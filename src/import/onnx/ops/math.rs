//! Elementwise ONNX ops, MatMul and Gemm.

use petgraph::graph::NodeIndex;

use super::OpTable;
use crate::graph::{BinaryOp, Op, UnaryOp};
use crate::import::onnx::{tensor, NodeCtx};
use crate::import::ImportError;

type Out = Result<Vec<NodeIndex>, ImportError>;

/// Registers the elementwise and matrix ops.
pub fn register(t: &mut OpTable) {
    t.insert("Add", |c| binary(c, BinaryOp::Add));
    t.insert("Sub", |c| binary(c, BinaryOp::Sub));
    t.insert("Mul", |c| binary(c, BinaryOp::Mul));
    t.insert("Div", |c| binary(c, BinaryOp::Div));
    t.insert("Pow", |c| binary(c, BinaryOp::Pow));
    t.insert("Max", |c| variadic(c, BinaryOp::Max));
    t.insert("Min", |c| variadic(c, BinaryOp::Min));
    t.insert("Sum", |c| variadic(c, BinaryOp::Add));
    t.insert("Relu", |c| unary(c, UnaryOp::Relu));
    t.insert("Exp", |c| unary(c, UnaryOp::Exp));
    t.insert("Log", |c| unary(c, UnaryOp::Log));
    t.insert("Sqrt", |c| unary(c, UnaryOp::Sqrt));
    t.insert("Reciprocal", |c| unary(c, UnaryOp::Recip));
    t.insert("Tanh", |c| unary(c, UnaryOp::Tanh));
    t.insert("Sigmoid", |c| unary(c, UnaryOp::Sigmoid));
    t.insert("Abs", |c| unary(c, UnaryOp::Abs));
    t.insert("Neg", |c| unary(c, UnaryOp::Neg));
    t.insert("Floor", |c| unary(c, UnaryOp::Floor));
    t.insert("Erf", |c| unary(c, UnaryOp::Erf));
    t.insert("Softplus", |c| unary(c, UnaryOp::Softplus));
    t.insert("Gelu", gelu);
    t.insert("Identity", identity);
    t.insert("Dropout", dropout);
    t.insert("Clip", clip);
    t.insert("LeakyRelu", leaky_relu);
    t.insert("HardSigmoid", hard_sigmoid);
    t.insert("Where", |c| {
        let ins = [c.input(0)?, c.input(1)?, c.input(2)?];
        Ok(vec![c.add(Op::Where, &ins)?])
    });
    t.insert("Equal", |c| {
        let ins = [c.input(0)?, c.input(1)?];
        Ok(vec![c.add(Op::Equal, &ins)?])
    });
    t.insert("Cast", cast);
    t.insert("MatMul", |c| {
        let ins = [c.input(0)?, c.input(1)?];
        Ok(vec![c.add(Op::MatMul, &ins)?])
    });
    t.insert("Gemm", gemm);
}

fn unary(c: &mut NodeCtx, u: UnaryOp) -> Out {
    let x = c.input(0)?;
    Ok(vec![c.add(Op::Unary(u), &[x])?])
}

fn binary(c: &mut NodeCtx, b: BinaryOp) -> Out {
    let ins = [c.input(0)?, c.input(1)?];
    Ok(vec![c.add(Op::Binary(b), &ins)?])
}

/// `Max`, `Min`, `Sum` over any number of inputs, as a left fold of binary ops.
fn variadic(c: &mut NodeCtx, b: BinaryOp) -> Out {
    let n = c.inputs.len();
    let mut acc = c.input(0)?;
    for i in 1..n {
        let x = c.input(i)?;
        acc = if i + 1 == n {
            c.add(Op::Binary(b), &[acc, x])?
        } else {
            c.add_tmp(&format!("{i}"), Op::Binary(b), &[acc, x])?
        };
    }
    Ok(vec![acc])
}

fn identity(c: &mut NodeCtx) -> Out {
    Ok(vec![c.input(0)?])
}

/// Inference-mode dropout is the identity; its mask output is not produced.
fn dropout(c: &mut NodeCtx) -> Out {
    let training = c
        .const_ints(2, "training_mode")?
        .is_some_and(|v| v.iter().any(|&t| t != 0));
    if training {
        return Err(c.err("training-mode dropout is not supported; export the model in eval mode"));
    }
    Ok(vec![c.input(0)?])
}

fn gelu(c: &mut NodeCtx) -> Out {
    let u = match c.attr_s("approximate", "none")?.as_str() {
        "none" => UnaryOp::Gelu,
        "tanh" => UnaryOp::GeluTanh,
        other => return Err(c.err(format!("unknown approximate mode `{other}`"))),
    };
    unary(c, u)
}

fn clip(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let (min, max) = if c.opset < 11 {
        (
            c.attr_f("min", f32::NEG_INFINITY)?,
            c.attr_f("max", f32::INFINITY)?,
        )
    } else {
        let bound = |c: &NodeCtx, i: usize, what: &str, default: f32| -> Result<f32, ImportError> {
            match c.const_input(i, what)? {
                None => Ok(default),
                Some(v) if v.len() == 1 => Ok(v.to_f32()[0]),
                Some(v) => Err(c.err(format!(
                    "the {what} must be a scalar, got shape {:?}",
                    v.shape()
                ))),
            }
        };
        (
            bound(c, 1, "min", f32::NEG_INFINITY)?,
            bound(c, 2, "max", f32::INFINITY)?,
        )
    };
    Ok(vec![c.add(Op::Clip { min, max }, &[x])?])
}

fn leaky_relu(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let alpha = c.attr_f("alpha", 0.01)?;
    Ok(vec![c.add(Op::LeakyRelu { alpha }, &[x])?])
}

fn hard_sigmoid(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let (alpha, beta) = (c.attr_f("alpha", 0.2)?, c.attr_f("beta", 0.5)?);
    Ok(vec![c.add(Op::HardSigmoid { alpha, beta }, &[x])?])
}

fn cast(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let code = c
        .attr_opt_i("to")?
        .ok_or_else(|| c.err("attribute `to` is required"))?;
    let to = i32::try_from(code)
        .ok()
        .and_then(tensor::dtype_of)
        .ok_or_else(|| c.err(format!("cannot cast to {}", tensor::type_name(code as i32))))?;
    if c.ty(x).dtype == to {
        return Ok(vec![x]);
    }
    Ok(vec![c.add(Op::Cast { to }, &[x])?])
}

/// `alpha * op(A) @ op(B) + beta * C` as Transpose, MatMul, Mul and Add primitives.
fn gemm(c: &mut NodeCtx) -> Out {
    let (mut a, mut b) = (c.input(0)?, c.input(1)?);
    let rank_ok = c.ty(a).shape.len() == 2 && c.ty(b).shape.len() == 2;
    if !rank_ok {
        return Err(c.err(format!(
            "A and B must be matrices, got {:?} and {:?}",
            c.ty(a).shape,
            c.ty(b).shape
        )));
    }
    let (alpha, beta) = (c.attr_f("alpha", 1.0)?, c.attr_f("beta", 1.0)?);
    if c.attr_i("transA", 0)? != 0 {
        a = c.add_tmp("transpose_a", Op::Transpose { perm: vec![1, 0] }, &[a])?;
    }
    if c.attr_i("transB", 0)? != 0 {
        b = c.add_tmp("transpose_b", Op::Transpose { perm: vec![1, 0] }, &[b])?;
    }
    let dtype = c.ty(a).dtype;
    let Some(mut bias) = c.opt_input(2).filter(|_| beta != 0.0) else {
        // No bias: the MatMul, scaled by alpha when needed, is the output.
        if alpha == 1.0 {
            return Ok(vec![c.add(Op::MatMul, &[a, b])?]);
        }
        let y = c.add_tmp("matmul", Op::MatMul, &[a, b])?;
        let s = c.scalar("alpha", alpha, dtype);
        return Ok(vec![c.add(Op::Binary(BinaryOp::Mul), &[y, s])?]);
    };
    let mut y = c.add_tmp("matmul", Op::MatMul, &[a, b])?;
    if alpha != 1.0 {
        let s = c.scalar("alpha", alpha, dtype);
        y = c.add_tmp("scaled", Op::Binary(BinaryOp::Mul), &[y, s])?;
    }
    if beta != 1.0 {
        let s = c.scalar("beta", beta, dtype);
        bias = c.add_tmp("bias_scaled", Op::Binary(BinaryOp::Mul), &[bias, s])?;
    }
    Ok(vec![c.add(Op::Binary(BinaryOp::Add), &[y, bias])?])
}
