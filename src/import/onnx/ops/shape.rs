//! Shape and data-movement ONNX ops. Shape operands must be constant (after folding), so
//! every result has a static shape; shape arithmetic subgraphs fold into constants.

use petgraph::graph::NodeIndex;

use super::OpTable;
use crate::graph::infer::broadcast_shapes;
use crate::graph::{DType, Op, TensorData};
use crate::import::onnx::NodeCtx;
use crate::import::ImportError;

type Out = Result<Vec<NodeIndex>, ImportError>;

/// Registers the shape ops.
pub fn register(t: &mut OpTable) {
    t.insert("Constant", constant);
    t.insert("ConstantOfShape", constant_of_shape);
    t.insert("Range", range);
    t.insert("Mod", modulo);
    t.insert("Shape", shape_of);
    t.insert("Reshape", reshape);
    t.insert("Flatten", flatten);
    t.insert("Squeeze", |c| squeeze_unsqueeze(c, false));
    t.insert("Unsqueeze", |c| squeeze_unsqueeze(c, true));
    t.insert("Transpose", transpose);
    t.insert("Concat", concat);
    t.insert("Gather", gather);
    t.insert("Slice", slice);
    t.insert("Split", split);
    t.insert("Expand", expand);
}

fn constant(c: &mut NodeCtx) -> Out {
    let (data, dtype) = if let Some(v) = c.attr_tensor("value")? {
        v
    } else if let Some(f) = c.attr_floats("value_floats")? {
        (TensorData::f32(vec![f.len()], f), DType::F32)
    } else if let Some(i) = c.attr_ints("value_ints")? {
        (TensorData::i64(vec![i.len()], i), DType::I64)
    } else if let Some(i) = c.attr_opt_i("value_int")? {
        (TensorData::i64(vec![], vec![i]), DType::I64)
    } else if c.node.attribute.iter().any(|a| a.name == "value_float") {
        (
            TensorData::f32(vec![], vec![c.attr_f("value_float", 0.0)?]),
            DType::F32,
        )
    } else {
        return Err(c.err("only tensor, float and int constant values are supported"));
    };
    Ok(vec![c.constant("", data, dtype)])
}

fn constant_of_shape(c: &mut NodeCtx) -> Out {
    let shape = dims(c, 0, "shape")?;
    let (value, dtype) = c
        .attr_tensor("value")?
        .unwrap_or((TensorData::f32(vec![1], vec![0.0]), DType::F32));
    if value.len() != 1 {
        return Err(c.err("attribute `value` must hold one element"));
    }
    let n = shape.iter().product();
    let data = match value {
        TensorData::F32 { values, .. } => TensorData::f32(shape, vec![values[0]; n]),
        TensorData::I64 { values, .. } => TensorData::i64(shape, vec![values[0]; n]),
    };
    Ok(vec![c.constant("", data, dtype)])
}

