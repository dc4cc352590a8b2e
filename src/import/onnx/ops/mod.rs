//! The ONNX op table: op type -> builder function, registered per op family.

mod composite;
mod math;
mod nn;
mod shape;

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use super::NodeCtx;
use crate::import::ImportError;

/// Builds the graph nodes for one ONNX node and returns its outputs in order (possibly fewer
/// than the node declares: the rest are unsupported).
pub type OpBuilder = fn(&mut NodeCtx) -> Result<Vec<NodeIndex>, ImportError>;

/// ONNX op type -> builder.
pub type OpTable = BTreeMap<&'static str, OpBuilder>;

/// The table of every supported ONNX op (default domain).
pub fn table() -> OpTable {
    let mut t = OpTable::new();
    math::register(&mut t);
    composite::register(&mut t);
    nn::register(&mut t);
    shape::register(&mut t);
    t
}

/// The supported ONNX op types, sorted.
pub fn supported() -> Vec<&'static str> {
    table().into_keys().collect()
}
