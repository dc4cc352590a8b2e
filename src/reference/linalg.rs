//! NumPy `matmul`: batched over broadcast leading axes, with 1-D operands promoted.

use super::strides::broadcast_map;
use super::{op_error, RefError};
use crate::graph::{Op, TensorData, TensorType};

/// `a @ b`, accumulating in f64.
pub fn matmul(op: &Op, inputs: &[&TensorData], out: &TensorType) -> Result<TensorData, RefError> {
    let (a, b) = match inputs {
        [a, b] => (*a, *b),
        _ => {
            return Err(op_error(
                op,
                format!("takes 2 inputs, got {}", inputs.len()),
            ))
        }
    };
    let promote = |s: &[usize], left: bool| -> Vec<usize> {
        match (s.len(), left) {
            (1, true) => vec![1, s[0]],
            (1, false) => vec![s[0], 1],
            _ => s.to_vec(),
        }
    };
    let (sa, sb) = (promote(a.shape(), true), promote(b.shape(), false));
    if sa.len() < 2 || sb.len() < 2 {
        return Err(op_error(op, "operands must have at least one axis"));
    }
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(op_error(
            op,
            format!("inner dimensions differ: {:?} @ {:?}", a.shape(), b.shape()),
        ));
    }
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let batch = crate::graph::infer::broadcast_shapes(&[ba, bb])
        .ok_or_else(|| op_error(op, format!("batch axes {ba:?} and {bb:?} do not broadcast")))?;
    // Which matrix of a and of b each output batch reads.
    let map_a = broadcast_map(ba, &batch);
    let map_b = broadcast_map(bb, &batch);
    let to_f64 = |t: &TensorData| -> Vec<f64> {
        match t {
            TensorData::F32 { values, .. } => values.iter().map(|&v| v as f64).collect(),
            TensorData::I64 { values, .. } => values.iter().map(|&v| v as f64).collect(),
        }
    };
    let mut result = vec![0f64; map_a.len() * m * n];
    let batches = (&map_a[..], &map_b[..]);
    match (a, b) {
        // Float operands are read in place (a folded weight may be tens of megabytes).
        (TensorData::F32 { values: av, .. }, TensorData::F32 { values: bv, .. }) => {
            multiply(av, bv, batches, (m, k, n), &mut result)
        }
        _ => multiply(&to_f64(a), &to_f64(b), batches, (m, k, n), &mut result),
    }
    let shape = out.shape.clone();
    Ok(if out.dtype.is_float() {
        TensorData::f32(shape, result.into_iter().map(|v| v as f32).collect())
    } else {
        TensorData::i64(shape, result.into_iter().map(|v| v as i64).collect())
    })
}

/// Accumulates in f64 the products of the `m x k` matrices of `av` and the `k x n` matrices of
/// `bv` into `result`, output batch `i` reading matrix `batches.0[i]` of `av` and
/// `batches.1[i]` of `bv`.
fn multiply<T: Copy + Into<f64>>(
    av: &[T],
    bv: &[T],
    batches: (&[usize], &[usize]),
    (m, k, n): (usize, usize, usize),
    result: &mut [f64],
) {
    for (bi, (&ia, &ib)) in batches.0.iter().zip(batches.1).enumerate() {
        let am = &av[ia * m * k..(ia + 1) * m * k];
        let bm = &bv[ib * k * n..(ib + 1) * k * n];
        let cm = &mut result[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let row = &mut cm[i * n..(i + 1) * n];
            for p in 0..k {
                let aval: f64 = am[i * k + p].into();
                for (c, &bval) in row.iter_mut().zip(&bm[p * n..(p + 1) * n]) {
                    *c += aval * bval.into();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DType;

    #[test]
    fn batched_matmul_broadcasts_the_right_operand() {
        // a: 2 batches of 1x2, b: one 2x2 matrix shared by both batches.
        let a = TensorData::f32(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = TensorData::f32(vec![2, 2], vec![1.0, 10.0, 100.0, 1000.0]);
        let out = TensorType::new(vec![2, 1, 2], DType::F32);
        let c = matmul(&Op::MatMul, &[&a, &b], &out).unwrap();
        assert_eq!(c.to_f32(), vec![201.0, 2010.0, 403.0, 4030.0]);
    }

    #[test]
    fn vector_operands_are_promoted() {
        let a = TensorData::f32(vec![2], vec![1.0, 2.0]);
        let b = TensorData::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = TensorType::new(vec![3], DType::F32);
        assert_eq!(
            matmul(&Op::MatMul, &[&a, &b], &out).unwrap().to_f32(),
            vec![9.0, 12.0, 15.0]
        );
    }
}
