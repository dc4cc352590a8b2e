//! The TTNN op table: `ttnn.<name>` -> builder of graph nodes, with TTNN's argument
//! conventions (tensor-ops.md in tt-metal: `softmax(x, dim)`, `transpose(x, dim0, dim1)`,
//! `sum(x, dim, keepdim)`, `matmul(a, b, transpose_a, transpose_b)`, ...).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;

use super::value::{Args, Val};
use crate::graph::{BinaryOp, DType, Op, ReduceOp, TensorData, UnaryOp};
use crate::import::attention::{self, Sdpa};
use crate::import::builder::GraphBuilder;
use crate::import::ImportError;

/// The context of one TTNN op call.
pub struct OpCx<'a> {
    /// The graph under construction.
    pub b: &'a mut GraphBuilder,
    /// The name for the call's result node.
    pub name: String,
    /// The called function, e.g. `ttnn.add`.
    pub func: String,
    /// The program file, for errors.
    pub file: &'a str,
    /// The line of the call.
    pub line: usize,
    /// Tensors used as operands so far (program outputs are the unused ones).
    pub consumed: &'a mut BTreeSet<NodeIndex>,
}

/// Builds the nodes of one TTNN op and returns the result node.
pub type TtnnOp = fn(&mut OpCx, &Args) -> Result<NodeIndex, ImportError>;