fn range(c: &mut NodeCtx) -> Out {
    let scalar = |c: &NodeCtx, i: usize, what: &str| -> Result<TensorData, ImportError> {
        match c.const_input(i, what)? {
            Some(v) if v.len() == 1 => Ok(v),
            _ => Err(c.err(format!("the {what} must be a constant scalar"))),
        }
    };
    let (start, limit, delta) = (
        scalar(c, 0, "start")?,
        scalar(c, 1, "limit")?,
        scalar(c, 2, "delta")?,
    );
    let dtype = c.ty(c.input(0)?).dtype;
    let (s, l, d) = (
        start.to_f32()[0] as f64,
        limit.to_f32()[0] as f64,
        delta.to_f32()[0] as f64,
    );
    if d == 0.0 {
        return Err(c.err("delta is zero"));
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    let data = match start {
        TensorData::I64 { values, .. } => {
            let (s, d) = (values[0], delta.to_i64()[0]);
            TensorData::i64(vec![n], (0..n as i64).map(|k| s + k * d).collect())
        }
        TensorData::F32 { .. } => {
            TensorData::f32(vec![n], (0..n).map(|k| (s + k as f64 * d) as f32).collect())
        }
    };
    Ok(vec![c.constant("", data, dtype)])
}

/// `Mod` of constants, folded here: PyTorch exports it in shape arithmetic (the head-size
/// check of `nn.MultiheadAttention`). The divisor is one value or one per dividend element;
/// `fmod = 0` takes the divisor's sign (integers), `fmod = 1` the dividend's (C's `fmod`).
fn modulo(c: &mut NodeCtx) -> Out {
    let operand = |c: &NodeCtx, i: usize, what: &str| {
        c.const_input(i, what)?.ok_or_else(|| {
            c.err(format!(
                "Mod needs its {what}; ttfuse folds Mod of constants only (no kernel computes it)"
            ))
        })
    };
    let (a, b) = (operand(c, 0, "dividend")?, operand(c, 1, "divisor")?);
    if b.len() != 1 && b.shape() != a.shape() {
        return Err(c.err(format!(
            "Mod of a {:?} dividend by a {:?} divisor: only one divisor or one per element is folded",
            a.shape(),
            b.shape()
        )));
    }
    let fmod = c.attr_i("fmod", 0)? != 0;
    let at = |i: usize| if b.len() == 1 { 0 } else { i };
    let data = match (&a, &b) {
        (TensorData::I64 { values, shape }, TensorData::I64 { .. }) => {
            let d = b.to_i64();
            if d.contains(&0) {
                return Err(c.err("Mod by zero"));
            }
            let m = |(i, &x): (usize, &i64)| {
                let y = d[at(i)];
                if fmod {
                    x % y
                } else {
                    x.rem_euclid(y) + if y < 0 && x.rem_euclid(y) != 0 { y } else { 0 }
                }
            };
            TensorData::i64(shape.clone(), values.iter().enumerate().map(m).collect())
        }
        _ => {
            let (x, d) = (a.to_f32(), b.to_f32());
            let m = |i: usize| {
                let (x, y) = (x[i], d[at(i)]);
                if fmod {
                    x % y
                } else {
                    x - y * (x / y).floor()
                }
            };
            TensorData::f32(a.shape().to_vec(), (0..x.len()).map(m).collect())
        }
    };
    let dtype = c.ty(c.input(0)?).dtype;
    Ok(vec![c.constant("", data, dtype)])
}

/// A constant shape operand as dimensions (non-negative).
fn dims(c: &NodeCtx, i: usize, what: &str) -> Result<Vec<usize>, ImportError> {
    let v = c
        .const_ints(i, what)?
        .ok_or_else(|| c.err(format!("the {what} input is required")))?;
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| c.err(format!("negative dimension {d} in {what} {v:?}")))
        })
        .collect()
}

fn shape_of(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape: Vec<i64> = c.ty(x).shape.iter().map(|&d| d as i64).collect();
    let rank = shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(c.attr_i("start", 0)?);
    let end = clamp(c.attr_i("end", rank)?).max(start);
    let part = shape[start..end].to_vec();
    Ok(vec![c.constant(
        "",
        TensorData::i64(vec![part.len()], part),
        DType::I64,
    )])
}

/// Reshape to `shape`, or nothing when the shape is unchanged.
fn reshape_to(c: &mut NodeCtx, x: NodeIndex, shape: Vec<usize>) -> Out {
    if c.ty(x).shape == shape {
        return Ok(vec![x]);
    }
    Ok(vec![c.add(Op::Reshape { shape }, &[x])?])
}

fn reshape(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let target = c
        .const_ints(1, "shape")?
        .ok_or_else(|| c.err("the shape input is required"))?;
    let input = c.ty(x).shape.clone();
    let allow_zero = c.attr_i("allowzero", 0)? != 0;
    let mut shape = Vec::with_capacity(target.len());
    let mut inferred = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if inferred.is_none() => {
                inferred = Some(i);
                1
            }
            0 if !allow_zero => *input.get(i).ok_or_else(|| {
                c.err(format!(
                    "shape {target:?} copies axis {i}, the input {input:?} has none"
                ))
            })?,
            d if d >= 0 => d as usize,
            _ => return Err(c.err(format!("invalid target shape {target:?}"))),
        });
    }
    let numel: usize = input.iter().product();
    if let Some(i) = inferred {
        let known: usize = shape.iter().product();
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(c.err(format!("cannot reshape {input:?} to {target:?}")));
        }
        shape[i] = numel / known;
    }
    reshape_to(c, x, shape)
}

