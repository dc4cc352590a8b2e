//! The TTNN dialect op table: `"ttnn.<name>"` -> builder and tensor operand count, with the
//! dialect's operand order and attribute names (tt-mlir `TTNNOps.td`).

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use super::syntax::Attr;
use crate::graph::{BinaryOp, DType, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use crate::import::attention::{self, Sdpa};
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
pub type MlirBuild = fn(&mut MlirCx) -> Result<NodeIndex, String>;

/// A supported op: its builder and how many tensor operands it takes.
#[derive(Clone, Copy)]
pub struct MlirOp {
    /// Builds the op's nodes.
    pub build: MlirBuild,
    /// Fewest tensor operands.
    pub min: usize,
    /// Most tensor operands (`usize::MAX`: any number).
    pub max: usize,
}

impl MlirOp {
    /// The accepted operand count in words, e.g. `2` or `2 or 3`.
    pub fn arity(&self) -> String {
        match (self.min, self.max) {
            (a, b) if a == b => a.to_string(),
            (a, usize::MAX) => format!("{a} or more"),
            (a, b) if b == a + 1 => format!("{a} or {b}"),
            (a, b) => format!("{a} to {b}"),
        }
    }
}

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

    fn count(&self, name: &str) -> Result<usize, String> {
        let v = self.int(name)?;
        usize::try_from(v).map_err(|_| format!("attribute `{name}` = {v} must not be negative"))
    }

    /// A list attribute of non-negative integers (a single integer counts as a list of one).
    fn counts(&self, name: &str) -> Result<Option<Vec<usize>>, String> {
        let Some(attr) = self.attrs.get(name) else {
            return Ok(None);
        };
        let ints = attr
            .as_ints()
            .ok_or_else(|| format!("attribute `{name}` must be a list of integers"))?;
        ints.iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| format!("attribute `{name}` has a negative entry {v}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A `[h, w]` attribute (one value means both), or `default` when absent.
    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2], String> {
        match self.counts(name)?.as_deref() {
            None => Ok([default; 2]),
            Some([v]) => Ok([*v; 2]),
            Some([h, w]) => Ok([*h, *w]),
            Some(other) => Err(format!(
                "attribute `{name}` must have 1 or 2 values, got {other:?}"
            )),
        }
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
        let op = Op::transpose_last_two(self.rank(x))
            .ok_or("a transposed operand needs at least 2 dims")?;
        self.add_tmp(suffix, op, &[x])
    }
}

/// The supported TTNN dialect ops, keyed by the name after `ttnn.`.
pub fn table() -> BTreeMap<&'static str, MlirOp> {
    let mut t: BTreeMap<&'static str, MlirOp> = BTreeMap::new();
    let mut put = |name: &'static str, min: usize, max: usize, build: MlirBuild| {
        t.insert(name, MlirOp { build, min, max });
    };
    put("exp", 1, 1, |c| unary(c, UnaryOp::Exp));
    put("log", 1, 1, |c| unary(c, UnaryOp::Log));
    put("sqrt", 1, 1, |c| unary(c, UnaryOp::Sqrt));
    put("rsqrt", 1, 1, |c| unary(c, UnaryOp::Rsqrt));
    put("reciprocal", 1, 1, |c| unary(c, UnaryOp::Recip));
    put("relu", 1, 1, |c| unary(c, UnaryOp::Relu));
    put("gelu", 1, 1, |c| unary(c, UnaryOp::Gelu));
    put("silu", 1, 1, |c| unary(c, UnaryOp::Silu));
    put("sigmoid", 1, 1, |c| unary(c, UnaryOp::Sigmoid));
    put("tanh", 1, 1, |c| unary(c, UnaryOp::Tanh));
    put("abs", 1, 1, |c| unary(c, UnaryOp::Abs));
    put("neg", 1, 1, |c| unary(c, UnaryOp::Neg));
    put("floor", 1, 1, |c| unary(c, UnaryOp::Floor));
    put("erf", 1, 1, |c| unary(c, UnaryOp::Erf));
    put("add", 2, 2, |c| binary(c, BinaryOp::Add));
    put("subtract", 2, 2, |c| binary(c, BinaryOp::Sub));
    put("multiply", 2, 2, |c| binary(c, BinaryOp::Mul));
    put("divide", 2, 2, |c| binary(c, BinaryOp::Div));
    put("maximum", 2, 2, |c| binary(c, BinaryOp::Max));
    put("minimum", 2, 2, |c| binary(c, BinaryOp::Min));
    put("pow", 2, 2, |c| binary(c, BinaryOp::Pow));
    put("matmul", 2, 2, matmul);
    put("linear", 2, 3, matmul);
    put("softmax", 1, 1, |c| {
        let x = c.operand(0)?;
        let axis = c.axis(c.int("dimension")?, c.rank(x))?;
        c.add(Op::Softmax { axis }, &[x])
    });
    put("scaled_dot_product_attention", 3, 4, |c| {
        let scale = match c.attrs.get("scale") {
            None => None,
            Some(a) => Some(a.as_f64().ok_or("attribute `scale` must be a number")? as f32),
        };
        let sdpa = Sdpa {
            q: c.operand(0)?,
            k: c.operand(1)?,
            v: c.operand(2)?,
            mask: c.operands.get(3).copied(),
            causal: c.flag("is_causal"),
            scale,
        };
        let name = c.name.clone();
        attention::build(c.b, &name, sdpa)
    });
    put("transpose", 1, 1, |c| {
        let x = c.operand(0)?;
        let rank = c.rank(x);
        let (d0, d1) = (c.axis(c.int("dim0")?, rank)?, c.axis(c.int("dim1")?, rank)?);
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(d0, d1);
        c.add(Op::Transpose { perm }, &[x])
    });
    put("permute", 1, 1, |c| {
        let x = c.operand(0)?;
        let rank = c.rank(x);
        let dims = c
            .attrs
            .get("permutation")
            .and_then(Attr::as_ints)
            .ok_or("attribute `permutation` (a list of dims) is required")?;
        let perm = dims
            .iter()
            .map(|&d| c.axis(d, rank))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..rank).collect::<Vec<_>>() {
            return Err(format!(
                "permutation {dims:?} is not a permutation of the {rank} dims"
            ));
        }
        c.add(Op::Transpose { perm }, &[x])
    });
    put("reshape", 1, 1, |c| {
        let x = c.operand(0)?;
        // The `shape` attribute when given (checked against the result type by the caller).
        let shape = c.counts("shape")?.unwrap_or_else(|| c.result.shape.clone());
        c.add(Op::Reshape { shape }, &[x])
    });
    put("concat", 1, usize::MAX, |c| {
        let first = c.operand(0)?;
        let axis = c.axis(c.int("dim")?, c.rank(first))?;
        let ins = c.operands.clone();
        c.add(Op::Concat { axis }, &ins)
    });
    put("sum", 1, 1, |c| reduce(c, ReduceOp::Sum));
    put("mean", 1, 1, |c| reduce(c, ReduceOp::Mean));
    put("max", 1, 1, |c| reduce(c, ReduceOp::Max));
    put("min", 1, 1, |c| reduce(c, ReduceOp::Min));
    put("layer_norm", 1, 3, |c| norm(c, true));
    put("rms_norm", 1, 3, |c| norm(c, false));
    put("embedding", 2, 2, |c| {
        let (idx, weight) = (c.operand(0)?, c.operand(1)?);
        c.add(Op::Gather { axis: 0 }, &[weight, idx])
    });
    put("where", 3, 3, |c| {
        let ins = [c.operand(0)?, c.operand(1)?, c.operand(2)?];
        c.add(Op::Where, &ins)
    });
    put("typecast", 1, 1, |c| {
        let x = c.operand(0)?;
        let to = c.result.dtype;
        if c.b.ty(x).dtype == to {
            return Ok(x);
        }
        c.add(Op::Cast { to }, &[x])
    });
    put("conv2d", 2, 3, conv2d);
    put("full", 0, 0, |c| {
        let value = c
            .attrs
            .get("fill_value")
            .and_then(Attr::as_f64)
            .ok_or("attribute `fill_value` (a number) is required")?;
        filled(c, value)
    });
    put("ones", 0, 0, |c| filled(c, 1.0));
    put("zeros", 0, 0, |c| filled(c, 0.0));
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

