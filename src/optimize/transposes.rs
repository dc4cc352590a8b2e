//! Consecutive transposes as one: `Transpose(Transpose(x, p), q)` becomes `Transpose(x, r)`
//! with `r` the two permutations composed (or `x` itself when they cancel), when nothing else
//! reads the inner transpose. The e-graph's `transpose-merge` rule does this for the graph it
//! is given; the graph passes after it make new pairs: a rotary embedding moved before the
//! head split ([`super::rotary`]) leaves the split's transpose right before the transpose of
//! K, and the single `[1, 2, 0]` transpose they make is a head view read in place.

use petgraph::graph::NodeIndex;

use crate::graph::fold::rebuild;
use crate::graph::{Graph, Op};
use crate::import::builder::BuildError;

use super::conditions::compose;

/// `graph` with each transpose of a transpose used by nothing else composed into one. Returns
/// the graph and how many pairs were composed.
pub fn compose_transposes(graph: &Graph) -> Result<(Graph, usize), BuildError> {
    let pairs: Vec<_> = graph
        .topo_order()
        .into_iter()
        .filter_map(|n| composed(graph, n).map(|c| (n, c)))
        .collect();
    // Rebuilding copies every constant: only when there is something to compose.
    if pairs.is_empty() {
        return Ok((graph.clone(), 0));
    }
    let out = rebuild(graph, |b, n, remap| {
        let Some((_, (x, r))) = pairs.iter().find(|(m, _)| *m == n) else {
            return Ok(None);
        };
        let x = remap[x.index()].expect("inputs are rebuilt first");
        if r.iter().enumerate().all(|(i, &a)| i == a) {
            return Ok(Some(x));
        }
        let perm = r.clone();
        b.add(&graph.node(n).name, Op::Transpose { perm }, &[x])
            .map(Some)
    })?;
    Ok((out, pairs.len()))
}

/// `(x, r)` when `n` is `Transpose(Transpose(x, p), q)`, `r` the composed permutation, and
/// nothing else reads the inner transpose.
fn composed(graph: &Graph, n: NodeIndex) -> Option<(NodeIndex, Vec<usize>)> {
    let Op::Transpose { perm: q } = &graph.node(n).op else {
        return None;
    };
    let inner = *graph.inputs_of(n).first()?;
    let Op::Transpose { perm: p } = &graph.node(inner).op else {
        return None;
    };
    let only_user = graph.only_user(inner).is_some();
    let x = *graph.inputs_of(inner).first()?;
    compose(p, q).filter(|_| only_user).map(|r| (x, r))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::graph::{DType, TensorData, TensorType};
    use crate::import::builder::GraphBuilder;
    use crate::reference;

    fn two_transposes(p: Vec<usize>, q: Vec<usize>, inner_out: bool) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![2, 3, 4], DType::F32));
        let t1 = b.add("t1", Op::Transpose { perm: p }, &[x]).unwrap();
        let t2 = b.add("t2", Op::Transpose { perm: q }, &[t1]).unwrap();
        let mut outs = vec![("y".to_string(), t2)];
        if inner_out {
            outs.push(("t1".to_string(), t1));
        }
        b.finish(outs)
    }

    fn transposes(g: &Graph) -> Vec<Vec<usize>> {
        g.topo_order()
            .into_iter()
            .filter_map(|n| match &g.node(n).op {
                Op::Transpose { perm } => Some(perm.clone()),
                _ => None,
            })
            .collect()
    }

    fn same_outputs(a: &Graph, b: &Graph) {
        let x = TensorData::f32(vec![2, 3, 4], (0..24).map(|i| i as f32).collect());
        let inputs = BTreeMap::from([("x".to_string(), x)]);
        let (ra, rb) = (
            reference::run(a, &inputs).unwrap(),
            reference::run(b, &inputs).unwrap(),
        );
        assert_eq!(ra, rb);
    }

    #[test]
    fn a_head_split_then_a_last_two_swap_is_one_transposed_head_view() {
        let g = two_transposes(vec![1, 0, 2], vec![0, 2, 1], false);
        let (out, n) = compose_transposes(&g).unwrap();
        assert_eq!(n, 1);
        assert_eq!(transposes(&out), [vec![1, 2, 0]]);
        same_outputs(&g, &out);
    }

    #[test]
    fn transposes_that_cancel_vanish() {
        let g = two_transposes(vec![1, 2, 0], vec![2, 0, 1], false);
        let (out, n) = compose_transposes(&g).unwrap();
        assert_eq!(n, 1);
        assert!(transposes(&out).is_empty());
        same_outputs(&g, &out);
    }

    #[test]
    fn an_inner_transpose_read_elsewhere_stays() {
        let g = two_transposes(vec![1, 0, 2], vec![0, 2, 1], true);
        let (out, n) = compose_transposes(&g).unwrap();
        assert_eq!(n, 0);
        assert_eq!(transposes(&out).len(), 2);
    }
}
