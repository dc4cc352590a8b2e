//! Shared-input matmul merging (issue 6, "Simplify": Q, K and V from one matmul).
//!
//! `x @ W1`, `x @ W2`, ... with constant 2-D weights of equal `K` become one
//! `x @ concat(W1, W2, ..., axis 1)` (the concatenation is folded into one constant) and one
//! column slice of its output per original product, when the cost model finds that cheaper:
//! the merged product reads `x` once and launches one kernel, the slices cost what the planner
//! charges for them (today host fallback steps, two dispatches each).
//!
//! This is a pass over the extracted graph rather than an e-graph rule: a rule pattern matches
//! one expression, and merging needs every matmul that shares an operand at once (pairwise
//! multi-patterns would add every subset). Nor can extraction choose it: the greedy DAG
//! extractor picks each e-class's cheapest form on its own, and a slice of the wide product is
//! never cheaper than one narrow product; the saving only shows for the whole group, so the
//! group is costed here. The pass never splits a matmul, so a product that is already merged
//! (GPT-2's `c_attn` followed by a split) stays one.

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use crate::graph::{Graph, Op, TensorType};
use crate::import::builder::{BuildError, GraphBuilder};

use super::cost::CostModel;

/// Matmuls `a @ w` grouped by their shared left operand `a`, for constant 2-D `w` with
/// `w.shape[0]` equal to `a`'s last dimension and `a` not a constant. Only groups of two or
/// more, in node order.
fn shared_products(graph: &Graph) -> BTreeMap<NodeIndex, Vec<NodeIndex>> {
    let mut groups: BTreeMap<NodeIndex, Vec<NodeIndex>> = BTreeMap::new();
    for n in graph.dag.node_indices() {
        if !matches!(graph.node(n).op, Op::MatMul) {
            continue;
        }
        let [a, w] = graph.inputs_of(n)[..] else {
            continue;
        };
        let (na, nw) = (graph.node(a), graph.node(w));
        let shared = matches!(nw.op, Op::Constant(_))
            && !matches!(na.op, Op::Constant(_))
            && nw.ty.shape.len() == 2
            && na.ty.shape.last() == nw.ty.shape.first()
            && na.ty.dtype == nw.ty.dtype;
        if shared {
            groups.entry(a).or_default().push(n);
        }
    }
    groups.retain(|_, g| g.len() > 1);
    groups
}

/// The modeled cycles saved by merging `group` (positive: merging is cheaper).
fn saving(graph: &Graph, a: NodeIndex, group: &[NodeIndex], cost: &CostModel) -> f64 {
    let at = &graph.node(a).ty;
    let k = graph.inputs_of(group[0])[1];
    let k = graph.node(k).ty.shape[0];
    let width: usize = group.iter().map(|&m| last(&graph.node(m).ty)).sum();
    let mut wide_shape = graph.node(group[0]).ty.shape.clone();
    if let Some(l) = wide_shape.last_mut() {
        *l = width;
    }
    let wide = TensorType::new(wide_shape, at.dtype);
    let wide_w = TensorType::new(vec![k, width], at.dtype);
    let mut merged = cost.node_cost(&Op::MatMul, &[at, &wide_w], &wide, false);
    let mut separate = 0.0;
    for &m in group {
        let out = &graph.node(m).ty;
        let w = &graph.node(graph.inputs_of(m)[1]).ty;
        separate += cost.node_cost(&Op::MatMul, &[at, w], out, false);
        let slice = Op::Slice {
            axes: vec![0],
            starts: vec![0],
            ends: vec![1],
            steps: vec![1],
        };
        merged += cost.node_cost(&slice, &[&wide], out, false);
    }
    separate - merged
}

fn last(t: &TensorType) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

/// What [`merge_matmuls`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    /// Groups of matmuls merged into one.
    pub groups: usize,
    /// Modeled cycles saved.
    pub saved_cycles: f64,
}

