//! Data-movement kernels: transpose, broadcast, slice, concat, gather.

use super::strides::{broadcast_map, strided_map, strides};
use super::{op_error, RefError};
use crate::graph::{Op, TensorData, TensorType};

/// Reads `x` at the flat positions `map`, giving a tensor of `shape`.
fn remap(x: &TensorData, map: &[usize], shape: Vec<usize>) -> TensorData {
    match x {
        TensorData::F32 { values, .. } => {
            TensorData::f32(shape, map.iter().map(|&i| values[i]).collect())
        }
        TensorData::I64 { values, .. } => {
            TensorData::i64(shape, map.iter().map(|&i| values[i]).collect())
        }
    }
}

/// Output axis `i` is input axis `perm[i]`.
pub fn transpose(x: &TensorData, perm: &[usize]) -> TensorData {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    match x {
        TensorData::F32 { values, .. } => TensorData::f32(shape, permute(values, x.shape(), perm)),
        TensorData::I64 { values, .. } => TensorData::i64(shape, permute(values, x.shape(), perm)),
    }
}

/// The values of a row-major tensor of `shape` with its axes permuted by `perm`, read in the
/// output's row-major order. Swapping the last two axes (weight transposes, which constant
/// folding meets on every Gemm with `transB`) goes through square blocks
/// ([`transpose_matrices`]); every other permutation walks the input with the output's strides.
fn permute<T: Copy + Default>(v: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let r = perm.len();
    let swaps_last_two = r >= 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| p == i)
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2;
    if swaps_last_two && !v.is_empty() {
        return transpose_matrices(v, shape[r - 2], shape[r - 1]);
    }
    let s = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    strided_map(&out_shape, &st, 0)
        .into_iter()
        .map(|i| v[i])
        .collect()
}

/// Each of the row-major `rows x cols` matrices stored one after another in `v`, transposed
/// ([`transpose_matrix`]).
pub(super) fn transpose_matrices<T: Copy + Default>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    if rows * cols > 0 {
        for (src, dst) in v
            .chunks_exact(rows * cols)
            .zip(out.chunks_exact_mut(rows * cols))
        {
            transpose_matrix(src, dst, rows, cols);
        }
    }
    out
}

/// Writes the transpose of the `rows x cols` row-major matrix `src` into `dst`: by blocks of
/// [`BLOCK`] x [`BLOCK`], each copied row by row into a local block and written out column by
/// column, so that both sides move whole cache lines; the edges past the last whole block go
/// value by value.
fn transpose_matrix<T: Copy + Default>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    let (whole_rows, whole_cols) = (rows / BLOCK * BLOCK, cols / BLOCK * BLOCK);
    let mut block = [[T::default(); BLOCK]; BLOCK];
    for r0 in (0..whole_rows).step_by(BLOCK) {
        for c0 in (0..whole_cols).step_by(BLOCK) {
            for (i, row) in block.iter_mut().enumerate() {
                row.copy_from_slice(&src[(r0 + i) * cols + c0..][..BLOCK]);
            }
            for j in 0..BLOCK {
                let column = &mut dst[(c0 + j) * rows + r0..][..BLOCK];
                for (d, row) in column.iter_mut().zip(&block) {
                    *d = row[j];
                }
            }
        }
    }
    for r in 0..rows {
        let from = if r < whole_rows { whole_cols } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// The side of [`transpose_matrix`]'s square blocks: 16 values, a 64-byte cache line of f32.
const BLOCK: usize = 16;

/// NumPy broadcast of `x` to `shape`.
pub fn broadcast_to(x: &TensorData, shape: &[usize]) -> TensorData {
    remap(x, &broadcast_map(x.shape(), shape), shape.to_vec())
}

/// Strided slice; the extents come from the node's output type.
pub fn slice(
    x: &TensorData,
    axes: &[usize],
    starts: &[usize],
    steps: &[usize],
    out: &TensorType,
) -> TensorData {
    let mut st = strides(x.shape());
    let base = st.clone();
    let mut offset = 0;
    for ((&a, &s), &step) in axes.iter().zip(starts).zip(steps) {
        offset += s * base[a];
        st[a] = base[a] * step;
    }
    remap(x, &strided_map(&out.shape, &st, offset), out.shape.clone())
}

/// Concatenation along `axis`.
pub fn concat(
    op: &Op,
    inputs: &[&TensorData],
    axis: usize,
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let outer: usize = out.shape[..axis].iter().product();
    let inner: usize = out.shape[axis + 1..].iter().product();
    if out.dtype.is_float() {
        let parts: Vec<Vec<f32>> = inputs.iter().map(|t| t.to_f32()).collect();
        Ok(TensorData::f32(
            out.shape.clone(),
            interleave(inputs, &parts, outer, inner, axis),
        ))
    } else {
        if inputs.iter().any(|t| matches!(t, TensorData::F32 { .. })) {
            return Err(op_error(op, "mixes float and integer inputs"));
        }
        let parts: Vec<Vec<i64>> = inputs.iter().map(|t| t.to_i64()).collect();
        Ok(TensorData::i64(
            out.shape.clone(),
            interleave(inputs, &parts, outer, inner, axis),
        ))
    }
}

fn interleave<T: Copy>(
    inputs: &[&TensorData],
    parts: &[Vec<T>],
    outer: usize,
    inner: usize,
    axis: usize,
) -> Vec<T> {
    let mut values = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for o in 0..outer {
        for (t, p) in inputs.iter().zip(parts) {
            let block = t.shape()[axis] * inner;
            values.extend_from_slice(&p[o * block..(o + 1) * block]);
        }
    }
    values
}

/// `data` indexed along `axis` by integer `indices` (negative indices count from the end).
pub fn gather(
    op: &Op,
    inputs: &[&TensorData],
    axis: usize,
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let (data, indices) = match inputs {
        [d, i] => (*d, *i),
        _ => {
            return Err(op_error(
                op,
                format!("takes 2 inputs, got {}", inputs.len()),
            ))
        }
    };
    let dim = data.shape()[axis];
    let outer: usize = data.shape()[..axis].iter().product();
    let inner: usize = data.shape()[axis + 1..].iter().product();
    let idx = indices
        .to_i64()
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j).ok().filter(|&j| j < dim).ok_or_else(|| {
                op_error(
                    op,
                    format!("index {i} out of range for axis {axis} of size {dim}"),
                )
            })
        })
        .collect::<Result<Vec<usize>, RefError>>()?;
    let mut map = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in &idx {
            let start = (o * dim + j) * inner;
            map.extend(start..start + inner);
        }
    }
    Ok(remap(data, &map, out.shape.clone()))
}

