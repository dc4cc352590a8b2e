//! NCHW image kernels: convolution, batch norm, pooling; and the im2col matrix of pixel-major
//! images.

use super::layout::transpose_matrices;
use super::{op_error, RefError};
use crate::graph::infer::window_len;
use crate::graph::{Op, ReduceOp, TensorData, TensorType};

/// 2-D grouped, dilated convolution of NCHW `x` with OIHW `w` and optional bias.
pub fn conv(
    op: &Op,
    inputs: &[&TensorData],
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let (x, w) = match inputs {
        [x, w, ..] => (*x, *w),
        _ => {
            return Err(op_error(
                op,
                format!("takes 2 or 3 inputs, got {}", inputs.len()),
            ))
        }
    };
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv) = (x.to_f32(), w.to_f32());
    let bias = inputs.get(2).map(|b| b.to_f32());
    let [n, c, h, wd] = [xs[0], xs[1], xs[2], xs[3]];
    let [o, cg, kh, kw] = [ws[0], ws[1], ws[2], ws[3]];
    let [oh, ow] = [out.shape[2], out.shape[3]];
    let og = o / groups;
    // A fused ReLU as the reference's elementwise ReLU computes it (`max(v, 0)`).
    let relu = matches!(op, Op::Conv { relu: true, .. });
    let activate = |v: f32| if relu { v.max(0.0) } else { v };
    let mut result = Vec::with_capacity(out.numel());
    // Each output plane accumulates, per (input channel, ky, kx), one weight times a shifted
    // window of the input plane: the same sum in the same order as output by output, with
    // the bounds worked out per row and column range instead of per element.
    let mut plane = vec![0f64; oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            plane.fill(bias.as_ref().map_or(0.0, |bv| bv[oc] as f64));
            for ic in 0..cg {
                let ch = g * cg + ic;
                let xplane = &xv[(b * c + ch) * h * wd..][..h * wd];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wt = wv[((oc * cg + ic) * kh + ky) * kw + kx] as f64;
                        let (lo, hi) = valid_outputs(kx * dilation[1], pads[1], stride[1], wd, ow);
                        if lo >= hi {
                            continue;
                        }
                        let ix0 = lo * stride[1] + kx * dilation[1] - pads[1];
                        for oy in 0..oh {
                            let Some(iy) = (oy * stride[0] + ky * dilation[0])
                                .checked_sub(pads[0])
                                .filter(|&y| y < h)
                            else {
                                continue;
                            };
                            let row = xplane[iy * wd + ix0..(iy + 1) * wd]
                                .iter()
                                .step_by(stride[1]);
                            for (acc, &x) in plane[oy * ow + lo..oy * ow + hi].iter_mut().zip(row) {
                                *acc += x as f64 * wt;
                            }
                        }
                    }
                }
            }
            result.extend(plane.iter().map(|&v| activate(v as f32)));
        }
    }
    Ok(TensorData::f32(out.shape.clone(), result))
}

/// The output positions `lo..hi` (of `outs`) whose input position `o * stride + offset - pad`
/// falls inside `0..size`.
fn valid_outputs(
    offset: usize,
    pad: usize,
    stride: usize,
    size: usize,
    outs: usize,
) -> (usize, usize) {
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = (size + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(outs);
    (lo, hi)
}

/// A convolution of pixel-major images ([`Op::Conv`] with `pixels`): the NCHW convolution of
/// the images `[n, h, w]` the input matrix holds, its result again pixel-major.
pub fn conv_pixels(
    op: &Op,
    inputs: &[&TensorData],
    [n, h, w]: [usize; 3],
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let Op::Conv {
        kernel,
        stride,
        pads,
        dilation,
        groups,
        ..
    } = op
    else {
        return Err(op_error(op, "is not a convolution"));
    };
    let [x, rest @ ..] = inputs else {
        return Err(op_error(op, "takes 2 or 3 inputs, got none"));
    };
    let c = x.shape()[1];
    let o = out.shape[1];
    let images = TensorData::f32(vec![n, c, h, w], transpose_matrices(&x.to_f32(), h * w, c));
    let mut args = vec![&images];
    args.extend(rest.iter().copied());
    let window = |i: usize, size: usize| {
        window_len(
            size,
            pads[i] + pads[i + 2],
            kernel[i],
            stride[i],
            dilation[i],
        )
        .unwrap_or(0)
    };
    let (oh, ow) = (window(0, h), window(1, w));
    let nchw = TensorType::new(vec![n, o, oh, ow], out.dtype);
    let y = conv(op, &args, *stride, *pads, *dilation, *groups, &nchw)?;
    Ok(TensorData::f32(
        out.shape.clone(),
        transpose_matrices(&y.to_f32(), o, oh * ow),
    ))
}

/// The im2col matrix of pixel-major `x` (`[n * h * w, c]`, see [`Op::Im2Col`]).
pub fn im2col(
    x: &TensorData,
    [n, h, w]: [usize; 3],
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    out: &TensorType,
) -> TensorData {
    let xv = x.to_f32();
    let c = x.shape()[1];
    let ow = window_len(w, pads[1] + pads[3], kw, stride[1], dilation[1]).unwrap_or(0);
    let oh = out.shape[0] / (n * ow).max(1);
    let cols = kh * kw * c;
    let mut result = vec![0.0f32; out.numel()];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut result[((b * oh + oy) * ow + ox) * cols..][..cols];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * stride[0] + ky * dilation[0]).checked_sub(pads[0]);
                        let ix = (ox * stride[1] + kx * dilation[1]).checked_sub(pads[1]);
                        if let (Some(iy), Some(ix)) = (iy.filter(|&y| y < h), ix.filter(|&x| x < w))
                        {
                            let src = &xv[((b * h + iy) * w + ix) * c..][..c];
                            row[(ky * kw + kx) * c..][..c].copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }
    TensorData::f32(out.shape.clone(), result)
}

