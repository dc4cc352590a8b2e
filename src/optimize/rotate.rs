//! Rotary embeddings' `rotate_half` as a matmul (issue 6, LLaMA blocks).
//!
//! Exporters write `rotate_half(x)` as `Concat([-x[..., h/2:], x[..., :h/2]], axis=-1)`: two
//! slices, a negation and a concatenation along the last axis. Slices and concatenations off
//! tile boundaries have no TT-Lang template (they run as host steps), but the whole expression
//! is `x @ R` for the constant signed permutation `R` with `R[j + h/2, j] = -1` and
//! `R[j - h/2, j] = 1`: one device matmul, exact in bf16 (each output is one input times +-1),
//! whose rotary multiply-add (`x * cos + rotate_half(x) * sin`) becomes its epilogue.
//!
//! A pass over the extracted graph like [`super::conv`]: the e-graph language builds no new
//! data constants, and `R` is one.

use petgraph::graph::NodeIndex;

use crate::graph::fold::rebuild;
use crate::graph::{Graph, Op, TensorData, UnaryOp};
use crate::import::builder::BuildError;

/// `Some(x)` when `n` computes `rotate_half(x)` in the exporters' form.
fn rotate_half_of(graph: &Graph, n: NodeIndex) -> Option<NodeIndex> {
    let shape = &graph.node(n).ty.shape;
    let last = shape.len().checked_sub(1)?;
    let h = shape[last];
    if !matches!(graph.node(n).op, Op::Concat { axis } if axis == last) || !h.is_multiple_of(2) {
        return None;
    }
    let [neg, low] = graph.inputs_of(n)[..] else {
        return None;
    };
    if !matches!(graph.node(neg).op, Op::Unary(UnaryOp::Neg)) {
        return None;
    }
    let high = *graph.inputs_of(neg).first()?;
    let half_of = |s: NodeIndex, start: usize| -> Option<NodeIndex> {
        let Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } = &graph.node(s).op
        else {
            return None;
        };
        let x = *graph.inputs_of(s).first()?;
        let whole = graph.node(x).ty.shape.get(last) == Some(&h);
        let this = axes.as_slice() == [last]
            && starts.as_slice() == [start]
            && ends.as_slice() == [start + h / 2]
            && steps.as_slice() == [1];
        (whole && this).then_some(x)
    };
    let x = half_of(high, h / 2)?;
    (half_of(low, 0)? == x).then_some(x)
}

/// The `h x h` matrix `R` with `x @ R == rotate_half(x)`.
fn rotation(h: usize) -> TensorData {
    let mut r = vec![0.0f32; h * h];
    for j in 0..h / 2 {
        r[(j + h / 2) * h + j] = -1.0;
        r[j * h + j + h / 2] = 1.0;
    }
    TensorData::F32 {
        shape: vec![h, h],
        values: r,
    }
}

/// Rewrites every `rotate_half(x)` of `graph` as `x @ R`. Returns the graph and how many were
/// rewritten (the graph unchanged when none).
pub fn rotate_half_as_matmul(graph: &Graph) -> Result<(Graph, usize), BuildError> {
    let found: Vec<(NodeIndex, NodeIndex)> = graph
        .dag
        .node_indices()
        .filter_map(|n| rotate_half_of(graph, n).map(|x| (n, x)))
        .collect();
    if found.is_empty() {
        return Ok((graph.clone(), 0));
    }
    let out = rebuild(graph, |b, idx, rebuilt| {
        let Some(&(_, x)) = found.iter().find(|(n, _)| *n == idx) else {
            return Ok(None);
        };
        let node = graph.node(idx);
        let h = node.ty.shape[node.ty.shape.len() - 1];
        let r = b.constant(
            &format!("{}/rotation", node.name),
            rotation(h),
            node.ty.dtype,
        );
        let x = rebuilt[x.index()].expect("x is an ancestor of its rotation");
        Ok(Some(b.add(&node.name, Op::MatMul, &[x, r])?))
    })?;
    Ok((out, found.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{DType, TensorType};
    use crate::import::builder::GraphBuilder;
    use std::collections::BTreeMap;

    /// rotate_half of x [2, 4, 8] as exported.
    fn exported() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![2, 4, 8], DType::F32));
        let half = |start| Op::Slice {
            axes: vec![2],
            starts: vec![start],
            ends: vec![start + 4],
            steps: vec![1],
        };
        let hi = b.add("hi", half(4), &[x]).unwrap();
        let lo = b.add("lo", half(0), &[x]).unwrap();
        let neg = b.add("neg", Op::Unary(UnaryOp::Neg), &[hi]).unwrap();
        let y = b.add("y", Op::Concat { axis: 2 }, &[neg, lo]).unwrap();
        b.finish(vec![("y".into(), y)])
    }

    #[test]
    fn rotate_half_becomes_a_matmul_with_the_same_values() {
        let g = exported();
        let (out, n) = rotate_half_as_matmul(&g).unwrap();
        assert_eq!(n, 1);
        let ops: Vec<String> = out.dag.node_weights().map(|w| w.op.name()).collect();
        assert!(ops.contains(&"MatMul".to_string()), "{ops:?}");
        assert!(!ops
            .iter()
            .any(|o| o == "Slice" || o == "Concat" || o == "Neg"));
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
        let inputs = BTreeMap::from([(
            "x".to_string(),
            TensorData::F32 {
                shape: vec![2, 4, 8],
                values: x,
            },
        )]);
        let want = crate::reference::run(&g, &inputs).unwrap();
        let got = crate::reference::run(&out, &inputs).unwrap();
        assert_eq!(want["y"].to_f32(), got["y"].to_f32());
    }

    #[test]
    fn other_concatenations_are_left_alone() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![4, 8], DType::F32));
        let lo = b
            .add(
                "lo",
                Op::Slice {
                    axes: vec![1],
                    starts: vec![0],
                    ends: vec![4],
                    steps: vec![1],
                },
                &[x],
            )
            .unwrap();
        let neg = b.add("neg", Op::Unary(UnaryOp::Neg), &[lo]).unwrap();
        // [-x[:, :4], x[:, :4]] is not rotate_half
        let y = b.add("y", Op::Concat { axis: 1 }, &[neg, lo]).unwrap();
        let g = b.finish(vec![("y".into(), y)]);
        assert_eq!(rotate_half_as_matmul(&g).unwrap().1, 0);
    }
}