/// A constant of the declared result type, every element `value`.
fn filled(c: &mut MlirCx, value: f64) -> Result<NodeIndex, String> {
    let ty = c.result.clone();
    let n = ty.numel();
    let data = if ty.dtype.is_float() {
        TensorData::f32(ty.shape.clone(), vec![value as f32; n])
    } else if value.fract() == 0.0 {
        TensorData::i64(ty.shape.clone(), vec![value as i64; n])
    } else {
        return Err(format!(
            "fill value {value} does not fit the integer type {:?}",
            ty.dtype
        ));
    };
    let name = c.name.clone();
    Ok(c.b.constant(&name, data, ty.dtype))
}

/// `matmul(a, b)` and `linear(a, b, bias?)` with `transpose_a`/`transpose_b` and an optional
/// fused `activation`.
fn matmul(c: &mut MlirCx) -> Result<NodeIndex, String> {
    let (mut a, mut b) = (c.operand(0)?, c.operand(1)?);
    if c.flag("transpose_a") {
        a = c.swap_last(a, "transpose_a")?;
    }
    if c.flag("transpose_b") {
        b = c.swap_last(b, "transpose_b")?;
    }
    let activation = match c.attrs.get("activation") {
        None => None,
        Some(Attr::Str(s)) => Some(match s.as_str() {
            "relu" => UnaryOp::Relu,
            "gelu" => UnaryOp::Gelu,
            "silu" => UnaryOp::Silu,
            "sigmoid" => UnaryOp::Sigmoid,
            "tanh" => UnaryOp::Tanh,
            other => {
                return Err(format!(
                    "activation `{other}` is not supported (relu, gelu, silu, sigmoid, tanh are)"
                ))
            }
        }),
        Some(other) => {
            return Err(format!(
                "attribute `activation` must be a string, got {other:?}"
            ))
        }
    };
    let bias = c.operands.get(2).copied();
    let mut y = match (bias, activation) {
        (None, None) => return c.add(Op::MatMul, &[a, b]),
        _ => c.add_tmp("matmul", Op::MatMul, &[a, b])?,
    };
    if let Some(bias) = bias {
        y = match activation {
            None => return c.add(Op::Binary(BinaryOp::Add), &[y, bias]),
            Some(_) => c.add_tmp("bias", Op::Binary(BinaryOp::Add), &[y, bias])?,
        };
    }
    match activation {
        Some(u) => c.add(Op::Unary(u), &[y]),
        None => Ok(y),
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

/// Whether a `ttnn.conv2d`'s `conv2d_config` fuses a ReLU: its `activation` is written
/// `"relu"`, `<op_type = relu>` or `#ttnn.unary_with_param<op_type = relu>` (none: absent or
/// `""`). Another activation is an error: only the ReLU is fused.
fn fused_relu(c: &MlirCx) -> Result<bool, String> {
    let Some(Attr::Other(config)) = c.attrs.get("conv2d_config") else {
        return Ok(false);
    };
    let Some(at) = config.find("activation = ") else {
        return Ok(false);
    };
    let value = &config[at + "activation = ".len()..];
    let value = value
        .strip_prefix("#ttnn.unary_with_param")
        .unwrap_or(value);
    let name = match (value.strip_prefix("<op_type = "), value.strip_prefix('"')) {
        (Some(rest), _) => rest.split(['>', ',']).next(),
        (_, Some(rest)) => rest.split('"').next(),
        _ => value.split(['>', ',']).next(),
    };
    match name.unwrap_or("").trim() {
        "" => Ok(false),
        "relu" => Ok(true),
        other => Err(format!(
            "conv2d_config activation `{other}` is not supported (only relu is fused); apply it as a separate op after the conv2d"
        )),
    }
}

/// `conv2d(input, weight, bias?)`. TTNN's input is flattened NHWC `[1, 1, N*H*W, C]` and its
/// output `[1, 1, N*OH*OW, O]`; the graph's `Conv` is NCHW, so the input is reshaped to
/// `[N, H, W, C]` and permuted to NCHW, and the result permuted back and flattened. Weights are
/// OIHW `[O, C/groups, KH, KW]`, the bias `[1, 1, 1, O]` (or `[O]`). `padding` is `[pH, pW]`
/// or `[top, bottom, left, right]`. A ReLU fused by `conv2d_config`'s `activation`
/// ([`fused_relu`]) stays fused.
fn conv2d(c: &mut MlirCx) -> Result<NodeIndex, String> {
    let (x, w) = (c.operand(0)?, c.operand(1)?);
    let (n, h, wd) = (
        c.count("batch_size")?,
        c.count("input_height")?,
        c.count("input_width")?,
    );
    let (cin, cout) = (c.count("in_channels")?, c.count("out_channels")?);
    let groups = if c.attrs.contains_key("groups") {
        c.count("groups")?
    } else {
        1
    };
    let x_shape = c.b.ty(x).shape.clone();
    if x_shape != [1, 1, n * h * wd, cin] {
        return Err(format!(
            "the input {x_shape:?} is not flattened NHWC [1, 1, N*H*W, C] = [1, 1, {}, {cin}] for batch_size {n}, input_height {h}, input_width {wd}, in_channels {cin}",
            n * h * wd
        ));
    }
    let w_shape = c.b.ty(w).shape.clone();
    if w_shape.len() != 4 || w_shape[0] != cout {
        return Err(format!(
            "the weight {w_shape:?} is not OIHW [{cout}, {}, KH, KW] (prepared weights from ttnn.prepare_conv2d_weights are not supported)",
            cin / groups.max(1)
        ));
    }
    let kernel = c.pair("kernel_size", 1)?;
    let stride = c.pair("stride", 1)?;
    let dilation = c.pair("dilation", 1)?;
    let pads = match c.counts("padding")?.as_deref() {
        None => [0; 4],
        Some([p]) => [*p; 4],
        Some([ph, pw]) => [*ph, *pw, *ph, *pw],
        Some([top, bottom, left, right]) => [*top, *left, *bottom, *right],
        Some(other) => {
            return Err(format!(
                "attribute `padding` must have 1, 2 or 4 values, got {other:?}"
            ))
        }
    };
    let nhwc = c.add_tmp(
        "nhwc",
        Op::Reshape {
            shape: vec![n, h, wd, cin],
        },
        &[x],
    )?;
    let nchw = c.add_tmp(
        "nchw",
        Op::Transpose {
            perm: vec![0, 3, 1, 2],
        },
        &[nhwc],
    )?;
    let mut ins = vec![nchw, w];
    if let Some(&bias) = c.operands.get(2) {
        let numel = c.b.ty(bias).numel();
        if numel != cout {
            return Err(format!(
                "the bias {:?} must hold out_channels = {cout} values",
                c.b.ty(bias).shape
            ));
        }
        ins.push(c.add_tmp("bias", Op::Reshape { shape: vec![cout] }, &[bias])?);
    }
    let conv = Op::Conv {
        kernel,
        stride,
        pads,
        dilation,
        groups,
        relu: fused_relu(c)?,
        pixels: None,
    };
    let y = c.add_tmp("conv", conv, &ins)?;
    let y_nhwc = c.add_tmp(
        "out_nhwc",
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[y],
    )?;
    let rows = c.b.ty(y_nhwc).shape[..3].iter().product();
    c.add(
        Op::Reshape {
            shape: vec![1, 1, rows, cout],
        },
        &[y_nhwc],
    )
}

/// The dtype a TTNN element type name stands for, for messages about dtypes.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I64 => "i64",
        DType::I32 => "i32",
        DType::Bool => "i1",
    }
}
