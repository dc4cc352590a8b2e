//! TTNN fallback ops: graph ops without a TT-Lang kernel run on the host through the reference
//! implementation, so a program with fallbacks still computes real results.
//!
//! A `Step::Host` carries as attributes a [`HostOpAttrs`]: the graph op and the n-d shapes of its
//! inputs and output, since device tensors are 2-D views of them.

use serde::{Deserialize, Serialize};
use ttfuse_runtime::exec::HostOps;
use ttfuse_runtime::tensor::Tensor;

use crate::graph::{DType, Op, TensorData, TensorType};
use crate::reference;

/// The attributes of a `Step::Host` produced by the lowering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostOpAttrs {
    /// The graph op to run.
    pub op: Op,
    /// The n-d shape of each input, in order.
    pub input_shapes: Vec<Vec<usize>>,
    /// The n-d shape of the output.
    pub output_shape: Vec<usize>,
}

/// Runs host steps with [`reference::eval_op`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceHostOps;

impl HostOps for ReferenceHostOps {
    fn run(
        &self,
        op: &str,
        attrs: &serde_json::Value,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, String> {
        let attrs: HostOpAttrs = serde_json::from_value(attrs.clone())
            .map_err(|e| format!("host op {op}: malformed attributes: {e}"))?;
        if attrs.input_shapes.len() != inputs.len() {
            return Err(format!(
                "host op {op}: {} inputs given, {} shapes declared",
                inputs.len(),
                attrs.input_shapes.len()
            ));
        }
        let data: Vec<TensorData> = inputs
            .iter()
            .zip(&attrs.input_shapes)
            .map(|(t, shape)| TensorData::F32 {
                shape: shape.clone(),
                values: t.to_f32(),
            })
            .collect();
        let refs: Vec<&TensorData> = data.iter().collect();
        let out_ty = TensorType::new(attrs.output_shape.clone(), DType::F32);
        let out = reference::eval_op(&attrs.op, &refs, &out_ty)
            .map_err(|e| format!("host op {op}: {e}"))?;
        let (rows, cols) = as_2d(&attrs.output_shape);
        Ok(vec![Tensor::from_f32(rows, cols, &out.to_f32())])
    }
}

/// The 2-D view of an n-d shape: (product of leading dims, last dim).
fn as_2d(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        Some((&last, lead)) => (lead.iter().product(), last),
        None => (1, 1),
    }
}
