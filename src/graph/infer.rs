//! Shape and dtype inference: the [`TensorType`] an [`Op`] produces from its input types.
//!
//! Importers call [`infer`] for every node they add, so every node of a [`Graph`](super::Graph)
//! has a static type; the optimizer calls it to type rewritten nodes.

use thiserror::Error;

use super::op::{DType, Op};
use super::TensorType;

/// Why an op cannot be applied to the given input types.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The op got the wrong number of inputs.
    #[error("{op} takes {expected} input(s), got {got}")]
    Arity {
        /// The op name.
        op: String,
        /// The accepted count, e.g. `2` or `2 or 3`.
        expected: String,
        /// The count given.
        got: usize,
    },
    /// The input shapes or attributes do not fit the op.
    #[error("{op}: {reason}")]
    Invalid {
        /// The op name.
        op: String,
        /// What is wrong, with the shapes involved.
        reason: String,
    },
}

fn invalid(op: &Op, reason: impl Into<String>) -> ShapeError {
    ShapeError::Invalid {
        op: op.name(),
        reason: reason.into(),
    }
}

fn arity(op: &Op, inputs: &[&TensorType], min: usize, max: usize) -> Result<(), ShapeError> {
    if inputs.len() < min || inputs.len() > max {
        let expected = if min == max {
            min.to_string()
        } else {
            format!("{min} to {max}")
        };
        return Err(ShapeError::Arity {
            op: op.name(),
            expected,
            got: inputs.len(),
        });
    }
    Ok(())
}

/// The NumPy broadcast of several shapes, or `None` if they are incompatible.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let offset = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[offset + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// The output shape of NumPy `matmul` on shapes `a` and `b`, or `None` if they do not fit.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return None;
    }
    let mut out = broadcast_shapes(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Some(out)
}

