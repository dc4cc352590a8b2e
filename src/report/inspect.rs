//! `inspect`: a model's inputs, outputs, op histogram and parameter count.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::explain::op_histogram;
use crate::graph::{Graph, Op};

/// A graph input or output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Port {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: String,
}

/// What `inspect` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// The model's name.
    pub model: String,
    /// Graph inputs in order.
    pub inputs: Vec<Port>,
    /// Graph outputs in order.
    pub outputs: Vec<Port>,
    /// Op name -> count (inputs and constants excluded).
    pub ops: BTreeMap<String, usize>,
    /// Elements in all constant tensors (weights and other constants).
    pub parameters: usize,
    /// Constant tensors.
    pub constants: usize,
}

impl Inspection {
    /// Inspects `graph`.
    pub fn new(model: &str, graph: &Graph) -> Inspection {
        let port = |name: &str, i| {
            let n = graph.node(i);
            Port {
                name: name.to_string(),
                shape: n.ty.shape.clone(),
                dtype: format!("{:?}", n.ty.dtype),
            }
        };
        let (mut parameters, mut constants) = (0, 0);
        for i in graph.dag.node_indices() {
            if let Op::Constant(data) = &graph.node(i).op {
                parameters += data.len();
                constants += 1;
            }
        }
        Inspection {
            model: model.to_string(),
            inputs: graph
                .inputs
                .iter()
                .map(|&i| port(&graph.node(i).name, i))
                .collect(),
            outputs: graph.outputs.iter().map(|(n, i)| port(n, *i)).collect(),
            ops: op_histogram(graph),
            parameters,
            constants,
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an inspection always serializes")
    }

    /// The text a person reads.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.model);
        for (label, ports) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let _ = writeln!(s, "{label}:");
            for p in ports {
                let _ = writeln!(s, "  {:<24} {:?} {}", p.name, p.shape, p.dtype);
            }
        }
        let total: usize = self.ops.values().sum();
        let _ = writeln!(s, "ops: {total}");
        for (op, n) in &self.ops {
            let _ = writeln!(s, "  {op:<24} {n:>5}");
        }
        let _ = writeln!(
            s,
            "parameters: {} values in {} constant tensor(s)",
            self.parameters, self.constants
        );
        s
    }
}
