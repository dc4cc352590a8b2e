//! The ONNX importer: decodes a `ModelProto`, binds input shapes, orders the nodes and builds
//! each through the op table in [`ops`]; constant subgraphs (shape arithmetic) fold away.

mod ctx;
mod external;
pub mod ops;
pub mod tensor;
mod wire;

use std::collections::{BTreeMap, BTreeSet};

use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{GraphProto, NodeProto, ValueInfoProto};
use petgraph::graph::NodeIndex;

pub use ctx::NodeCtx;
use external::DataFiles;
use wire::Initializer;

use super::builder::GraphBuilder;
use super::{ImportError, ImportOptions};
use crate::graph::{Graph, TensorType};

/// Imports ONNX model bytes; `file` names the model in errors, and external data files are
/// looked up beside it. Weights are converted straight from `bytes` into their values.
pub fn import(file: &str, bytes: &[u8], opts: &ImportOptions) -> Result<Graph, ImportError> {
    let (mut model, initializers) =
        wire::parse_model(bytes).map_err(|e| ImportError::Malformed {
            file: file.to_string(),
            format: "ONNX",
            reason: format!(
                "protobuf decoding failed ({e}); the file is truncated, corrupt or not ONNX"
            ),
        })?;
    let malformed = |reason: String| ImportError::Malformed {
        file: file.to_string(),
        format: "ONNX",
        reason,
    };
    let graph = model
        .graph
        .take()
        .ok_or_else(|| malformed("it has no graph (an empty or non-ONNX file?)".into()))?;
    if graph.output.is_empty() {
        return Err(malformed("its graph declares no outputs".into()));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .filter(|&v| v >= 1)
        .ok_or_else(|| {
            malformed("it declares no opset for the default ONNX domain (a truncated file?)".into())
        })?;
    Importer {
        file,
        opts,
        opset,
        b: GraphBuilder::new(),
        values: BTreeMap::new(),
        unproduced: BTreeMap::new(),
    }
    .run(graph, initializers)
}

struct Importer<'a> {
    file: &'a str,
    opts: &'a ImportOptions,
    opset: i64,
    b: GraphBuilder,
    /// ONNX value name -> node producing it.
    values: BTreeMap<String, NodeIndex>,
    /// Outputs a node declares but its builder does not produce -> the reason, for users.
    unproduced: BTreeMap<String, String>,
}

