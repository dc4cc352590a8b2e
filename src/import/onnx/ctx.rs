//! The view of one ONNX node that op builders work with: its inputs, attributes and outputs.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};
use petgraph::graph::NodeIndex;

use super::tensor;
use crate::graph::{DType, Op, TensorData, TensorType};
use crate::import::builder::GraphBuilder;
use crate::import::ImportError;

/// One ONNX node being imported.
pub struct NodeCtx<'a> {
    /// The graph under construction.
    pub b: &'a mut GraphBuilder,
    /// The node.
    pub node: &'a NodeProto,
    /// The node's inputs (`None` for omitted optional inputs).
    pub inputs: Vec<Option<NodeIndex>>,
    /// The model file, for errors.
    pub file: &'a str,
    /// The model's default-domain opset version.
    pub opset: i64,
}

impl NodeCtx<'_> {
    /// The node's display name: its ONNX name, or its first output's.
    pub fn display_name(&self) -> String {
        node_name(self.node)
    }

    /// An error about this node.
    pub fn err(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Node {
            file: self.file.to_string(),
            node: self.display_name(),
            op: self.node.op_type.clone(),
            reason: reason.into(),
        }
    }

    /// The name of output `k` (used for the node producing it).
    pub fn output_name(&self, k: usize) -> String {
        self.node
            .output
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("{}:{k}", self.display_name()))
    }

    /// Required input `i`.
    pub fn input(&self, i: usize) -> Result<NodeIndex, ImportError> {
        self.opt_input(i)
            .ok_or_else(|| self.err(format!("input {i} is required")))
    }

    /// Optional input `i`.
    pub fn opt_input(&self, i: usize) -> Option<NodeIndex> {
        self.inputs.get(i).copied().flatten()
    }

    /// The type of a node.
    pub fn ty(&self, idx: NodeIndex) -> &TensorType {
        self.b.ty(idx)
    }

    /// The value of optional input `i` as integers; an error if present but not constant.
    pub fn const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self.const_input(i, what)?.map(|d| d.to_i64()))
    }

    /// Whether input `i` is present and a constant (without copying its value).
    pub fn is_const(&self, i: usize) -> bool {
        self.opt_input(i)
            .is_some_and(|idx| self.b.value(idx).is_some())
    }

    /// The value of optional input `i`; an error if present but not constant.
    pub fn const_input(&self, i: usize, what: &str) -> Result<Option<TensorData>, ImportError> {
        match self.opt_input(i) {
            None => Ok(None),
            Some(idx) => self.b.value(idx).cloned().map(Some).ok_or_else(|| {
                self.err(format!(
                    "the {what} (input {i}, `{}`) must be a constant; ttfuse needs static shapes",
                    self.b.name(idx)
                ))
            }),
        }
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn attr_typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&AttributeProto>, ImportError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match a.type_.enum_value() {
                Ok(t) if t == want || t == AttributeType::UNDEFINED => Ok(Some(a)),
                other => Err(self.err(format!(
                    "attribute `{name}` should be {want:?}, found {other:?}"
                ))),
            },
        }
    }

    /// Integer attribute, if set.
    pub fn attr_opt_i(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.attr_typed(name, AttributeType::INT)?.map(|a| a.i))
    }

    /// Integer attribute with a default.
    pub fn attr_i(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.attr_opt_i(name)?.unwrap_or(default))
    }

    /// Float attribute with a default.
    pub fn attr_f(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self
            .attr_typed(name, AttributeType::FLOAT)?
            .map_or(default, |a| a.f))
    }

    /// Integer-list attribute, if set.
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .attr_typed(name, AttributeType::INTS)?
            .map(|a| a.ints.clone()))
    }

    /// Float-list attribute, if set.
    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .attr_typed(name, AttributeType::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    /// String attribute with a default.
    pub fn attr_s(&self, name: &str, default: &str) -> Result<String, ImportError> {
        Ok(self.attr_typed(name, AttributeType::STRING)?.map_or_else(
            || default.to_string(),
            |a| String::from_utf8_lossy(&a.s).into_owned(),
        ))
    }

    /// Tensor attribute, decoded, if set.
    pub fn attr_tensor(&self, name: &str) -> Result<Option<(TensorData, DType)>, ImportError> {
        match self.attr_typed(name, AttributeType::TENSOR)? {
            None => Ok(None),
            Some(a) => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.err(format!("attribute `{name}` has no tensor")))?;
                tensor::decode(t)
                    .map(Some)
                    .map_err(|e| self.err(format!("attribute `{name}`: {e}")))
            }
        }
    }

    /// Normalizes a possibly negative axis for a tensor of rank `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize, ImportError> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| self.err(format!("axis {axis} is out of range for rank {rank}")))
    }

    /// Adds `op` as the node's output 0.
    pub fn add(&mut self, op: Op, inputs: &[NodeIndex]) -> Result<NodeIndex, ImportError> {
        let name = self.output_name(0);
        self.add_as(&name, op, inputs)
    }

    /// Adds an intermediate node named `<output 0>/<suffix>`.
    pub fn add_tmp(
        &mut self,
        suffix: &str,
        op: Op,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, ImportError> {
        let name = format!("{}/{suffix}", self.output_name(0));
        self.add_as(&name, op, inputs)
    }

    /// Adds a node with an explicit name.
    pub fn add_as(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, ImportError> {
        let op_name = op.name();
        self.b
            .add(name, op, inputs)
            .map_err(|e| self.err(format!("{op_name}: {e}")))
    }

    /// Adds a constant named `<output 0>/<suffix>`.
    pub fn constant(&mut self, suffix: &str, data: TensorData, dtype: DType) -> NodeIndex {
        let name = if suffix.is_empty() {
            self.output_name(0)
        } else {
            format!("{}/{suffix}", self.output_name(0))
        };
        self.b.constant(&name, data, dtype)
    }

    /// A scalar constant of the float type `dtype` (for scales and offsets).
    pub fn scalar(&mut self, suffix: &str, value: f32, dtype: DType) -> NodeIndex {
        self.constant(suffix, TensorData::f32(vec![], vec![value]), dtype)
    }
}

/// A node's display name: its ONNX name, or its first output's, or its op type.
pub fn node_name(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(o) = node.output.iter().find(|o| !o.is_empty()) {
        o.clone()
    } else {
        node.op_type.clone()
    }
}
