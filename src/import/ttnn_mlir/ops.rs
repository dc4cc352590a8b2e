//! The TTNN dialect op table: `"ttnn.<name>"` -> builder, with the dialect's operand order
//! and attribute names (tt-mlir `TTNNOps.td`).

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use super::syntax::Attr;
use crate::graph::{BinaryOp, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use crate::import::builder::GraphBuilder;

/// One op statement being imported.
pub struct MlirCx<'a> {
    /// The graph under construction.
    pub b: &'a mut GraphBuilder,
    /// The name for the result node.
    pub name: String,
    /// Tensor operands in order (device operands dropped).
    pub operands: Vec<NodeIndex>,
    /// Properties and attributes.
    pub attrs: BTreeMap<String, Attr>,
    /// The declared result type.
    pub result: TensorType,
}

/// Builds the nodes of one op; errors are reasons (the caller adds file and line).
pub type MlirOp = fn(&mut MlirCx) -> Result<NodeIndex, String>;

impl MlirCx<'_> {
    fn operand(&self, i: usize) -> Result<NodeIndex, String> {
        self.operands
            .get(i)
            .copied()
            .ok_or_else(|| format!("operand {i} is missing"))
    }

    fn flag(&self, name: &str) -> bool {
        self.attrs.get(name) == Some(&Attr::Bool(true))
    }

    fn int(&self, name: &str) -> Result<i64, String> {
        self.attrs
            .get(name)
            .and_then(Attr::as_int)
            .ok_or_else(|| format!("integer attribute `{name}` is required"))
    }

    fn axis(&self, axis: i64, rank: usize) -> Result<usize, String> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| format!("dim {axis} out of range for rank {rank}"))
    }

    fn rank(&self, x: NodeIndex) -> usize {
        self.b.ty(x).shape.len()
    }

    /// Adds the result node.
    pub fn add(&mut self, op: Op, inputs: &[NodeIndex]) -> Result<NodeIndex, String> {
        let name = self.name.clone();
        self.b.add(&name, op, inputs).map_err(|e| e.to_string())
    }

    fn add_tmp(&mut self, suffix: &str, op: Op, inputs: &[NodeIndex]) -> Result<NodeIndex, String> {
        let name = format!("{}/{suffix}", self.name);
        self.b.add(&name, op, inputs).map_err(|e| e.to_string())
    }

    fn swap_last(&mut self, x: NodeIndex, suffix: &str) -> Result<NodeIndex, String> {
        let rank = self.rank(x);
        if rank < 2 {
            return Err("a transposed operand needs at least 2 dims".into());
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        self.add_tmp(suffix, Op::Transpose { perm }, &[x])
    }
}

/// The supported TTNN dialect ops, keyed by the name after `ttnn.`.
pub fn table() -> BTreeMap<&'static str, MlirOp> {
    let mut t: BTreeMap<&'static str, MlirOp> = BTreeMap::new();
    t.insert("exp", |c| unary(c, UnaryOp::Exp));
    t.insert("log", |c| unary(c, UnaryOp::Log));
    t.insert("sqrt", |c| unary(c, UnaryOp::Sqrt));
    t.insert("rsqrt", |c| unary(c, UnaryOp::Rsqrt));
    t.insert("reciprocal", |c| unary(c, UnaryOp::Recip));
    t.insert("relu", |c| unary(c, UnaryOp::Relu));
    t.insert("gelu", |c| unary(c, UnaryOp::Gelu));
    t.insert("silu", |c| unary(c, UnaryOp::Silu));
    t.insert("sigmoid", |c| unary(c, UnaryOp::Sigmoid));
    t.insert("tanh", |c| unary(c, UnaryOp::Tanh));
    t.insert("abs", |c| unary(c, UnaryOp::Abs));
    t.insert("neg", |c| unary(c, UnaryOp::Neg));
    t.insert("floor", |c| unary(c, UnaryOp::Floor));
    t.insert("erf", |c| unary(c, UnaryOp::Erf));
    t.insert("add", |c| binary(c, BinaryOp::Add));
    t.insert("subtract", |c| binary(c, BinaryOp::Sub));
    t.insert("multiply", |c| binary(c, BinaryOp::Mul));
    t.insert("divide", |c| binary(c, BinaryOp::Div));
    t.insert("maximum", |c| binary(c, BinaryOp::Max));
    t.insert("minimum", |c| binary(c, BinaryOp::Min));
    t.insert("pow", |c| binary(c, BinaryOp::Pow));
    t.insert("matmul", matmul);
    t.insert("linear", matmul);
    t.insert("softmax", |c| {
        let x = c.operand(0)?;
        let axis = c.axis(c.int("dimension")?, c.rank(x))?;
        c.add(Op::Softmax { axis }, &[x])
    });
    t.insert("transpose", |c| {
        let x = c.operand(0)?;
        let rank = c.rank(x);
        let (d0, d1) = (c.axis(c.int("dim0")?, rank)?, c.axis(c.int("dim1")?, rank)?);
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(d0, d1);
        c.add(Op::Transpose { perm }, &[x])
    });
    t.insert("permute", |c| {
        let x = c.operand(0)?;
        let rank = c.rank(x);
        let dims = c
            .attrs
            .get("permutation")
            .and_then(Attr::as_ints)
            .ok_or("attribute `permutation` is required")?;
        let perm = dims
            .iter()
            .map(|&d| c.axis(d, rank))
            .collect::<Result<Vec<_>, _>>()?;
        c.add(Op::Transpose { perm }, &[x])
    });
    t.insert("reshape", |c| {
        let x = c.operand(0)?;
        let shape = c.result.shape.clone();
        c.add(Op::Reshape { shape }, &[x])
    });
    t.insert("concat", |c| {
        let first = c.operand(0)?;
        let axis = c.axis(c.int("dim")?, c.rank(first))?;
        let ins = c.operands.clone();
        c.add(Op::Concat { axis }, &ins)
    });
    t.insert("sum", |c| reduce(c, ReduceOp::Sum));
    t.insert("mean", |c| reduce(c, ReduceOp::Mean));
    t.insert("max", |c| reduce(c, ReduceOp::Max));
    t.insert("min", |c| reduce(c, ReduceOp::Min));
    t.insert("layer_norm", |c| norm(c, true));
    t.insert("rms_norm", |c| norm(c, false));
    t.insert("embedding", |c| {
        let (idx, weight) = (c.operand(0)?, c.operand(1)?);
        c.add(Op::Gather { axis: 0 }, &[weight, idx])
    });
    t.insert("where", |c| {
        let ins = [c.operand(0)?, c.operand(1)?, c.operand(2)?];
        c.add(Op::Where, &ins)
    });
    t.insert("typecast", |c| {
        let x = c.operand(0)?;
        let to = c.result.dtype;
        if c.b.ty(x).dtype == to {
            return Ok(x);
        }
        c.add(Op::Cast { to }, &[x])
    });
    t
}

