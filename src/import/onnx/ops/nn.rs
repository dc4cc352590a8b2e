//! Neural-network ONNX ops: softmax, reductions, normalizations, convolution and pooling.

use petgraph::graph::NodeIndex;

use super::OpTable;
use crate::graph::{Op, ReduceOp};
use crate::import::onnx::NodeCtx;
use crate::import::ImportError;

type Out = Result<Vec<NodeIndex>, ImportError>;

/// Registers the neural-network ops.
pub fn register(t: &mut OpTable) {
    t.insert("Softmax", softmax);
    t.insert("ReduceSum", |c| reduce(c, ReduceOp::Sum));
    t.insert("ReduceMean", |c| reduce(c, ReduceOp::Mean));
    t.insert("ReduceMax", |c| reduce(c, ReduceOp::Max));
    t.insert("ReduceMin", |c| reduce(c, ReduceOp::Min));
    t.insert("LayerNormalization", layer_norm);
    t.insert("BatchNormalization", batch_norm);
    t.insert("Conv", conv);
    t.insert("MaxPool", |c| pool(c, ReduceOp::Max));
    t.insert("AveragePool", |c| pool(c, ReduceOp::Mean));
    t.insert("GlobalAveragePool", |c| global_pool(c, ReduceOp::Mean));
    t.insert("GlobalMaxPool", |c| global_pool(c, ReduceOp::Max));
}

/// Softmax; before opset 13 the input is coerced to 2-D at `axis` (default 1).
fn softmax(c: &mut NodeCtx) -> Out {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let rank = shape.len();
    let legacy = c.opset < 13;
    let axis = c.axis(c.attr_i("axis", if legacy { 1 } else { -1 })?, rank)?;
    if !legacy || axis + 1 == rank {
        return Ok(vec![c.add(Op::Softmax { axis }, &[x])?]);
    }
    let flat = vec![
        shape[..axis].iter().product(),
        shape[axis..].iter().product(),
    ];
    let x2 = c.add_tmp("flatten", Op::Reshape { shape: flat }, &[x])?;
    let s = c.add_tmp("softmax", Op::Softmax { axis: 1 }, &[x2])?;
    Ok(vec![c.add(Op::Reshape { shape }, &[s])?])
}

/// The axes and `keepdims` of a reduce node: `None` axes for a no-op (empty axes with
/// `noop_with_empty_axes`). Axes are an attribute before opset 13 (ReduceSum) or 18 (the
/// other reductions), an input from then on.
pub(super) fn reduce_axes(
    c: &NodeCtx,
    sum_like: bool,
) -> Result<(Option<Vec<usize>>, bool), ImportError> {
    let x = c.input(0)?;
    let rank = c.ty(x).shape.len();
    let axes_as_input = c.opset >= if sum_like { 13 } else { 18 };
    let axes = if axes_as_input {
        c.const_ints(1, "axes")?
    } else {
        c.attr_ints("axes")?
    };
    let keep_dims = c.attr_i("keepdims", 1)? != 0;
    let mut axes = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&a| c.axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?,
        _ if c.attr_i("noop_with_empty_axes", 0)? != 0 => return Ok((None, keep_dims)),
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    Ok((Some(axes), keep_dims))
}

fn reduce(c: &mut NodeCtx, kind: ReduceOp) -> Out {
    let x = c.input(0)?;
    let (Some(axes), keep_dims) = reduce_axes(c, kind == ReduceOp::Sum)? else {
        return Ok(vec![x]);
    };
    Ok(vec![c.add(
        Op::Reduce {
            op: kind,
            axes,
            keep_dims,
        },
        &[x],
    )?])
}

/// LayerNormalization over the axes from `axis` on (flattened to one axis when several).
fn layer_norm(c: &mut NodeCtx) -> Out {
    let (x, scale) = (c.input(0)?, c.input(1)?);
    let bias = c.opt_input(2);
    let eps = c.attr_f("epsilon", 1e-5)?;
    let shape = c.ty(x).shape.clone();
    let axis = c.axis(c.attr_i("axis", -1)?, shape.len())?;
    let mut params = vec![scale];
    params.extend(bias);
    if axis + 1 == shape.len() {
        let mut ins = vec![x];
        ins.extend(params);
        return Ok(vec![c.add(Op::LayerNorm { eps }, &ins)?]);
    }
    let inner: usize = shape[axis..].iter().product();
    let mut flat = shape[..axis].to_vec();
    flat.push(inner);
    let mut ins = vec![c.add_tmp("flatten", Op::Reshape { shape: flat }, &[x])?];
    for (k, p) in params.into_iter().enumerate() {
        ins.push(c.add_tmp(
            &format!("param{k}"),
            Op::Reshape { shape: vec![inner] },
            &[p],
        )?);
    }
    let y = c.add_tmp("norm", Op::LayerNorm { eps }, &ins)?;
    Ok(vec![c.add(Op::Reshape { shape }, &[y])?])
}