#[cfg(test)]
mod tests {
    use super::permute as permute_for_test;

    /// The tiled last-two-axes swap agrees with element-by-element indexing and with the
    /// strided walk, on shapes that are not multiples of the tile.
    #[test]
    fn tiled_swap_matches_the_strided_walk() {
        let shape = [2usize, 37, 70];
        let v: Vec<i64> = (0..(2 * 37 * 70) as i64).collect();
        let tiled = permute_for_test(&v, &shape, &[0, 2, 1]);
        for b in 0..2 {
            for i in 0..37 {
                for j in 0..70 {
                    assert_eq!(tiled[(b * 70 + j) * 37 + i], v[(b * 37 + i) * 70 + j]);
                }
            }
        }
        // [1, 0] through the tiles equals the same transpose walked through rank-3 views.
        let m: Vec<i64> = (0..(37 * 70) as i64).collect();
        let walked = permute_for_test(&m, &[37, 70], &[1, 0]);
        let as3 = permute_for_test(&m, &[1, 37, 70], &[1, 2, 0]);
        let back = permute_for_test(&as3, &[37, 70, 1], &[1, 0, 2]);
        assert_eq!(walked, back);
    }

    use super::*;
    use crate::graph::DType;

    #[test]
    fn slice_concat_gather() {
        let x = TensorData::i64(vec![2, 4], (0..8).collect());
        let out = TensorType::new(vec![2, 2], DType::I64);
        assert_eq!(slice(&x, &[1], &[1], &[2], &out).to_i64(), vec![1, 3, 5, 7]);
        let out = TensorType::new(vec![2, 8], DType::I64);
        let c = concat(&Op::Concat { axis: 1 }, &[&x, &x], 1, &out).unwrap();
        assert_eq!(c.to_i64()[..8], [0, 1, 2, 3, 0, 1, 2, 3]);
        let i = TensorData::i64(vec![2], vec![-1, 0]);
        let out = TensorType::new(vec![2, 4], DType::I64);
        let g = gather(&Op::Gather { axis: 0 }, &[&x, &i], 0, &out).unwrap();
        assert_eq!(g.to_i64(), vec![4, 5, 6, 7, 0, 1, 2, 3]);
        let bad = TensorData::i64(vec![1], vec![2]);
        let out = TensorType::new(vec![1, 4], DType::I64);
        assert!(gather(&Op::Gather { axis: 0 }, &[&x, &bad], 0, &out).is_err());
    }
}
