//! Graph construction shared by the importers: every added node is typed by shape inference,
//! nodes whose inputs are all constants are folded into constants by the reference
//! interpreter, names are kept unique, and [`GraphBuilder::finish`] drops unused nodes.

use std::collections::BTreeSet;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use thiserror::Error;

use crate::graph::infer::{infer, ShapeError};
use crate::graph::{DType, Graph, Op, TensorData, TensorType};
use crate::reference::{eval_op, RefError};

/// Why a node could not be added.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The op does not fit its input types.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// Folding the op over constant inputs failed.
    #[error("constant folding failed: {0}")]
    Fold(#[from] RefError),
}

/// A [`Graph`] under construction.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: Graph,
    names: BTreeSet<String>,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn unique(&mut self, name: &str) -> String {
        let mut candidate = name.to_string();
        let mut k = 1;
        while self.names.contains(&candidate) {
            candidate = format!("{name}_{k}");
            k += 1;
        }
        self.names.insert(candidate.clone());
        candidate
    }

    /// Adds a graph input.
    pub fn input(&mut self, name: &str, ty: TensorType) -> NodeIndex {
        let name = self.unique(name);
        self.graph.add_input(name, ty)
    }

    /// Adds a constant of element type `dtype` (the data holds floats as f32, integers as i64).
    pub fn constant(&mut self, name: &str, data: TensorData, dtype: DType) -> NodeIndex {
        self.shared_constant(name, Arc::new(data), dtype)
    }

    /// Adds a constant whose data another graph holds too (no copy).
    pub fn shared_constant(
        &mut self,
        name: &str,
        data: Arc<TensorData>,
        dtype: DType,
    ) -> NodeIndex {
        let name = self.unique(name);
        let ty = TensorType::new(data.shape().to_vec(), dtype);
        self.graph.add(name, Op::Constant(data), ty, &[])
    }

    /// Adds `op` over `inputs`, typed by inference; folds it into a constant when every input is
    /// a constant.
    pub fn add(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, BuildError> {
        let types: Vec<&TensorType> = inputs.iter().map(|&i| self.ty(i)).collect();
        let ty = infer(&op, &types)?;
        let consts: Option<Vec<&TensorData>> = inputs.iter().map(|&i| self.value(i)).collect();
        if let Some(values) = consts.filter(|_| !inputs.is_empty()) {
            let data = eval_op(&op, &values, &ty)?;
            return Ok(self.constant(name, data, ty.dtype));
        }
        let name = self.unique(name);
        Ok(self.graph.add(name, op, ty, inputs))
    }

    /// The type of node `idx`.
    pub fn ty(&self, idx: NodeIndex) -> &TensorType {
        &self.graph.node(idx).ty
    }

    /// The value of node `idx` if it is a constant.
    pub fn value(&self, idx: NodeIndex) -> Option<&TensorData> {
        match &self.graph.node(idx).op {
            Op::Constant(data) => Some(data),
            _ => None,
        }
    }

    /// The name of node `idx`.
    pub fn name(&self, idx: NodeIndex) -> &str {
        &self.graph.node(idx).name
    }

    /// The graph with `outputs` set, keeping only the inputs and the nodes the outputs depend on
    /// (in their original relative order).
    pub fn finish(self, outputs: Vec<(String, NodeIndex)>) -> Graph {
        let g = &self.graph;
        let mut live = vec![false; g.dag.node_count()];
        let mut stack: Vec<NodeIndex> = outputs.iter().map(|(_, i)| *i).collect();
        stack.extend(g.inputs.iter().copied());
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut live[n.index()], true) {
                stack.extend(g.inputs_of(n));
            }
        }
        let mut out = Graph::new();
        let mut remap = vec![None; g.dag.node_count()];
        for i in (0..g.dag.node_count()).filter(|&i| live[i]) {
            let idx = NodeIndex::new(i);
            let node = g.node(idx);
            let srcs: Vec<NodeIndex> = g
                .inputs_of(idx)
                .iter()
                .filter_map(|s| remap[s.index()])
                .collect();
            let new = if node.op == Op::Input {
                out.add_input(node.name.clone(), node.ty.clone())
            } else {
                out.add(node.name.clone(), node.op.clone(), node.ty.clone(), &srcs)
            };
            remap[i] = Some(new);
        }
        out.outputs = outputs
            .into_iter()
            .filter_map(|(name, i)| Some((name, remap[i.index()]?)))
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{BinaryOp, UnaryOp};

    #[test]
    fn folds_constants_and_prunes_dead_nodes() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![2], DType::F32));
        let c = b.constant("c", TensorData::f32(vec![2], vec![1.0, 4.0]), DType::F32);
        let s = b.add("s", Op::Unary(UnaryOp::Sqrt), &[c]).unwrap();
        assert_eq!(b.value(s), Some(&TensorData::f32(vec![2], vec![1.0, 2.0])));
        let y = b.add("y", Op::Binary(BinaryOp::Add), &[x, s]).unwrap();
        assert!(b.value(y).is_none());
        let unused = b.add("s", Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        assert_eq!(b.name(unused), "s_1");
        let g = b.finish(vec![("y".into(), y)]);
        let names: Vec<&str> = g.dag.node_weights().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x", "s", "y"]);
        assert_eq!(g.inputs.len(), 1);
        assert_eq!(g.node(g.outputs[0].1).name, "y");
    }

    #[test]
    fn shape_errors_surface() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![2, 3], DType::F32));
        let y = b.input("y", TensorType::new(vec![4, 5], DType::F32));
        assert!(matches!(
            b.add("m", Op::MatMul, &[x, y]),
            Err(BuildError::Shape(_))
        ));
    }
}