/// Inference batch norm: `(x - mean) / sqrt(var + eps) * scale + bias` per channel (axis 1).
pub fn batch_norm(op: &Op, inputs: &[&TensorData], eps: f32) -> Result<TensorData, RefError> {
    let [x, scale, bias, mean, var] = match inputs {
        [a, b, c, d, e] => [*a, *b, *c, *d, *e],
        _ => {
            return Err(op_error(
                op,
                format!("takes 5 inputs, got {}", inputs.len()),
            ))
        }
    };
    let (s, bi, m, v) = (scale.to_f32(), bias.to_f32(), mean.to_f32(), var.to_f32());
    let shape = x.shape();
    let channels = shape[1];
    let inner: usize = shape[2..].iter().product();
    let values = x
        .to_f32()
        .iter()
        .enumerate()
        .map(|(i, &val)| {
            let c = (i / inner) % channels;
            ((val as f64 - m[c] as f64) / (v[c] as f64 + eps as f64).sqrt() * s[c] as f64
                + bi[c] as f64) as f32
        })
        .collect();
    Ok(TensorData::f32(shape.to_vec(), values))
}

/// Max or average pooling of NCHW `x`; padded positions never win a max.
#[allow(clippy::too_many_arguments)]
pub fn pool(
    op: &Op,
    x: &TensorData,
    kind: ReduceOp,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    count_include_pad: bool,
    out: &TensorType,
) -> Result<TensorData, RefError> {
    if !matches!(kind, ReduceOp::Max | ReduceOp::Mean) {
        return Err(op_error(
            op,
            format!("{kind:?} pooling is not defined; use Max or Mean"),
        ));
    }
    let xs = x.shape();
    let xv = x.to_f32();
    let [h, w] = [xs[2], xs[3]];
    let [oh, ow] = [out.shape[2], out.shape[3]];
    let mut result = Vec::with_capacity(out.numel());
    for plane in 0..xs[0] * xs[1] {
        let base = plane * h * w;
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut acc, mut count) = (
                    if kind == ReduceOp::Max {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    },
                    0usize,
                );
                for ky in 0..kernel[0] {
                    for kx in 0..kernel[1] {
                        let (py, px) = (oy * stride[0] + ky, ox * stride[1] + kx);
                        let inside =
                            py >= pads[0] && px >= pads[1] && py - pads[0] < h && px - pads[1] < w;
                        let in_padded = py < h + pads[0] + pads[2] && px < w + pads[1] + pads[3];
                        if inside {
                            let v = xv[base + (py - pads[0]) * w + (px - pads[1])] as f64;
                            acc = if kind == ReduceOp::Max {
                                acc.max(v)
                            } else {
                                acc + v
                            };
                            count += 1;
                        } else if count_include_pad && in_padded {
                            count += 1;
                        }
                    }
                }
                let v = if kind == ReduceOp::Mean {
                    acc / count.max(1) as f64
                } else {
                    acc
                };
                result.push(v as f32);
            }
        }
    }
    Ok(TensorData::f32(out.shape.clone(), result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DType;

    #[test]
    fn a_pixel_major_convolution_is_the_nchw_one_in_pixel_rows() {
        // Two 5x4 images of 3 channels, 4 output channels, stride 2 and a bias: every output
        // of the pixel-major form is the NCHW form's value at the same image, channel and
        // pixel, and the input is read the same way.
        let (n, c, h, w, o) = (2, 3, 5, 4, 4);
        let xv: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let wv: Vec<f32> = (0..o * c * 9)
            .map(|i| ((i * 5) % 7) as f32 * 0.25 - 0.5)
            .collect();
        let x = TensorData::f32(vec![n, c, h, w], xv.clone());
        let wt = TensorData::f32(vec![o, c, 3, 3], wv);
        let bias = TensorData::f32(vec![o], vec![0.5, -1.0, 2.0, 0.0]);
        let conv_op = |pixels| Op::Conv {
            kernel: [3, 3],
            stride: [2, 2],
            pads: [1; 4],
            dilation: [1, 1],
            groups: 1,
            relu: false,
            pixels,
        };
        let (oh, ow) = (3, 2);
        let nchw_out = TensorType::new(vec![n, o, oh, ow], DType::F32);
        let want = conv(
            &conv_op(None),
            &[&x, &wt, &bias],
            [2, 2],
            [1; 4],
            [1, 1],
            1,
            &nchw_out,
        )
        .unwrap()
        .to_f32();
        let mut pv = vec![0.0; xv.len()];
        for (b, ch, y, xx) in nchw_indices(n, c, h, w) {
            pv[((b * h + y) * w + xx) * c + ch] = xv[((b * c + ch) * h + y) * w + xx];
        }
        let pixels = TensorData::f32(vec![n * h * w, c], pv);
        let out = TensorType::new(vec![n * oh * ow, o], DType::F32);
        let op = conv_op(Some([n, h, w]));
        let got = conv_pixels(&op, &[&pixels, &wt, &bias], [n, h, w], &out)
            .unwrap()
            .to_f32();
        for (b, ch, y, xx) in nchw_indices(n, o, oh, ow) {
            assert_eq!(
                got[((b * oh + y) * ow + xx) * o + ch],
                want[((b * o + ch) * oh + y) * ow + xx],
                "image {b}, channel {ch}, pixel ({y}, {xx})"
            );
        }
    }

    /// Every `(image, channel, y, x)` of an `[n, c, h, w]` tensor.
    fn nchw_indices(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..n).flat_map(move |b| {
            (0..c).flat_map(move |ch| (0..h).flat_map(move |y| (0..w).map(move |x| (b, ch, y, x))))
        })
    }

    #[test]
    fn conv_with_padding_sums_neighbourhoods() {
        // 3x3 ones kernel over a 3x3 image of ones with pad 1: counts of in-bounds neighbours.
        let x = TensorData::f32(vec![1, 1, 3, 3], vec![1.0; 9]);
        let w = TensorData::f32(vec![1, 1, 3, 3], vec![1.0; 9]);
        let out = TensorType::new(vec![1, 1, 3, 3], DType::F32);
        let op = Op::Conv {
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            dilation: [1, 1],
            groups: 1,
            relu: false,
            pixels: None,
        };
        let y = conv(&op, &[&x, &w], [1, 1], [1; 4], [1, 1], 1, &out).unwrap();
        assert_eq!(
            y.to_f32(),
            vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]
        );
    }

    #[test]
    fn average_pool_counts_padding_only_when_asked() {
        let x = TensorData::f32(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let out = TensorType::new(vec![1, 1, 2, 2], DType::F32);
        let op = Op::Pool {
            op: ReduceOp::Mean,
            kernel: [2, 2],
            stride: [1, 1],
            pads: [0, 0, 1, 1],
            count_include_pad: false,
        };
        let y = pool(
            &op,
            &x,
            ReduceOp::Mean,
            [2, 2],
            [1, 1],
            [0, 0, 1, 1],
            false,
            &out,
        )
        .unwrap();
        assert_eq!(y.to_f32(), vec![2.5, 3.0, 3.5, 4.0]);
        let y = pool(
            &op,
            &x,
            ReduceOp::Mean,
            [2, 2],
            [1, 1],
            [0, 0, 1, 1],
            true,
            &out,
        )
        .unwrap();
        assert_eq!(y.to_f32(), vec![2.5, 1.5, 1.75, 1.0]);
    }
}