fn flatten(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let rank = shape.len() as i64;
    let a = c.attr_i("axis", 1)?;
    let axis = if a < 0 { a + rank } else { a };
    if !(0..=rank).contains(&axis) {
        return Err(c.err(format!("axis {a} is out of range for rank {rank}")));
    }
    let axis = axis as usize;
    reshape_to(
        c,
        x,
        vec![
            shape[..axis].iter().product(),
            shape[axis..].iter().product(),
        ],
    )
}

fn squeeze_unsqueeze(c: &mut NodeCtx, insert: bool) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axes = if c.opset >= 13 {
        c.const_ints(1, "axes")?
    } else {
        c.attr_ints("axes")?
    };
    if insert {
        let axes = axes.ok_or_else(|| c.err("axes are required"))?;
        let rank = shape.len() + axes.len();
        let mut at = axes
            .iter()
            .map(|&a| c.axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?;
        at.sort_unstable();
        let mut dims = shape.into_iter();
        let out = (0..rank)
            .map(|i| {
                if at.contains(&i) {
                    1
                } else {
                    dims.next().unwrap_or(1)
                }
            })
            .collect();
        return reshape_to(c, x, out);
    }
    let drop: Vec<usize> = match axes {
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        Some(a) => a
            .iter()
            .map(|&a| c.axis(a, shape.len()))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if let Some(&bad) = drop.iter().find(|&&i| shape[i] != 1) {
        return Err(c.err(format!(
            "cannot squeeze axis {bad} of size {} in {shape:?}",
            shape[bad]
        )));
    }
    let out = shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, &d)| d)
        .collect();
    reshape_to(c, x, out)
}

fn transpose(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let rank = c.ty(x).shape.len();
    let perm = match c.attr_ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&a| c.axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == rank {
        return Ok(vec![x]);
    }
    Ok(vec![c.add(Op::Transpose { perm }, &[x])?])
}

fn concat(c: &mut NodeCtx) -> Out {
    let ins: Vec<NodeIndex> = (0..c.inputs.len())
        .map(|i| c.input(i))
        .collect::<Result<_, _>>()?;
    let first = *ins
        .first()
        .ok_or_else(|| c.err("needs at least one input"))?;
    let a = c
        .attr_opt_i("axis")?
        .ok_or_else(|| c.err("attribute `axis` is required"))?;
    let axis = c.axis(a, c.ty(first).shape.len())?;
    if ins.len() == 1 {
        return Ok(vec![first]);
    }
    Ok(vec![c.add(Op::Concat { axis }, &ins)?])
}

/// `Gather`. One constant index into a computed tensor picks one slice along the axis: a
/// `Slice` of width one and a `Reshape` dropping the axis (PyTorch's `qkv[0]` after
/// `nn.MultiheadAttention`'s packed projection), which kernels can read in place.
fn gather(c: &mut NodeCtx) -> Out {
    let (data, idx) = (c.input(0)?, c.input(1)?);
    let shape = c.ty(data).shape.clone();
    let axis = c.axis(c.attr_i("axis", 0)?, shape.len())?;
    let one_index = !c.is_const(0) && c.is_const(1) && c.ty(idx).shape.is_empty();
    let index = if one_index {
        c.const_ints(1, "indices")?
    } else {
        None
    };
    if let Some(&[i]) = index.as_deref() {
        let dim = shape[axis] as i64;
        if !(-dim..dim).contains(&i) {
            return Err(c.err(format!(
                "index {i} is out of range for axis {axis} of {shape:?}"
            )));
        }
        let at = i.rem_euclid(dim) as usize;
        let one = Op::Slice {
            axes: vec![axis],
            starts: vec![at],
            ends: vec![at + 1],
            steps: vec![1],
        };
        let picked = c.add_tmp("slice", one, &[data])?;
        let mut out = shape;
        out.remove(axis);
        return Ok(vec![c.add(Op::Reshape { shape: out }, &[picked])?]);
    }
    Ok(vec![c.add(Op::Gather { axis }, &[data, idx])?])
}

