//! The tensor-graph IR: a petgraph DAG of [`Op`] nodes, each producing one tensor with a static
//! shape and dtype. Edges run producer -> consumer and carry the consumer's input slot.

pub mod composite;
pub mod fold;
pub mod im2col;
pub mod infer;
pub mod op;
pub mod tensor;
pub mod validate;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

pub use composite::{AttentionMask, MlpHidden};
pub use op::{BinaryOp, DType, Op, ReduceOp, UnaryOp};
pub use tensor::TensorData;

/// Shape and element type of a tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    /// Static dimensions.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl TensorType {
    /// A new tensor type.
    pub fn new(shape: Vec<usize>, dtype: DType) -> Self {
        TensorType { shape, dtype }
    }

    /// Element count.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A node: one op producing one tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// A unique, stable name (the ONNX output name, or a generated one).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// The type of the tensor the node produces.
    pub ty: TensorType,
}

/// A tensor graph with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The DAG. Edge weights are input slots of the target node.
    pub dag: DiGraph<Node, usize>,
    /// Graph inputs in declaration order (nodes with [`Op::Input`]).
    pub inputs: Vec<NodeIndex>,
    /// Graph outputs in declaration order: (output name, producing node).
    pub outputs: Vec<(String, NodeIndex)>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node fed by `inputs` (in slot order) and returns its index.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        ty: TensorType,
        inputs: &[NodeIndex],
    ) -> NodeIndex {
        let idx = self.dag.add_node(Node {
            name: name.into(),
            op,
            ty,
        });
        for (slot, &src) in inputs.iter().enumerate() {
            self.dag.add_edge(src, idx, slot);
        }
        idx
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeIndex {
        let idx = self.add(name, Op::Input, ty, &[]);
        self.inputs.push(idx);
        idx
    }

    /// The node at `idx`.
    pub fn node(&self, idx: NodeIndex) -> &Node {
        &self.dag[idx]
    }

    /// The producers of `idx`'s inputs, in slot order.
    pub fn inputs_of(&self, idx: NodeIndex) -> Vec<NodeIndex> {
        let mut edges: Vec<(usize, NodeIndex)> = self
            .dag
            .edges_directed(idx, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The consumers of `idx` (each once, in index order).
    pub fn users_of(&self, idx: NodeIndex) -> Vec<NodeIndex> {
        let mut users: Vec<NodeIndex> = self
            .dag
            .edges_directed(idx, Direction::Outgoing)
            .map(|e| e.target())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// The single node reading `idx`, when exactly one does and `idx` is not a graph output.
    pub fn only_user(&self, idx: NodeIndex) -> Option<NodeIndex> {
        let is_out = self.outputs.iter().any(|(_, o)| *o == idx);
        match self.users_of(idx).as_slice() {
            &[u] if !is_out => Some(u),
            _ => None,
        }
    }

    /// Nodes in a deterministic topological order (ties broken by node index).
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        let n = self.dag.node_count();
        let mut indegree: Vec<usize> = (0..n)
            .map(|i| {
                self.dag
                    .edges_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(NodeIndex::new(i));
            for e in self
                .dag
                .edges_directed(NodeIndex::new(i), Direction::Outgoing)
            {
                let t = e.target().index();
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.insert(t);
                }
            }
        }
        order
    }
}