fn unary(c: &mut MlirCx, u: UnaryOp) -> Result<NodeIndex, String> {
    let x = c.operand(0)?;
    c.add(Op::Unary(u), &[x])
}

fn binary(c: &mut MlirCx, b: BinaryOp) -> Result<NodeIndex, String> {
    let ins = [c.operand(0)?, c.operand(1)?];
    c.add(Op::Binary(b), &ins)
}

/// `matmul(a, b)` and `linear(a, b, bias?)` with `transpose_a`/`transpose_b`.
fn matmul(c: &mut MlirCx) -> Result<NodeIndex, String> {
    let (mut a, mut b) = (c.operand(0)?, c.operand(1)?);
    if c.flag("transpose_a") {
        a = c.swap_last(a, "transpose_a")?;
    }
    if c.flag("transpose_b") {
        b = c.swap_last(b, "transpose_b")?;
    }
    match c.operands.get(2).copied() {
        None => c.add(Op::MatMul, &[a, b]),
        Some(bias) => {
            let y = c.add_tmp("matmul", Op::MatMul, &[a, b])?;
            c.add(Op::Binary(BinaryOp::Add), &[y, bias])
        }
    }
}

/// `sum/mean/max/min` with `dim_arg` (absent: all dims) and `keep_dim`.
fn reduce(c: &mut MlirCx, op: ReduceOp) -> Result<NodeIndex, String> {
    let x = c.operand(0)?;
    let rank = c.rank(x);
    let mut axes = match c.attrs.get("dim_arg") {
        None => (0..rank).collect(),
        Some(a) => {
            let dims = a
                .as_ints()
                .ok_or("attribute `dim_arg` must be a list of ints")?;
            dims.iter()
                .map(|&d| c.axis(d, rank))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    axes.sort_unstable();
    axes.dedup();
    let keep_dims = c.flag("keep_dim");
    c.add(
        Op::Reduce {
            op,
            axes,
            keep_dims,
        },
        &[x],
    )
}

/// `layer_norm/rms_norm(input, weight?, bias?)`; a missing weight is ones.
fn norm(c: &mut MlirCx, centered: bool) -> Result<NodeIndex, String> {
    let x = c.operand(0)?;
    let eps = c
        .attrs
        .get("epsilon")
        .and_then(Attr::as_f64)
        .unwrap_or(1e-12) as f32;
    let ty = c.b.ty(x).clone();
    let last = *ty.shape.last().ok_or("input is a scalar")?;
    // Optional operands: `operandSegmentSizes` says which of weight and bias are present.
    let (has_weight, has_bias) = match c
        .attrs
        .get("operandSegmentSizes")
        .and_then(Attr::as_ints)
        .as_deref()
    {
        Some([_, w, b]) => (*w > 0, *b > 0),
        _ => (c.operands.len() > 1, c.operands.len() > 2),
    };
    let gamma = match c.operands.get(1).copied().filter(|_| has_weight) {
        Some(g) => g,
        None => c.b.constant(
            &format!("{}/weight", c.name),
            TensorData::f32(vec![last], vec![1.0; last]),
            ty.dtype,
        ),
    };
    let mut ins = vec![x, gamma];
    let bias_at = if has_weight { 2 } else { 1 };
    if let Some(&bias) = c.operands.get(bias_at).filter(|_| has_bias) {
        if !centered {
            return Err("rms_norm with a bias is not supported".into());
        }
        ins.push(bias);
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