/// Clamps an ONNX slice bound (negative counts from the end) to `0..=dim`.
fn clamp_bound(v: i64, dim: usize) -> usize {
    let v = if v < 0 {
        v.saturating_add(dim as i64)
    } else {
        v
    };
    v.clamp(0, dim as i64) as usize
}

fn slice(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let (starts, ends, axes, steps) = if c.opset >= 10 {
        let req = |c: &NodeCtx, i, what| {
            c.const_ints(i, what)?
                .ok_or_else(|| c.err(format!("the {what} input is required")))
        };
        (
            req(c, 1, "starts")?,
            req(c, 2, "ends")?,
            c.const_ints(3, "axes")?,
            c.const_ints(4, "steps")?,
        )
    } else {
        let req = |c: &NodeCtx, what| {
            c.attr_ints(what)?
                .ok_or_else(|| c.err(format!("attribute `{what}` is required")))
        };
        (
            req(c, "starts")?,
            req(c, "ends")?,
            c.attr_ints("axes")?,
            None,
        )
    };
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(c.err("starts, ends, axes and steps differ in length"));
    }
    let mut op_axes = Vec::with_capacity(n);
    let (mut s, mut e, mut st) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let axis = c.axis(axes[i], shape.len())?;
        if steps[i] <= 0 {
            return Err(c.err(format!(
                "step {} on axis {axis} is not supported (only positive steps)",
                steps[i]
            )));
        }
        let dim = shape[axis];
        op_axes.push(axis);
        s.push(clamp_bound(starts[i], dim));
        e.push(clamp_bound(ends[i], dim));
        st.push(steps[i] as usize);
    }
    let whole = (0..n).all(|i| s[i] == 0 && e[i] == shape[op_axes[i]] && st[i] == 1);
    if whole {
        return Ok(vec![x]);
    }
    Ok(vec![c.add(
        Op::Slice {
            axes: op_axes,
            starts: s,
            ends: e,
            steps: st,
        },
        &[x],
    )?])
}

fn split(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axis = c.axis(c.attr_i("axis", 0)?, shape.len())?;
    let dim = shape[axis];
    let given = if c.opset >= 13 {
        c.const_ints(1, "split")?
    } else {
        c.attr_ints("split")?
    };
    let sizes: Vec<usize> = match given {
        Some(v) => v
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| c.err(format!("negative split size in {v:?}")))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let parts = match c.attr_opt_i("num_outputs")? {
                Some(k) => usize::try_from(k).map_err(|_| c.err("num_outputs must be positive"))?,
                None => c.node.output.len(),
            };
            let chunk = dim.div_ceil(parts.max(1));
            (0..parts)
                .map(|k| chunk.min(dim.saturating_sub(k * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != dim {
        return Err(c.err(format!(
            "split sizes {sizes:?} do not add up to axis {axis} of size {dim}"
        )));
    }
    let mut outs = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for (k, &size) in sizes.iter().enumerate() {
        let name = c.output_name(k);
        let op = Op::Slice {
            axes: vec![axis],
            starts: vec![at],
            ends: vec![at + size],
            steps: vec![1],
        };
        outs.push(c.add_as(&name, op, &[x])?);
        at += size;
    }
    Ok(outs)
}

fn expand(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let target = dims(c, 1, "shape")?;
    let input = c.ty(x).shape.clone();
    let shape = broadcast_shapes(&[&input, &target])
        .ok_or_else(|| c.err(format!("cannot broadcast {input:?} with {target:?}")))?;
    if shape == input {
        return Ok(vec![x]);
    }
    Ok(vec![c.add(Op::Expand { shape }, &[x])?])
}