/// Output length of a sliding window (convolution or pooling) along one axis.
pub fn window_len(
    size: usize,
    pad: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation.checked_mul(kernel.checked_sub(1)?)? + 1;
    let padded = size + pad;
    if stride == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

fn same_dtype(op: &Op, inputs: &[&TensorType]) -> Result<DType, ShapeError> {
    let d = inputs[0].dtype;
    if let Some(other) = inputs.iter().find(|t| t.dtype != d) {
        return Err(invalid(
            op,
            format!("input dtypes differ ({d:?} and {:?})", other.dtype),
        ));
    }
    Ok(d)
}

fn check_axis(op: &Op, axis: usize, rank: usize) -> Result<(), ShapeError> {
    if axis >= rank {
        return Err(invalid(
            op,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(())
}

fn broadcast_all(op: &Op, inputs: &[&TensorType]) -> Result<Vec<usize>, ShapeError> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    broadcast_shapes(&shapes)
        .ok_or_else(|| invalid(op, format!("shapes {shapes:?} do not broadcast together")))
}

/// The type `op` produces from `inputs` (in slot order).
///
/// `Op::Input` has no inputs to infer from and is an error; its type comes from the model.
pub fn infer(op: &Op, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    match op {
        Op::Input => Err(invalid(
            op,
            "a graph input's type comes from the model, not from inference",
        )),
        Op::Constant(data) => {
            arity(op, inputs, 0, 0)?;
            Ok(TensorType::new(data.shape().to_vec(), data.dtype()))
        }
        Op::Unary(_) | Op::Clip { .. } | Op::LeakyRelu { .. } | Op::HardSigmoid { .. } => {
            arity(op, inputs, 1, 1)?;
            Ok(inputs[0].clone())
        }
        Op::Binary(b) => {
            arity(op, inputs, 2, 2)?;
            if *b != super::BinaryOp::Pow {
                same_dtype(op, inputs)?;
            }
            Ok(TensorType::new(broadcast_all(op, inputs)?, inputs[0].dtype))
        }
        Op::Equal => {
            arity(op, inputs, 2, 2)?;
            Ok(TensorType::new(broadcast_all(op, inputs)?, DType::Bool))
        }
        Op::Where => {
            arity(op, inputs, 3, 3)?;
            same_dtype(op, &inputs[1..])?;
            Ok(TensorType::new(broadcast_all(op, inputs)?, inputs[1].dtype))
        }
        Op::MatMul => {
            arity(op, inputs, 2, 2)?;
            let dtype = same_dtype(op, inputs)?;
            let shape = matmul_shape(&inputs[0].shape, &inputs[1].shape).ok_or_else(|| {
                invalid(
                    op,
                    format!(
                        "shapes {:?} and {:?} do not multiply",
                        inputs[0].shape, inputs[1].shape
                    ),
                )
            })?;
            Ok(TensorType::new(shape, dtype))
        }
        Op::Transpose { perm } => {
            arity(op, inputs, 1, 1)?;
            let rank = inputs[0].shape.len();
            let mut seen = vec![false; rank];
            for &p in perm {
                if p >= rank || std::mem::replace(&mut seen[p], true) {
                    return Err(invalid(
                        op,
                        format!("perm {perm:?} is not a permutation of rank {rank}"),
                    ));
                }
            }
            if perm.len() != rank {
                return Err(invalid(
                    op,
                    format!("perm {perm:?} is not a permutation of rank {rank}"),
                ));
            }
            let shape = perm.iter().map(|&p| inputs[0].shape[p]).collect();
            Ok(TensorType::new(shape, inputs[0].dtype))
        }
        Op::Reshape { shape } => {
            arity(op, inputs, 1, 1)?;
            if shape.iter().product::<usize>() != inputs[0].numel() {
                return Err(invalid(
                    op,
                    format!(
                        "cannot reshape {:?} ({} elements) to {shape:?}",
                        inputs[0].shape,
                        inputs[0].numel()
                    ),
                ));
            }
            Ok(TensorType::new(shape.clone(), inputs[0].dtype))
        }
        Op::Expand { shape } => {
            arity(op, inputs, 1, 1)?;
            match broadcast_shapes(&[&inputs[0].shape, shape]) {
                Some(b) if &b == shape => Ok(TensorType::new(shape.clone(), inputs[0].dtype)),
                _ => Err(invalid(
                    op,
                    format!("cannot broadcast {:?} to {shape:?}", inputs[0].shape),
                )),
            }
        }
        Op::Reduce {
            axes, keep_dims, ..
        } => {
            arity(op, inputs, 1, 1)?;
            let rank = inputs[0].shape.len();
            if axes.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(
                    op,
                    format!("axes {axes:?} must be sorted and distinct"),
                ));
            }
            for &a in axes {
                check_axis(op, a, rank)?;
            }
            let mut shape = Vec::with_capacity(rank);
            for (i, &d) in inputs[0].shape.iter().enumerate() {
                if !axes.contains(&i) {
                    shape.push(d);
                } else if *keep_dims {
                    shape.push(1);
                }
            }
            Ok(TensorType::new(shape, inputs[0].dtype))
        }
        Op::Attention { .. } | Op::Mlp { .. } => super::composite::infer_chain(op, inputs),
        Op::Softmax { axis } => {
            arity(op, inputs, 1, 1)?;
            check_axis(op, *axis, inputs[0].shape.len())?;
            Ok(inputs[0].clone())
        }
        Op::LayerNorm { .. } | Op::RmsNorm { .. } => {
            let max = if matches!(op, Op::LayerNorm { .. }) {
                3
            } else {
                2
            };
            arity(op, inputs, 2, max)?;
            let x = inputs[0];
            let last = *x
                .shape
                .last()
                .ok_or_else(|| invalid(op, "input is a scalar"))?;
            for p in &inputs[1..] {
                if p.numel() != last || p.shape.last() != Some(&last) {
                    return Err(invalid(
                        op,
                        format!(
                            "parameter shape {:?} must hold the last axis ({last}) of {:?}",
                            p.shape, x.shape
                        ),
                    ));
                }
            }
            Ok(x.clone())
        }
        Op::Cast { to } => {
            arity(op, inputs, 1, 1)?;
            Ok(TensorType::new(inputs[0].shape.clone(), *to))
        }
        Op::Concat { axis } => {
            arity(op, inputs, 1, usize::MAX)?;
            let first = &inputs[0].shape;
            check_axis(op, *axis, first.len())?;
            let dtype = same_dtype(op, inputs)?;
            let mut total = 0;
            for t in inputs {
                let fits = t.shape.len() == first.len()
                    && t.shape
                        .iter()
                        .zip(first)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !fits {
                    return Err(invalid(
                        op,
                        format!("shapes {first:?} and {:?} differ off axis {axis}", t.shape),
                    ));
                }
                total += t.shape[*axis];
            }
            let mut shape = first.clone();
            shape[*axis] = total;
            Ok(TensorType::new(shape, dtype))
        }
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => {
            arity(op, inputs, 1, 1)?;
            let n = axes.len();
            if starts.len() != n || ends.len() != n || steps.len() != n {
                return Err(invalid(op, "axes, starts, ends and steps differ in length"));
            }
            let mut shape = inputs[0].shape.clone();
            for i in 0..n {
                check_axis(op, axes[i], shape.len())?;
                let dim = inputs[0].shape[axes[i]];
                if steps[i] == 0 || starts[i] > dim || ends[i] > dim {
                    return Err(invalid(
                        op,
                        format!(
                            "range {}..{} step {} outside 0..{dim}",
                            starts[i], ends[i], steps[i]
                        ),
                    ));
                }
                shape[axes[i]] = ends[i].saturating_sub(starts[i]).div_ceil(steps[i]);
            }
            Ok(TensorType::new(shape, inputs[0].dtype))
        }
        Op::Gather { axis } => {
            arity(op, inputs, 2, 2)?;
            let (data, idx) = (inputs[0], inputs[1]);
            check_axis(op, *axis, data.shape.len())?;
            if idx.dtype.is_float() {
                return Err(invalid(
                    op,
                    format!("indices must be integers, got {:?}", idx.dtype),
                ));
            }
            let mut shape = data.shape[..*axis].to_vec();
            shape.extend_from_slice(&idx.shape);
            shape.extend_from_slice(&data.shape[axis + 1..]);
            Ok(TensorType::new(shape, data.dtype))
        }
        Op::Conv {
            kernel,
            stride,
            pads,
            dilation,
            groups,
            pixels,
            ..
        } => {
            arity(op, inputs, 2, 3)?;
            let (given, w) = (&inputs[0].shape, &inputs[1].shape);
            // The NCHW shape of the input images.
            let x = match (pixels, given.as_slice()) {
                (None, [_, _, _, _]) => given.clone(),
                (Some([n, h, wd]), &[p, c]) if p == n * h * wd => vec![*n, c, *h, *wd],
                (Some([n, h, wd]), _) => {
                    return Err(invalid(
                        op,
                        format!(
                            "expects a [{n} * {h} * {wd}, channels] pixel matrix, got {given:?}"
                        ),
                    ))
                }
                (None, _) => {
                    return Err(invalid(
                        op,
                        format!("expects NCHW input and OIHW weights, got {given:?} and {w:?}"),
                    ))
                }
            };
            if w.len() != 4 {
                return Err(invalid(op, format!("expects OIHW weights, got {w:?}")));
            }
            let g = *groups;
            if g == 0
                || x[1] % g != 0
                || w[0] % g != 0
                || w[1] * g != x[1]
                || [w[2], w[3]] != *kernel
            {
                return Err(invalid(
                    op,
                    format!(
                        "weights {w:?} do not fit input {x:?} with {g} group(s), kernel {kernel:?}"
                    ),
                ));
            }
            if let Some(b) = inputs.get(2) {
                if b.shape != [w[0]] {
                    return Err(invalid(
                        op,
                        format!("bias shape {:?} must be [{}]", b.shape, w[0]),
                    ));
                }
            }
            let h = window_len(x[2], pads[0] + pads[2], kernel[0], stride[0], dilation[0]);
            let wd = window_len(x[3], pads[1] + pads[3], kernel[1], stride[1], dilation[1]);
            match (h, wd) {
                (Some(h), Some(wd)) => {
                    let shape = match pixels {
                        Some(_) => vec![x[0] * h * wd, w[0]],
                        None => vec![x[0], w[0], h, wd],
                    };
                    Ok(TensorType::new(shape, inputs[0].dtype))
                }
                _ => Err(invalid(
                    op,
                    format!("kernel {kernel:?} does not fit input {x:?} with pads {pads:?}"),
                )),
            }
        }
        Op::Im2Col {
            image: [n, h, w],
            kernel,
            stride,
            pads,
            dilation,
        } => {
            arity(op, inputs, 1, 1)?;
            let x = &inputs[0].shape;
            if x.len() != 2 || x[0] != n * h * w {
                return Err(invalid(
                    op,
                    format!("expects a [{n} * {h} * {w}, channels] pixel matrix, got {x:?}"),
                ));
            }
            let oh = window_len(*h, pads[0] + pads[2], kernel[0], stride[0], dilation[0]);
            let ow = window_len(*w, pads[1] + pads[3], kernel[1], stride[1], dilation[1]);
            match (oh, ow) {
                (Some(oh), Some(ow)) => Ok(TensorType::new(
                    vec![n * oh * ow, kernel[0] * kernel[1] * x[1]],
                    inputs[0].dtype,
                )),
                _ => Err(invalid(
                    op,
                    format!("kernel {kernel:?} does not fit a {h}x{w} image with pads {pads:?}"),
                )),
            }
        }
        Op::BatchNorm { .. } => {
            arity(op, inputs, 5, 5)?;
            let x = &inputs[0].shape;
            if x.len() < 2 {
                return Err(invalid(op, format!("input {x:?} has no channel axis")));
            }
            for p in &inputs[1..] {
                if p.shape != [x[1]] {
                    return Err(invalid(
                        op,
                        format!("parameter shape {:?} must be [{}]", p.shape, x[1]),
                    ));
                }
            }
            Ok(inputs[0].clone())
        }
        Op::Pool {
            kernel,
            stride,
            pads,
            ..
        } => {
            arity(op, inputs, 1, 1)?;
            let x = &inputs[0].shape;
            if x.len() != 4 {
                return Err(invalid(op, format!("expects an NCHW input, got {x:?}")));
            }
            let h = window_len(x[2], pads[0] + pads[2], kernel[0], stride[0], 1);
            let w = window_len(x[3], pads[1] + pads[3], kernel[1], stride[1], 1);
            match (h, w) {
                (Some(h), Some(w)) => Ok(TensorType::new(vec![x[0], x[1], h, w], inputs[0].dtype)),
                _ => Err(invalid(
                    op,
                    format!("window {kernel:?} does not fit input {x:?} with pads {pads:?}"),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{BinaryOp, ReduceOp};

    fn f(shape: &[usize]) -> TensorType {
        TensorType::new(shape.to_vec(), DType::F32)
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes(&[&[4, 1, 3], &[5, 1]]),
            Some(vec![4, 5, 3])
        );
        assert_eq!(broadcast_shapes(&[&[2, 3], &[3, 3]]), None);
        assert_eq!(broadcast_shapes(&[&[], &[7]]), Some(vec![7]));
    }

    #[test]
    fn matmul_handles_batches_and_vectors() {
        assert_eq!(
            matmul_shape(&[2, 1, 4, 8], &[3, 8, 5]),
            Some(vec![2, 3, 4, 5])
        );
        assert_eq!(matmul_shape(&[8], &[8, 5]), Some(vec![5]));
        assert_eq!(matmul_shape(&[4, 8], &[8]), Some(vec![4]));
        assert_eq!(matmul_shape(&[4, 8], &[7, 5]), None);
    }

    #[test]
    fn binary_rejects_mismatched_shapes() {
        let err = infer(&Op::Binary(BinaryOp::Add), &[&f(&[2, 3]), &f(&[4, 3])]).unwrap_err();
        assert!(err.to_string().contains("do not broadcast"), "{err}");
    }

    #[test]
    fn reduce_keeps_or_drops_axes() {
        let op = Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![1],
            keep_dims: true,
        };
        assert_eq!(infer(&op, &[&f(&[4, 6])]).unwrap().shape, vec![4, 1]);
        let op = Op::Reduce {
            op: ReduceOp::Max,
            axes: vec![0, 1],
            keep_dims: false,
        };
        assert_eq!(
            infer(&op, &[&f(&[4, 6])]).unwrap().shape,
            Vec::<usize>::new()
        );
    }

    /// A 3x3 convolution with stride 2 and padding 1, of NCHW or pixel-major images.
    fn conv3x3_stride2(pixels: Option<[usize; 3]>) -> Op {
        Op::Conv {
            kernel: [3, 3],
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            dilation: [1, 1],
            groups: 1,
            relu: false,
            pixels,
        }
    }

    #[test]
    fn a_pixel_major_convolution_maps_pixel_matrices() {
        let conv = conv3x3_stride2;
        // Two 32x32 images of 64 channels: 2048 pixel rows in, 2 * 16 * 16 out.
        let t = infer(
            &conv(Some([2, 32, 32])),
            &[&f(&[2048, 64]), &f(&[8, 64, 3, 3])],
        );
        assert_eq!(t.unwrap().shape, vec![512, 8]);
        let wrong_rows = infer(
            &conv(Some([2, 32, 32])),
            &[&f(&[1024, 64]), &f(&[8, 64, 3, 3])],
        );
        assert!(wrong_rows.unwrap_err().to_string().contains("pixel matrix"));
        let wrong_channels = infer(
            &conv(Some([2, 32, 32])),
            &[&f(&[2048, 32]), &f(&[8, 64, 3, 3])],
        );
        assert!(wrong_channels.is_err());
    }

    #[test]
    fn conv_and_pool_windows() {
        let conv = conv3x3_stride2(None);
        let t = infer(&conv, &[&f(&[1, 3, 32, 32]), &f(&[8, 3, 3, 3])]).unwrap();
        assert_eq!(t.shape, vec![1, 8, 16, 16]);
        let pool = Op::Pool {
            op: ReduceOp::Max,
            kernel: [2, 2],
            stride: [2, 2],
            pads: [0; 4],
            count_include_pad: false,
        };
        assert_eq!(
            infer(&pool, &[&f(&[1, 8, 16, 16])]).unwrap().shape,
            vec![1, 8, 8, 8]
        );
    }

    #[test]
    fn slice_and_gather_shapes() {
        let op = Op::Slice {
            axes: vec![1],
            starts: vec![1],
            ends: vec![8],
            steps: vec![3],
        };
        assert_eq!(infer(&op, &[&f(&[2, 8])]).unwrap().shape, vec![2, 3]);
        let idx = TensorType::new(vec![5], DType::I64);
        assert_eq!(
            infer(&Op::Gather { axis: 0 }, &[&f(&[10, 4]), &idx])
                .unwrap()
                .shape,
            vec![5, 4]
        );
    }

    #[test]
    fn arity_is_checked() {
        let err = infer(&Op::MatMul, &[&f(&[2, 2])]).unwrap_err();
        assert_eq!(
            err,
            ShapeError::Arity {
                op: "MatMul".into(),
                expected: "2".into(),
                got: 1
            }
        );
    }
}