fn batch_norm(c: &mut NodeCtx) -> Out {
    if c.attr_i("training_mode", 0)? != 0 {
        return Err(
            c.err("training-mode batch norm is not supported; export the model in eval mode")
        );
    }
    let ins = [
        c.input(0)?,
        c.input(1)?,
        c.input(2)?,
        c.input(3)?,
        c.input(4)?,
    ];
    let eps = c.attr_f("epsilon", 1e-5)?;
    Ok(vec![c.add(Op::BatchNorm { eps }, &ins)?])
}

/// Two integers from an attribute list, or a default.
fn pair(c: &NodeCtx, name: &str, default: usize) -> Result<[usize; 2], ImportError> {
    match c.attr_ints(name)? {
        None => Ok([default; 2]),
        Some(v) => match v.as_slice() {
            [a, b] if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
            _ => Err(c.err(format!(
                "attribute `{name}` must hold 2 non-negative values for 2-D, got {v:?}"
            ))),
        },
    }
}

/// Padding (top, left, bottom, right) from `pads` or `auto_pad`.
fn pads(
    c: &NodeCtx,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dil: [usize; 2],
) -> Result<[usize; 4], ImportError> {
    let mode = c.attr_s("auto_pad", "NOTSET")?;
    match mode.as_str() {
        "NOTSET" => match c.attr_ints("pads")? {
            None => Ok([0; 4]),
            Some(v) if v.len() == 4 && v.iter().all(|&p| p >= 0) => {
                Ok([v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize])
            }
            Some(v) => Err(c.err(format!(
                "attribute `pads` must hold 4 non-negative values for 2-D, got {v:?}"
            ))),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0; 4];
            for i in 0..2 {
                let out = input[i].div_ceil(stride[i].max(1));
                let span = (kernel[i].max(1) - 1) * dil[i] + 1;
                let total = ((out.max(1) - 1) * stride[i] + span).saturating_sub(input[i]);
                let small = total / 2;
                let (begin, end) = if mode == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                p[i] = begin;
                p[i + 2] = end;
            }
            Ok(p)
        }
        other => Err(c.err(format!("unknown auto_pad `{other}`"))),
    }
}

fn conv(c: &mut NodeCtx) -> Out {
    let (x, w) = (c.input(0)?, c.input(1)?);
    let (xs, ws) = (c.ty(x).shape.clone(), c.ty(w).shape.clone());
    if xs.len() != 4 || ws.len() != 4 {
        return Err(c.err(format!(
            "only 2-D convolution (NCHW input, OIHW weights) is supported, got {xs:?} and {ws:?}"
        )));
    }
    let kernel =
        pair(c, "kernel_shape", 0).map(|k| if k == [0, 0] { [ws[2], ws[3]] } else { k })?;
    let stride = pair(c, "strides", 1)?;
    let dilation = pair(c, "dilations", 1)?;
    let groups = usize::try_from(c.attr_i("group", 1)?)
        .map_err(|_| c.err("attribute `group` must be positive"))?;
    let pads = pads(c, [xs[2], xs[3]], kernel, stride, dilation)?;
    let mut ins = vec![x, w];
    ins.extend(c.opt_input(2));
    Ok(vec![c.add(
        Op::Conv {
            kernel,
            stride,
            pads,
            dilation,
            groups,
            relu: false,
            pixels: None,
        },
        &ins,
    )?])
}

fn pool(c: &mut NodeCtx, kind: ReduceOp) -> Out {
    let x = c.input(0)?;
    let xs = c.ty(x).shape.clone();
    if xs.len() != 4 {
        return Err(c.err(format!(
            "only 2-D pooling (NCHW input) is supported, got {xs:?}"
        )));
    }
    if c.attr_ints("kernel_shape")?.is_none() {
        return Err(c.err("attribute `kernel_shape` is required"));
    }
    let kernel = pair(c, "kernel_shape", 1)?;
    let stride = pair(c, "strides", 1)?;
    if pair(c, "dilations", 1)? != [1, 1] {
        return Err(c.err("dilated pooling is not supported"));
    }
    let pads = pads(c, [xs[2], xs[3]], kernel, stride, [1, 1])?;
    if c.attr_i("ceil_mode", 0)? != 0 {
        let exact = (0..2).all(|i| {
            (xs[2 + i] + pads[i] + pads[i + 2]).saturating_sub(kernel[i]) % stride[i].max(1) == 0
        });
        if !exact {
            return Err(c.err("ceil_mode=1 with a partial last window is not supported"));
        }
    }
    let count_include_pad = c.attr_i("count_include_pad", 0)? != 0;
    Ok(vec![c.add(
        Op::Pool {
            op: kind,
            kernel,
            stride,
            pads,
            count_include_pad,
        },
        &[x],
    )?])
}

fn global_pool(c: &mut NodeCtx, kind: ReduceOp) -> Out {
    let x = c.input(0)?;
    let rank = c.ty(x).shape.len();
    if rank < 3 {
        return Err(c.err(format!("input of rank {rank} has no spatial axes")));
    }
    Ok(vec![c.add(
        Op::Reduce {
            op: kind,
            axes: (2..rank).collect(),
            keep_dims: true,
        },
        &[x],
    )?])
}