impl OpCx<'_> {
    /// An error about this call.
    pub fn err(&self, reason: impl std::fmt::Display) -> ImportError {
        ImportError::Line {
            file: self.file.to_string(),
            line: self.line,
            reason: format!("{}: {reason}", self.func),
        }
    }

    /// Required tensor argument `i` (or keyword `name`).
    pub fn tensor(&mut self, a: &Args, i: usize, name: &str) -> Result<NodeIndex, ImportError> {
        match a.get(i, name) {
            Some(Val::Tensor(t)) => {
                self.consumed.insert(*t);
                Ok(*t)
            }
            Some(other) => Err(self.err(format!(
                "argument `{name}` must be a tensor, got {}",
                other.describe()
            ))),
            None => Err(self.err(format!("argument `{name}` is required"))),
        }
    }

    /// A tensor or a number (a scalar constant of `dtype`).
    pub fn operand(
        &mut self,
        a: &Args,
        i: usize,
        name: &str,
        dtype: DType,
    ) -> Result<NodeIndex, ImportError> {
        match a.get(i, name) {
            Some(Val::Num(n)) => {
                let data = TensorData::f32(vec![], vec![*n as f32]);
                Ok(self
                    .b
                    .constant(&format!("{}/{name}", self.name), data, dtype))
            }
            _ => self.tensor(a, i, name),
        }
    }

    /// Integer argument, with a default when absent.
    pub fn int(
        &self,
        a: &Args,
        i: usize,
        name: &str,
        default: Option<i64>,
    ) -> Result<i64, ImportError> {
        match a.get(i, name) {
            None => default.ok_or_else(|| self.err(format!("argument `{name}` is required"))),
            Some(v) => v.as_int().ok_or_else(|| {
                self.err(format!(
                    "argument `{name}` must be an integer, got {}",
                    v.describe()
                ))
            }),
        }
    }

    /// Float argument, with a default when absent.
    pub fn float(&self, a: &Args, i: usize, name: &str, default: f32) -> Result<f32, ImportError> {
        match a.get(i, name) {
            None => Ok(default),
            Some(Val::Num(n)) => Ok(*n as f32),
            Some(v) => Err(self.err(format!(
                "argument `{name}` must be a number, got {}",
                v.describe()
            ))),
        }
    }

    /// Normalizes a possibly negative axis.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize, ImportError> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| self.err(format!("dim {axis} is out of range for rank {rank}")))
    }

    /// Adds the call's result node.
    pub fn add(&mut self, op: Op, inputs: &[NodeIndex]) -> Result<NodeIndex, ImportError> {
        let name = self.name.clone();
        self.add_as(&name, op, inputs)
    }

    /// Adds an intermediate node named `<result>/<suffix>`.
    pub fn add_tmp(
        &mut self,
        suffix: &str,
        op: Op,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, ImportError> {
        let name = format!("{}/{suffix}", self.name);
        self.add_as(&name, op, inputs)
    }

    fn add_as(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, ImportError> {
        self.b.add(name, op, inputs).map_err(|e| self.err(e))
    }
}

/// The supported TTNN ops, keyed by the name after `ttnn.`.
pub fn table() -> BTreeMap<&'static str, TtnnOp> {
    let mut t: BTreeMap<&'static str, TtnnOp> = BTreeMap::new();
    t.insert("exp", |c, a| unary(c, a, UnaryOp::Exp));
    t.insert("log", |c, a| unary(c, a, UnaryOp::Log));
    t.insert("sqrt", |c, a| unary(c, a, UnaryOp::Sqrt));
    t.insert("rsqrt", |c, a| unary(c, a, UnaryOp::Rsqrt));
    t.insert("reciprocal", |c, a| unary(c, a, UnaryOp::Recip));
    t.insert("relu", |c, a| unary(c, a, UnaryOp::Relu));
    t.insert("silu", |c, a| unary(c, a, UnaryOp::Silu));
    t.insert("sigmoid", |c, a| unary(c, a, UnaryOp::Sigmoid));
    t.insert("tanh", |c, a| unary(c, a, UnaryOp::Tanh));
    t.insert("abs", |c, a| unary(c, a, UnaryOp::Abs));
    t.insert("neg", |c, a| unary(c, a, UnaryOp::Neg));
    t.insert("floor", |c, a| unary(c, a, UnaryOp::Floor));
    t.insert("erf", |c, a| unary(c, a, UnaryOp::Erf));
    t.insert("softplus", |c, a| unary(c, a, UnaryOp::Softplus));
    t.insert("identity", |c, a| unary(c, a, UnaryOp::Identity));
    t.insert("gelu", |c, a| {
        let fast = matches!(a.kw.get("fast_and_approximate_mode"), Some(Val::Bool(true)));
        unary(
            c,
            a,
            if fast {
                UnaryOp::GeluTanh
            } else {
                UnaryOp::Gelu
            },
        )
    });
    t.insert("add", |c, a| binary(c, a, BinaryOp::Add));
    t.insert("subtract", |c, a| binary(c, a, BinaryOp::Sub));
    t.insert("sub", |c, a| binary(c, a, BinaryOp::Sub));
    t.insert("multiply", |c, a| binary(c, a, BinaryOp::Mul));
    t.insert("mul", |c, a| binary(c, a, BinaryOp::Mul));
    t.insert("divide", |c, a| binary(c, a, BinaryOp::Div));
    t.insert("div", |c, a| binary(c, a, BinaryOp::Div));
    t.insert("maximum", |c, a| binary(c, a, BinaryOp::Max));
    t.insert("minimum", |c, a| binary(c, a, BinaryOp::Min));
    t.insert("pow", |c, a| binary(c, a, BinaryOp::Pow));
    t.insert("matmul", matmul);
    t.insert("linear", linear);
    t.insert("softmax", softmax);
    t.insert("transpose", transpose);
    t.insert("transformer.scaled_dot_product_attention", sdpa);
    t.insert("permute", permute);
    t.insert("reshape", reshape);
    t.insert("sum", |c, a| reduce(c, a, ReduceOp::Sum));
    t.insert("mean", |c, a| reduce(c, a, ReduceOp::Mean));
    t.insert("max", |c, a| reduce(c, a, ReduceOp::Max));
    t.insert("min", |c, a| reduce(c, a, ReduceOp::Min));
    t.insert("layer_norm", |c, a| norm(c, a, true));
    t.insert("rms_norm", |c, a| norm(c, a, false));
    t.insert("concat", concat);
    t.insert("clamp", clamp);
    t.insert("clip", clamp);
    t.insert("leaky_relu", |c, a| {
        let x = c.tensor(a, 0, "input_tensor")?;
        let alpha = c.float(a, 1, "negative_slope", 0.01)?;
        c.add(Op::LeakyRelu { alpha }, &[x])
    });
    t.insert("typecast", |c, a| {
        let x = c.tensor(a, 0, "input_tensor")?;
        match a.get(1, "dtype") {
            Some(Val::DType(to)) => c.add(Op::Cast { to: *to }, &[x]),
            other => Err(c.err(format!(
                "argument `dtype` must be a ttnn dtype, got {other:?}"
            ))),
        }
    });
    t.insert("embedding", |c, a| {
        let (idx, weight) = (c.tensor(a, 0, "input_tensor")?, c.tensor(a, 1, "weight")?);
        c.add(Op::Gather { axis: 0 }, &[weight, idx])
    });
    t.insert("where", |c, a| {
        let cond = c.tensor(a, 0, "condition")?;
        let dtype = c.b.ty(cond).dtype;
        let dtype = if dtype.is_float() { dtype } else { DType::F32 };
        let (x, y) = (
            c.operand(a, 1, "true_value", dtype)?,
            c.operand(a, 2, "false_value", dtype)?,
        );
        c.add(Op::Where, &[cond, x, y])
    });
    t
}

fn unary(c: &mut OpCx, a: &Args, u: UnaryOp) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    c.add(Op::Unary(u), &[x])
}