/// Merges every group of matmuls that share their left operand and have constant weights of
/// equal `K` into one matmul and column slices, where `cost` finds that cheaper. Returns the
/// graph (unchanged when no group is worth merging) and what was merged.
pub fn merge_matmuls(graph: &Graph, cost: &CostModel) -> Result<(Graph, Merged), BuildError> {
    let mut report = Merged::default();
    let chosen: Vec<(NodeIndex, Vec<NodeIndex>)> = shared_products(graph)
        .into_iter()
        .filter_map(|(a, g)| {
            let s = saving(graph, a, &g, cost);
            (s > 0.0).then(|| {
                report.groups += 1;
                report.saved_cycles += s;
                (a, g)
            })
        })
        .collect();
    if chosen.is_empty() {
        return Ok((graph.clone(), report));
    }
    let group_of: BTreeMap<NodeIndex, usize> = chosen
        .iter()
        .enumerate()
        .flat_map(|(i, (_, g))| g.iter().map(move |&m| (m, i)))
        .collect();
    let mut b = GraphBuilder::new();
    let mut remap: Vec<Option<NodeIndex>> = vec![None; graph.dag.node_count()];
    for &idx in &graph.inputs {
        let node = graph.node(idx);
        remap[idx.index()] = Some(b.input(&node.name, node.ty.clone()));
    }
    // Constants first: a group's weights must exist when its first member is rebuilt.
    for idx in graph.dag.node_indices() {
        let node = graph.node(idx);
        if let Op::Constant(data) = &node.op {
            remap[idx.index()] = Some(b.constant(&node.name, (**data).clone(), node.ty.dtype));
        }
    }
    for idx in graph.topo_order() {
        if remap[idx.index()].is_some() {
            continue;
        }
        let node = graph.node(idx);
        let ins: Vec<NodeIndex> = graph
            .inputs_of(idx)
            .iter()
            .map(|i| remap[i.index()].expect("topological order visits producers first"))
            .collect();
        let Some(&gi) = group_of.get(&idx) else {
            remap[idx.index()] = Some(b.add(&node.name, node.op.clone(), &ins)?);
            continue;
        };
        let (a, members) = &chosen[gi];
        let weights: Vec<NodeIndex> = members
            .iter()
            .map(|&m| remap[graph.inputs_of(m)[1].index()].expect("constants are built first"))
            .collect();
        let concat = b.add(
            &format!("{}/merged_w", node.name),
            Op::Concat { axis: 1 },
            &weights,
        )?;
        let x = remap[a.index()].expect("the shared operand precedes its users");
        let wide = b.add(&format!("{}/merged", node.name), Op::MatMul, &[x, concat])?;
        let axis = b.ty(wide).shape.len() - 1;
        let mut start = 0;
        for &m in members {
            let n = last(&graph.node(m).ty);
            let slice = Op::Slice {
                axes: vec![axis],
                starts: vec![start],
                ends: vec![start + n],
                steps: vec![1],
            };
            remap[m.index()] = Some(b.add(&graph.node(m).name, slice, &[wide])?);
            start += n;
        }
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|(name, idx)| {
            (
                name.clone(),
                remap[idx.index()].expect("outputs are graph nodes"),
            )
        })
        .collect();
    Ok((b.finish(outputs), report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{DType, TensorData};

    /// `x: [4, 8]` times constants of the given shapes (`None`: a graph input instead).
    fn graph(weights: &[([usize; 2], bool)]) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![4, 8], DType::F32));
        let x2 = b
            .add(
                "x2",
                Op::Slice {
                    axes: vec![1],
                    starts: vec![0],
                    ends: vec![4],
                    steps: vec![1],
                },
                &[x],
            )
            .unwrap();
        let mut outs = vec![];
        for (i, &(shape, constant)) in weights.iter().enumerate() {
            let ty = TensorType::new(shape.to_vec(), DType::F32);
            let w = if constant {
                let values = (0..shape[0] * shape[1]).map(|v| v as f32).collect();
                b.constant(
                    &format!("w{i}"),
                    TensorData::F32 {
                        shape: shape.to_vec(),
                        values,
                    },
                    DType::F32,
                )
            } else {
                b.input(&format!("w{i}"), ty)
            };
            let lhs = if shape[0] == 8 { x } else { x2 };
            let y = b.add(&format!("y{i}"), Op::MatMul, &[lhs, w]).unwrap();
            outs.push((format!("y{i}"), y));
        }
        b.finish(outs)
    }

    #[test]
    fn products_sharing_an_operand_with_constant_weights_are_grouped() {
        let g = graph(&[
            ([8, 3], true),
            ([8, 5], true),
            ([8, 2], false),
            ([4, 6], true),
        ]);
        let groups = shared_products(&g);
        assert_eq!(groups.len(), 1);
        let members: Vec<&str> = groups
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|&m| g.node(m).name.as_str())
            .collect();
        assert_eq!(members, ["y0", "y1"]);
    }

    #[test]
    fn a_single_product_is_left_alone() {
        let g = graph(&[([8, 3], true), ([4, 6], true)]);
        assert!(shared_products(&g).is_empty());
        let (out, report) = merge_matmuls(&g, &CostModel::default()).unwrap();
        assert_eq!(report, Merged::default());
        assert_eq!(out.dag.node_count(), g.dag.node_count());
    }
}
