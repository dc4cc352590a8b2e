//! Property tests of the reference interpreter against naive multi-index implementations
//! written here, over random shapes: shapes agree with inference, values with the definition.

use proptest::prelude::*;
use ttfuse::graph::infer::infer;
use ttfuse::graph::{BinaryOp, DType, Op, ReduceOp, TensorData, TensorType};
use ttfuse::reference::eval_op;

/// Row-major multi-index of flat position `k` in `shape`.
fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

fn data(shape: &[usize], seed: u64) -> TensorData {
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    TensorData::f32(shape.to_vec(), values)
}

fn run(op: &Op, inputs: &[&TensorData]) -> TensorData {
    let types: Vec<TensorType> = inputs
        .iter()
        .map(|t| TensorType::new(t.shape().to_vec(), DType::F32))
        .collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let ty = infer(op, &refs).expect("shapes fit");
    let out = eval_op(op, inputs, &ty).expect("evaluates");
    assert_eq!(out.shape(), ty.shape.as_slice());
    out
}

fn shape(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=max_rank)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn broadcast_add_matches_definition(a in shape(4), mask in prop::collection::vec(any::<bool>(), 4), drop in 0usize..3) {
        // b: a suffix of a's shape with some axes set to 1.
        let b: Vec<usize> = a[drop.min(a.len() - 1)..].iter().zip(&mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
        let (x, y) = (data(&a, 1), data(&b, 2));
        let out = run(&Op::Binary(BinaryOp::Add), &[&x, &y]);
        let (xv, yv, ov) = (x.to_f32(), y.to_f32(), out.to_f32());
        for (k, &o) in ov.iter().enumerate() {
            let idx = unravel(k, out.shape());
            let off = idx.len() - b.len();
            let bi: Vec<usize> = b.iter().enumerate().map(|(j, &d)| if d == 1 { 0 } else { idx[off + j] }).collect();
            prop_assert_eq!(o, xv[ravel(&idx, &a)] + yv[ravel(&bi, &b)]);
        }
    }

    #[test]
    fn transpose_matches_definition(s in shape(4), seed in any::<u64>()) {
        let mut perm: Vec<usize> = (0..s.len()).collect();
        // A deterministic shuffle from the seed.
        for i in (1..perm.len()).rev() {
            perm.swap(i, (seed as usize >> (i * 3)) % (i + 1));
        }
        let x = data(&s, seed % 7);
        let out = run(&Op::Transpose { perm: perm.clone() }, &[&x]);
        let (xv, ov) = (x.to_f32(), out.to_f32());
        for (k, &o) in ov.iter().enumerate() {
            let idx = unravel(k, out.shape());
            let mut src = vec![0; s.len()];
            for (i, &p) in perm.iter().enumerate() {
                src[p] = idx[i];
            }
            prop_assert_eq!(o, xv[ravel(&src, &s)]);
        }
    }

    #[test]
    fn last_two_axes_swaps_across_whole_and_partial_tiles(batch in 1usize..3, rows in 1usize..100, cols in 1usize..100) {
        // The swap goes through 32x32 tiles: these sizes cover whole tiles and edges.
        let s = vec![batch, rows, cols];
        let x = data(&s, 5);
        let out = run(&Op::Transpose { perm: vec![0, 2, 1] }, &[&x]);
        prop_assert_eq!(out.shape(), &[batch, cols, rows][..]);
        let (xv, ov) = (x.to_f32(), out.to_f32());
        for b in 0..batch {
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(ov[(b * cols + c) * rows + r], xv[(b * rows + r) * cols + c]);
                }
            }
        }
    }

    #[test]
    fn reduce_matches_definition(s in shape(4), pick in prop::collection::vec(any::<bool>(), 4), keep in any::<bool>(), max in any::<bool>()) {
        let axes: Vec<usize> = (0..s.len()).filter(|&i| pick[i]).collect();
        let kind = if max { ReduceOp::Max } else { ReduceOp::Sum };
        let x = data(&s, 3);
        let out = run(&Op::Reduce { op: kind, axes: axes.clone(), keep_dims: keep }, &[&x]);
        let kept: Vec<usize> = s.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
        let mut want = vec![if max { f64::NEG_INFINITY } else { 0.0 }; kept.iter().product()];
        for (k, &v) in x.to_f32().iter().enumerate() {
            let mut idx = unravel(k, &s);
            for &a in &axes {
                idx[a] = 0;
            }
            let t = ravel(&idx, &kept);
            want[t] = if max { want[t].max(v as f64) } else { want[t] + v as f64 };
        }
        for (o, w) in out.to_f32().iter().zip(&want) {
            prop_assert!((*o as f64 - w).abs() < 1e-4, "{} vs {}", o, w);
        }
    }

    #[test]
    fn slice_matches_definition(s in shape(3), a in 0usize..3, start in 0usize..4, len in 0usize..5, step in 1usize..3) {
        let axis = a % s.len();
        let dim = s[axis];
        let start = start.min(dim);
        let end = (start + len).min(dim);
        let x = data(&s, 4);
        let op = Op::Slice { axes: vec![axis], starts: vec![start], ends: vec![end], steps: vec![step] };
        let out = run(&op, &[&x]);
        let xv = x.to_f32();
        for (k, &o) in out.to_f32().iter().enumerate() {
            let mut idx = unravel(k, out.shape());
            idx[axis] = start + idx[axis] * step;
            prop_assert_eq!(o, xv[ravel(&idx, &s)]);
        }
    }

    #[test]
    fn batched_matmul_matches_definition(batch in shape(2), m in 1usize..4, k in 1usize..4, n in 1usize..4, bcast in any::<bool>()) {
        let mut sa = batch.clone();
        sa.extend([m, k]);
        // b either has the same batch axes or none (broadcast).
        let mut sb = if bcast { vec![] } else { batch.clone() };
        sb.extend([k, n]);
        let (a, b) = (data(&sa, 5), data(&sb, 6));
        let out = run(&Op::MatMul, &[&a, &b]);
        let (av, bv) = (a.to_f32(), b.to_f32());
        for (f, &o) in out.to_f32().iter().enumerate() {
            let idx = unravel(f, out.shape());
            let r = idx.len();
            let (bi, i, j) = (&idx[..r - 2], idx[r - 2], idx[r - 1]);
            let mut want = 0.0f64;
            for p in 0..k {
                let mut ia = bi.to_vec();
                ia.extend([i, p]);
                let mut ib = if bcast { vec![] } else { bi.to_vec() };
                ib.extend([p, j]);
                want += av[ravel(&ia, &sa)] as f64 * bv[ravel(&ib, &sb)] as f64;
            }
            prop_assert!((o as f64 - want).abs() < 1e-4);
        }
    }

    #[test]
    fn concat_then_slice_round_trips(s in shape(3), a in 0usize..3, extra in 1usize..4) {
        let axis = a % s.len();
        let mut s2 = s.clone();
        s2[axis] = extra;
        let (x, y) = (data(&s, 7), data(&s2, 8));
        let cat = run(&Op::Concat { axis }, &[&x, &y]);
        let total = s[axis] + extra;
        let back = run(&Op::Slice { axes: vec![axis], starts: vec![0], ends: vec![s[axis]], steps: vec![1] }, &[&cat]);
        prop_assert_eq!(back, x);
        let tail = run(&Op::Slice { axes: vec![axis], starts: vec![s[axis]], ends: vec![total], steps: vec![1] }, &[&cat]);
        prop_assert_eq!(tail, y);
    }
}