/// A binary op; either side may be a Python number.
fn binary(c: &mut OpCx, a: &Args, op: BinaryOp) -> Result<NodeIndex, ImportError> {
    let dtype = [a.get(0, "input_tensor_a"), a.get(1, "input_tensor_b")]
        .into_iter()
        .find_map(|v| match v {
            Some(Val::Tensor(t)) => Some(c.b.ty(*t).dtype),
            _ => None,
        })
        .ok_or_else(|| c.err("needs at least one tensor operand"))?;
    let x = c.operand(a, 0, "input_tensor_a", dtype)?;
    let y = c.operand(a, 1, "input_tensor_b", dtype)?;
    c.add(Op::Binary(op), &[x, y])
}

/// Swaps the last two axes of `x` (for `transpose_a`/`transpose_b`).
fn swap_last(c: &mut OpCx, x: NodeIndex, suffix: &str) -> Result<NodeIndex, ImportError> {
    let op = Op::transpose_last_two(c.b.ty(x).shape.len())
        .ok_or_else(|| c.err("transposed operands need at least 2 dims"))?;
    c.add_tmp(suffix, op, &[x])
}

fn flag(a: &Args, name: &str) -> bool {
    matches!(a.kw.get(name), Some(Val::Bool(true)))
}

fn matmul_operands(c: &mut OpCx, a: &Args) -> Result<(NodeIndex, NodeIndex), ImportError> {
    let (mut x, mut y) = (
        c.tensor(a, 0, "input_tensor_a")?,
        c.tensor(a, 1, "input_tensor_b")?,
    );
    if flag(a, "transpose_a") {
        x = swap_last(c, x, "transpose_a")?;
    }
    if flag(a, "transpose_b") {
        y = swap_last(c, y, "transpose_b")?;
    }
    Ok((x, y))
}

fn matmul(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let (x, y) = matmul_operands(c, a)?;
    c.add(Op::MatMul, &[x, y])
}

/// `linear(a, b, bias=None, activation=None)`: matmul, bias add, optional activation.
fn linear(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let (x, w) = matmul_operands(c, a)?;
    let bias = match a.get(2, "bias") {
        Some(_) => Some(c.tensor(a, 2, "bias")?),
        None => None,
    };
    let act = match a.kw.get("activation") {
        None | Some(Val::None) => None,
        Some(Val::Str(s)) => Some(match s.as_str() {
            "relu" => UnaryOp::Relu,
            "gelu" => UnaryOp::Gelu,
            "silu" => UnaryOp::Silu,
            "sigmoid" => UnaryOp::Sigmoid,
            "tanh" => UnaryOp::Tanh,
            other => return Err(c.err(format!("activation `{other}` is not supported"))),
        }),
        Some(v) => return Err(c.err(format!("activation must be a string, got {}", v.describe()))),
    };
    let mut steps: Vec<(Op, Option<NodeIndex>)> = vec![(Op::MatMul, Some(w))];
    if let Some(b) = bias {
        steps.push((Op::Binary(BinaryOp::Add), Some(b)));
    }
    if let Some(u) = act {
        steps.push((Op::Unary(u), None));
    }
    let last = steps.len() - 1;
    let mut y = x;
    for (k, (op, other)) in steps.into_iter().enumerate() {
        let ins: Vec<NodeIndex> = std::iter::once(y).chain(other).collect();
        y = if k == last {
            c.add(op, &ins)?
        } else {
            c.add_tmp(&op.name().to_lowercase(), op, &ins)?
        };
    }
    Ok(y)
}

fn softmax(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let rank = c.b.ty(x).shape.len();
    let axis = c.axis(c.int(a, 1, "dim", Some(-1))?, rank)?;
    c.add(Op::Softmax { axis }, &[x])
}

/// `transformer.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=True,
/// scale=None)`, TTNN's defaults.
fn sdpa(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let (q, k, v) = (
        c.tensor(a, 0, "input_tensor_q")?,
        c.tensor(a, 1, "input_tensor_k")?,
        c.tensor(a, 2, "input_tensor_v")?,
    );
    let mask = match a.get(3, "attn_mask") {
        None | Some(Val::None) => None,
        Some(_) => Some(c.tensor(a, 3, "attn_mask")?),
    };
    let causal = match a.get(4, "is_causal") {
        None => true,
        Some(Val::Bool(b)) => *b,
        Some(v) => {
            return Err(c.err(format!(
                "argument `is_causal` must be True or False, got {}",
                v.describe()
            )))
        }
    };
    let scale = match a.get(5, "scale") {
        None | Some(Val::None) => None,
        Some(Val::Num(n)) => Some(*n as f32),
        Some(v) => {
            return Err(c.err(format!(
                "argument `scale` must be a number, got {}",
                v.describe()
            )))
        }
    };
    let name = c.name.clone();
    let sdpa = Sdpa {
        q,
        k,
        v,
        mask,
        causal,
        scale,
    };
    attention::build(c.b, &name, sdpa).map_err(|e| c.err(e))
}