impl Importer<'_> {
    fn run(
        mut self,
        graph: GraphProto,
        initializers: Vec<Initializer>,
    ) -> Result<Graph, ImportError> {
        if let Some(sparse) = graph.sparse_initializer.first() {
            let name = sparse.values.as_ref().map_or("", |v| v.name.as_str());
            return Err(ImportError::Malformed {
                file: self.file.to_string(),
                format: "ONNX",
                reason: format!("sparse initializer `{name}` is not supported; store it dense"),
            });
        }
        let mut external = DataFiles::new(self.file);
        for Initializer { proto: init, raw } in initializers {
            let (data, dtype) = if tensor::is_external(&init) {
                external.read(&init)?
            } else {
                tensor::decode_with_raw(&init, raw).map_err(|reason| ImportError::Malformed {
                    file: self.file.to_string(),
                    format: "ONNX",
                    reason: format!("initializer `{}`: {reason}", init.name),
                })?
            };
            let idx = self.b.constant(&init.name, data, dtype);
            self.values.insert(init.name.clone(), idx);
        }
        // Some exporters also list node outputs (e.g. ConstantOfShape weights) as graph
        // inputs; the node defines them.
        let produced: BTreeSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .collect();
        for input in &graph.input {
            if !self.values.contains_key(&input.name) && !produced.contains(input.name.as_str()) {
                let ty = self.input_type(input)?;
                let idx = self.b.input(&input.name, ty);
                self.values.insert(input.name.clone(), idx);
            }
        }
        let table = ops::table();
        for node in self.order(&graph.node)? {
            self.build(node, &table)?;
        }
        let mut outputs = Vec::new();
        for out in &graph.output {
            if let Some(reason) = self.unproduced.get(&out.name) {
                return Err(ImportError::Node {
                    file: self.file.to_string(),
                    node: "graph output".into(),
                    op: "Output".into(),
                    reason: reason.clone(),
                });
            }
            let idx =
                self.values
                    .get(&out.name)
                    .copied()
                    .ok_or_else(|| ImportError::MissingValue {
                        file: self.file.to_string(),
                        node: "graph output".into(),
                        value: out.name.clone(),
                    })?;
            outputs.push((out.name.clone(), idx));
        }
        Ok(self.b.finish(outputs))
    }

    /// The static type of a graph input, with symbolic dims bound from the options.
    fn input_type(&self, input: &ValueInfoProto) -> Result<TensorType, ImportError> {
        let bad = |reason: String| ImportError::Malformed {
            file: self.file.to_string(),
            format: "ONNX",
            reason: format!("graph input `{}`: {reason}", input.name),
        };
        let Some(TypeValue::TensorType(tt)) = input.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(bad("it is not a tensor".into()));
        };
        let dtype = tensor::dtype_of(tt.elem_type).ok_or_else(|| {
            bad(format!(
                "element type {} is not supported",
                tensor::type_name(tt.elem_type)
            ))
        })?;
        if let Some(shape) = self.opts.input_shapes.get(&input.name) {
            return Ok(TensorType::new(shape.clone(), dtype));
        }
        let dims = tt
            .shape
            .as_ref()
            .map(|s| s.dim.as_slice())
            .unwrap_or_default();
        let symbolic = |dim: String| ImportError::SymbolicDim {
            file: self.file.to_string(),
            input: input.name.clone(),
            dim,
        };
        let mut shape = Vec::with_capacity(dims.len());
        for (i, d) in dims.iter().enumerate() {
            let v = match &d.value {
                Some(DimValue::DimValue(v)) => {
                    usize::try_from(*v).map_err(|_| bad(format!("negative dimension {v}")))?
                }
                Some(DimValue::DimParam(p)) => {
                    *self.opts.dims.get(p).ok_or_else(|| symbolic(p.clone()))?
                }
                _ => return Err(symbolic(format!("#{i} (unnamed)"))),
            };
            shape.push(v);
        }
        Ok(TensorType::new(shape, dtype))
    }

    /// The nodes in dependency order; reports undefined values and cycles.
    fn order<'g>(&self, nodes: &'g [NodeProto]) -> Result<Vec<&'g NodeProto>, ImportError> {
        let mut producer: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), i);
            }
        }
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes.len()];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for input in n.input.iter().filter(|s| !s.is_empty()) {
                if let Some(&p) = producer.get(input.as_str()) {
                    if deps[i].insert(p) {
                        users[p].push(i);
                    }
                } else if !self.values.contains_key(input) {
                    return Err(ImportError::MissingValue {
                        file: self.file.to_string(),
                        node: ctx::node_name(n),
                        value: input.clone(),
                    });
                }
            }
        }
        let mut remaining: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
        let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| remaining[i] == 0).collect();
        let mut order = Vec::with_capacity(nodes.len());
        while let Some(i) = ready.pop_first() {
            order.push(&nodes[i]);
            for &u in &users[i] {
                remaining[u] -= 1;
                if remaining[u] == 0 {
                    ready.insert(u);
                }
            }
        }
        if order.len() != nodes.len() {
            let stuck: Vec<String> = (0..nodes.len())
                .filter(|&i| remaining[i] > 0)
                .map(|i| format!("`{}`", ctx::node_name(&nodes[i])))
                .collect();
            return Err(ImportError::Cycle {
                file: self.file.to_string(),
                nodes: stuck.join(", "),
            });
        }
        Ok(order)
    }

    fn build(&mut self, node: &NodeProto, table: &ops::OpTable) -> Result<(), ImportError> {
        let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        let builder = table
            .get(node.op_type.as_str())
            .filter(|_| default_domain)
            .ok_or_else(|| {
                let op = if default_domain {
                    node.op_type.clone()
                } else {
                    format!("{}::{}", node.domain, node.op_type)
                };
                ImportError::Unsupported {
                    file: self.file.to_string(),
                    node: ctx::node_name(node),
                    op,
                }
            })?;
        let mut inputs = Vec::with_capacity(node.input.len());
        for name in &node.input {
            if let Some(reason) = self.unproduced.get(name) {
                return Err(ImportError::Node {
                    file: self.file.to_string(),
                    node: ctx::node_name(node),
                    op: node.op_type.clone(),
                    reason: format!("reads `{name}`: {reason}"),
                });
            }
            inputs.push(if name.is_empty() {
                None
            } else {
                self.values.get(name).copied()
            });
        }
        let mut cx = NodeCtx {
            b: &mut self.b,
            node,
            inputs,
            file: self.file,
            opset: self.opset,
        };
        let outs = builder(&mut cx)?;
        for (k, name) in node
            .output
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.is_empty())
        {
            match outs.get(k) {
                Some(&idx) => {
                    self.values.insert(name.clone(), idx);
                }
                None => {
                    let reason = format!(
                        "output {k} of node `{}` ({}) is not supported by ttfuse",
                        ctx::node_name(node),
                        node.op_type
                    );
                    self.unproduced.insert(name.clone(), reason);
                }
            }
        }
        Ok(())
    }
}
