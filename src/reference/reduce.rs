//! Reductions and the normalizations built on them: reduce, softmax, layer/RMS norm.

use super::strides::{strided_map, strides};
use super::{op_error, RefError};
use crate::graph::{Op, ReduceOp, TensorData, TensorType};

/// For every input element, the flat index of the output element it reduces into.
fn reduce_targets(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let ks = strides(&kept);
    let st: Vec<usize> = (0..shape.len())
        .map(|i| if axes.contains(&i) { 0 } else { ks[i] })
        .collect();
    strided_map(shape, &st, 0)
}

/// Sum, mean, max or min over `axes` (f64 accumulation for floats).
pub fn reduce(
    op: &Op,
    kind: ReduceOp,
    x: &TensorData,
    axes: &[usize],
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let n = out.numel();
    let targets = reduce_targets(x.shape(), axes);
    let count = x.len().checked_div(n).unwrap_or(0);
    if count == 0 && matches!(kind, ReduceOp::Max | ReduceOp::Min) {
        return Err(op_error(op, "max/min of an empty axis"));
    }
    match x {
        TensorData::F32 { values, .. } => {
            let init = match kind {
                ReduceOp::Sum | ReduceOp::Mean => 0.0,
                ReduceOp::Max => f64::NEG_INFINITY,
                ReduceOp::Min => f64::INFINITY,
            };
            let mut acc = vec![init; n];
            for (&t, &v) in targets.iter().zip(values) {
                let v = v as f64;
                acc[t] = match kind {
                    ReduceOp::Sum | ReduceOp::Mean => acc[t] + v,
                    ReduceOp::Max => acc[t].max(v),
                    ReduceOp::Min => acc[t].min(v),
                };
            }
            if kind == ReduceOp::Mean {
                acc.iter_mut().for_each(|a| *a /= count as f64);
            }
            Ok(TensorData::f32(
                out.shape.clone(),
                acc.into_iter().map(|v| v as f32).collect(),
            ))
        }
        TensorData::I64 { values, .. } => {
            let init = match kind {
                ReduceOp::Sum | ReduceOp::Mean => 0,
                ReduceOp::Max => i64::MIN,
                ReduceOp::Min => i64::MAX,
            };
            let mut acc = vec![init; n];
            for (&t, &v) in targets.iter().zip(values) {
                acc[t] = match kind {
                    ReduceOp::Sum | ReduceOp::Mean => acc[t].wrapping_add(v),
                    ReduceOp::Max => acc[t].max(v),
                    ReduceOp::Min => acc[t].min(v),
                };
            }
            if kind == ReduceOp::Mean {
                acc.iter_mut().for_each(|a| *a /= count.max(1) as i64);
            }
            Ok(TensorData::i64(out.shape.clone(), acc))
        }
    }
}

/// Softmax along `axis`: exp(x - max) / Σ exp(x - max).
pub fn softmax(op: &Op, x: &TensorData, axis: usize) -> Result<TensorData, RefError> {
    let TensorData::F32 { shape, values } = x else {
        return Err(op_error(op, "needs a float input"));
    };
    let dim = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut result = vec![0f32; values.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * dim + j) * inner + i;
            let max = (0..dim)
                .map(|j| values[at(j)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f64;
            for j in 0..dim {
                let e = (values[at(j)] - max).exp();
                result[at(j)] = e;
                sum += e as f64;
            }
            for j in 0..dim {
                result[at(j)] = (result[at(j)] as f64 / sum) as f32;
            }
        }
    }
    Ok(TensorData::f32(shape.clone(), result))
}

/// LayerNorm (`centered`) or RMSNorm over the last axis, with `gamma` and optional `beta`.
pub fn layer_norm(
    op: &Op,
    inputs: &[&TensorData],
    eps: f32,
    centered: bool,
) -> Result<TensorData, RefError> {
    let (x, gamma) = match inputs {
        [x, g, ..] => (*x, g.to_f32()),
        _ => {
            return Err(op_error(
                op,
                format!("takes 2 or 3 inputs, got {}", inputs.len()),
            ))
        }
    };
    let beta = inputs.get(2).map(|b| b.to_f32());
    let values = x.to_f32();
    let dim = x.shape().last().copied().unwrap_or(1).max(1);
    let mut result = Vec::with_capacity(values.len());
    for row in values.chunks(dim) {
        let mean = if centered {
            row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64
        } else {
            0.0
        };
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (j, &v) in row.iter().enumerate() {
            let y = (v as f64 - mean) * inv * gamma[j] as f64
                + beta.as_ref().map_or(0.0, |b| b[j] as f64);
            result.push(y as f32);
        }
    }
    Ok(TensorData::f32(x.shape().to_vec(), result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DType;

    #[test]
    fn reduce_over_middle_axis() {
        let x = TensorData::f32(vec![2, 3, 2], (0..12).map(|v| v as f32).collect());
        let op = Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![1],
            keep_dims: false,
        };
        let out = TensorType::new(vec![2, 2], DType::F32);
        // Row sums computed by hand: [0+2+4, 1+3+5, 6+8+10, 7+9+11].
        assert_eq!(
            reduce(&op, ReduceOp::Sum, &x, &[1], &out).unwrap().to_f32(),
            vec![6.0, 9.0, 24.0, 27.0]
        );
        assert_eq!(
            reduce(&op, ReduceOp::Max, &x, &[1], &out).unwrap().to_f32(),
            vec![4.0, 5.0, 10.0, 11.0]
        );
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let x = TensorData::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0]);
        let y = softmax(&Op::Softmax { axis: 1 }, &x, 1).unwrap().to_f32();
        let e: Vec<f32> = [-2.0f32, -1.0, 0.0].iter().map(|v| v.exp()).collect();
        let s: f32 = e.iter().sum();
        for j in 0..3 {
            assert!((y[j] - e[j] / s).abs() < 1e-7);
            assert!((y[3 + j] - 1.0 / 3.0).abs() < 1e-7);
        }
    }

    #[test]
    fn layer_norm_normalizes_rows() {
        let x = TensorData::f32(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0]);
        let g = TensorData::f32(vec![4], vec![1.0; 4]);
        let y = layer_norm(&Op::LayerNorm { eps: 0.0 }, &[&x, &g], 0.0, true)
            .unwrap()
            .to_f32();
        // mean 2.5, variance 1.25
        let s = 1.25f32.sqrt();
        assert!(y
            .iter()
            .zip([-1.5, -0.5, 0.5, 1.5])
            .all(|(a, b)| (a - b / s).abs() < 1e-6));
    }
}