fn transpose(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let rank = c.b.ty(x).shape.len();
    let d0 = c.axis(c.int(a, 1, "dim0", None)?, rank)?;
    let d1 = c.axis(c.int(a, 2, "dim1", None)?, rank)?;
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(d0, d1);
    c.add(Op::Transpose { perm }, &[x])
}

fn permute(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let rank = c.b.ty(x).shape.len();
    let dims = a
        .get(1, "dims")
        .and_then(Val::as_ints)
        .ok_or_else(|| c.err("argument `dims` must be a list of ints"))?;
    let perm = dims
        .iter()
        .map(|&d| c.axis(d, rank))
        .collect::<Result<Vec<_>, _>>()?;
    c.add(Op::Transpose { perm }, &[x])
}

fn reshape(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let target = a
        .get(1, "shape")
        .and_then(Val::as_ints)
        .ok_or_else(|| c.err("argument `shape` must be a tuple of ints"))?;
    let numel = c.b.ty(x).numel();
    let known: i64 = target.iter().filter(|&&d| d != -1).product();
    let unknown = target.iter().filter(|&&d| d == -1).count();
    let bad = || {
        c.err(format!(
            "cannot reshape {:?} to {target:?}",
            c.b.ty(x).shape
        ))
    };
    if unknown > 1 || target.iter().any(|&d| d < -1) || known <= 0 {
        return Err(bad());
    }
    let fill = if unknown == 1 {
        numel as i64 / known
    } else {
        1
    };
    let shape: Vec<usize> = target
        .iter()
        .map(|&d| if d == -1 { fill as usize } else { d as usize })
        .collect();
    c.add(Op::Reshape { shape }, &[x])
}

/// `sum/mean/max/min(x, dim=None, keepdim=False)`; `dim` may be an int or a list.
fn reduce(c: &mut OpCx, a: &Args, op: ReduceOp) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let rank = c.b.ty(x).shape.len();
    let mut axes = match a.get(1, "dim") {
        None => (0..rank).collect(),
        Some(v) => {
            let dims = v.as_ints().ok_or_else(|| {
                c.err(format!(
                    "argument `dim` must be an int or a list, got {}",
                    v.describe()
                ))
            })?;
            dims.iter()
                .map(|&d| c.axis(d, rank))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    axes.sort_unstable();
    axes.dedup();
    let keep_dims = matches!(a.get(2, "keepdim"), Some(Val::Bool(true)));
    c.add(
        Op::Reduce {
            op,
            axes,
            keep_dims,
        },
        &[x],
    )
}

/// `layer_norm/rms_norm(x, epsilon=1e-12, weight=None, bias=None)`; a missing weight is ones.
fn norm(c: &mut OpCx, a: &Args, centered: bool) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let eps = c.float(a, usize::MAX, "epsilon", 1e-12)?;
    let ty = c.b.ty(x).clone();
    let last = *ty.shape.last().ok_or_else(|| c.err("input is a scalar"))?;
    let gamma = match a.kw.get("weight") {
        Some(Val::Tensor(_)) => c.tensor(a, usize::MAX, "weight")?,
        _ => c.b.constant(
            &format!("{}/weight", c.name),
            TensorData::f32(vec![last], vec![1.0; last]),
            ty.dtype,
        ),
    };
    let mut ins = vec![x, gamma];
    if let Some(Val::Tensor(_)) = a.kw.get("bias") {
        if !centered {
            return Err(c.err("rms_norm with a bias is not supported"));
        }
        ins.push(c.tensor(a, usize::MAX, "bias")?);
    }
    c.add(
        if centered {
            Op::LayerNorm { eps }
        } else {
            Op::RmsNorm { eps }
        },
        &ins,
    )
}

fn concat(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let Some(Val::Seq(items)) = a.get(0, "tensors") else {
        return Err(c.err("argument `tensors` must be a list of tensors"));
    };
    let mut ins = Vec::with_capacity(items.len());
    for (k, v) in items.iter().enumerate() {
        let one = Args {
            pos: vec![v.clone()],
            ..Args::default()
        };
        ins.push(c.tensor(&one, 0, &format!("tensors[{k}]"))?);
    }
    let first = *ins
        .first()
        .ok_or_else(|| c.err("needs at least one tensor"))?;
    let axis = c.axis(c.int(a, 1, "dim", Some(0))?, c.b.ty(first).shape.len())?;
    c.add(Op::Concat { axis }, &ins)
}

fn clamp(c: &mut OpCx, a: &Args) -> Result<NodeIndex, ImportError> {
    let x = c.tensor(a, 0, "input_tensor")?;
    let min = c.float(a, 1, "min", f32::NEG_INFINITY)?;
    let max = c.float(a, 2, "max", f32::INFINITY)?;
    c.add(Op::Clip { min, max }, &[x])
}
