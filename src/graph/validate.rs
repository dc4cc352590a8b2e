//! Structural checks of a [`Graph`]: what every importer guarantees and every rewrite must keep.

use std::collections::BTreeSet;

use thiserror::Error;

use super::infer::{infer, ShapeError};
use super::{Graph, Op, TensorType};

/// A broken graph invariant, naming the node.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ValidateError {
    /// The DAG has a cycle.
    #[error("the graph has a cycle: {0} node(s) cannot be ordered")]
    Cycle(usize),
    /// Two nodes share a name.
    #[error("two nodes are named `{0}`")]
    DuplicateName(String),
    /// Two outputs share a name.
    #[error("two graph outputs are named `{0}`")]
    DuplicateOutput(String),
    /// `graph.inputs` and the `Input` nodes disagree.
    #[error("node `{0}`: Input nodes and graph.inputs disagree")]
    InputList(String),
    /// An output refers to a node that does not exist.
    #[error("graph output `{0}` refers to a missing node")]
    MissingOutput(String),
    /// A node's inputs do not fit its op.
    #[error("node `{node}`: {source}")]
    Shape {
        /// The node.
        node: String,
        /// The inference failure.
        #[source]
        source: ShapeError,
    },
    /// A node's recorded type is not the inferred one.
    #[error("node `{node}` records {recorded:?} but its op gives {inferred:?}")]
    Type {
        /// The node.
        node: String,
        /// The type stored on the node.
        recorded: TensorType,
        /// The type inference gives.
        inferred: TensorType,
    },
}

/// Checks that `graph` is acyclic, uniquely named, that its input and output lists match its
/// nodes, and that every node's type is what [`infer`] gives for its op and inputs (a
/// constant's shape must match its data; its element type may be any of the same kind).
pub fn validate(graph: &Graph) -> Result<(), ValidateError> {
    let order = graph.topo_order();
    if order.len() != graph.dag.node_count() {
        return Err(ValidateError::Cycle(graph.dag.node_count() - order.len()));
    }
    let mut names = BTreeSet::new();
    for node in graph.dag.node_weights() {
        if !names.insert(node.name.as_str()) {
            return Err(ValidateError::DuplicateName(node.name.clone()));
        }
    }
    let listed: BTreeSet<usize> = graph.inputs.iter().map(|i| i.index()).collect();
    for idx in graph.dag.node_indices() {
        let node = graph.node(idx);
        if (node.op == Op::Input) != listed.contains(&idx.index()) {
            return Err(ValidateError::InputList(node.name.clone()));
        }
    }
    let mut outs = BTreeSet::new();
    for (name, idx) in &graph.outputs {
        if graph.dag.node_weight(*idx).is_none() {
            return Err(ValidateError::MissingOutput(name.clone()));
        }
        if !outs.insert(name.as_str()) {
            return Err(ValidateError::DuplicateOutput(name.clone()));
        }
    }
    for idx in order {
        let node = graph.node(idx);
        if node.op == Op::Input {
            continue;
        }
        let srcs = graph.inputs_of(idx);
        let types: Vec<&TensorType> = srcs.iter().map(|&s| &graph.node(s).ty).collect();
        let inferred = infer(&node.op, &types).map_err(|source| ValidateError::Shape {
            node: node.name.clone(),
            source,
        })?;
        let fits = match node.op {
            // Constant data holds f32 or i64; the node keeps the source element type.
            Op::Constant(_) => {
                inferred.shape == node.ty.shape
                    && inferred.dtype.is_float() == node.ty.dtype.is_float()
            }
            _ => inferred == node.ty,
        };
        if !fits {
            return Err(ValidateError::Type {
                node: node.name.clone(),
                recorded: node.ty.clone(),
                inferred,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{DType, UnaryOp};

    #[test]
    fn catches_wrong_types_and_duplicate_names() {
        let mut g = Graph::new();
        let ty = TensorType::new(vec![4, 8], DType::F32);
        let x = g.add_input("x", ty.clone());
        let e = g.add("e", Op::Unary(UnaryOp::Exp), ty.clone(), &[x]);
        g.outputs.push(("y".into(), e));
        assert_eq!(validate(&g), Ok(()));

        let mut bad = g.clone();
        bad.add("t", Op::Transpose { perm: vec![1, 0] }, ty.clone(), &[x]);
        let err = validate(&bad).unwrap_err();
        assert!(
            matches!(&err, ValidateError::Type { node, .. } if node == "t"),
            "{err}"
        );

        let mut dup = g.clone();
        dup.add("e", Op::Unary(UnaryOp::Relu), ty.clone(), &[x]);
        assert_eq!(
            validate(&dup),
            Err(ValidateError::DuplicateName("e".into()))
        );

        let mut outs = g.clone();
        outs.outputs.push(("y".into(), x));
        assert_eq!(
            validate(&outs),
            Err(ValidateError::DuplicateOutput("y".into()))
        );
    }
}
