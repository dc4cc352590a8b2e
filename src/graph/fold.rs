//! Constant folding of a whole graph: every op whose inputs are all constants becomes a
//! constant, computed by the reference interpreter. Importers fold as they build; this pass
//! folds graphs that were built otherwise, such as the optimizer's extracted graph.

use petgraph::graph::NodeIndex;

use crate::graph::{Graph, Op};
use crate::import::builder::{BuildError, GraphBuilder};

/// Returns `graph` with its constant subgraphs folded and unused nodes dropped; inputs keep
/// their order, outputs their names.
pub fn fold_constants(graph: &Graph) -> Result<Graph, BuildError> {
    rebuild(graph, |_, _, _| Ok(None))
}

/// Rebuilds `graph` through a [`GraphBuilder`] (which folds constants and drops unused nodes),
/// in topological order: `replace(builder, node, rebuilt)` may build a replacement for an op
/// node and return it, or return `None` to keep the node as it is; `rebuilt[i]` is the new
/// index of original node `i`, for every node already visited (all of `node`'s ancestors).
/// Inputs keep their order, outputs their names.
pub fn rebuild(
    graph: &Graph,
    mut replace: impl FnMut(
        &mut GraphBuilder,
        NodeIndex,
        &[Option<NodeIndex>],
    ) -> Result<Option<NodeIndex>, BuildError>,
) -> Result<Graph, BuildError> {
    let mut builder = GraphBuilder::new();
    let mut remap: Vec<Option<NodeIndex>> = vec![None; graph.dag.node_count()];
    for &idx in &graph.inputs {
        let node = graph.node(idx);
        remap[idx.index()] = Some(builder.input(&node.name, node.ty.clone()));
    }
    for idx in graph.topo_order() {
        let node = graph.node(idx);
        let new = match &node.op {
            Op::Input => continue,
            Op::Constant(data) => builder.shared_constant(&node.name, data.clone(), node.ty.dtype),
            op => match replace(&mut builder, idx, &remap)? {
                Some(n) => n,
                None => {
                    let inputs: Vec<NodeIndex> = graph
                        .inputs_of(idx)
                        .iter()
                        .map(|i| {
                            remap[i.index()].expect("topological order visits producers first")
                        })
                        .collect();
                    builder.add(&node.name, op.clone(), &inputs)?
                }
            },
        };
        remap[idx.index()] = Some(new);
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
    Ok(builder.finish(outputs))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::graph::{BinaryOp, DType, TensorData, TensorType, UnaryOp};
    use crate::reference;

    /// `x * recip(4)`: the reciprocal of a constant folds to the constant 0.25, numerics kept.
    #[test]
    fn an_op_over_constants_becomes_a_constant() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(vec![2, 2], DType::F32));
        let four = TensorData::F32 {
            shape: vec![],
            values: vec![4.0],
        };
        let c = g.add(
            "c",
            Op::Constant(Arc::new(four)),
            TensorType::new(vec![], DType::F32),
            &[],
        );
        let r = g.add(
            "r",
            Op::Unary(UnaryOp::Recip),
            TensorType::new(vec![], DType::F32),
            &[c],
        );
        let y = g.add(
            "y",
            Op::Binary(BinaryOp::Mul),
            TensorType::new(vec![2, 2], DType::F32),
            &[x, r],
        );
        g.outputs.push(("y".into(), y));

        let folded = fold_constants(&g).unwrap();
        let ops: Vec<String> = folded
            .topo_order()
            .iter()
            .map(|&i| folded.node(i).op.name())
            .collect();
        assert!(!ops.contains(&"Recip".to_string()), "{ops:?}");
        let r_node = folded
            .dag
            .node_indices()
            .find(|&i| folded.node(i).name == "r")
            .unwrap();
        match &folded.node(r_node).op {
            Op::Constant(d) => assert_eq!(d.to_f32(), vec![0.25]),
            other => panic!("r is {other:?}"),
        }

        let inputs = BTreeMap::from([(
            "x".to_string(),
            TensorData::F32 {
                shape: vec![2, 2],
                values: vec![1.0, 2.0, 3.0, 4.0],
            },
        )]);
        assert_eq!(
            reference::run(&g, &inputs).unwrap(),
            reference::run(&folded, &inputs).unwrap()
        );
    }
}
