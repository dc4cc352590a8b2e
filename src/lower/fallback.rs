//! Host fallback steps: graph ops without a TT-Lang template run on the host, the way a TTNN
//! program would call a TTNN op between kernels. [`GraphHostOps`] executes them with the
//! reference semantics of the op, reading and writing the program's bf16 device tensors.

use serde::{Deserialize, Serialize};
use ttfuse_runtime::exec::HostOps;
use ttfuse_runtime::program::Step;
use ttfuse_runtime::tensor::Tensor;

use super::binding::Binding;
use crate::graph::im2col::weight_matrix_tiles;
use crate::graph::{DType, Graph, Op, TensorData, TensorType};
use crate::plan::layout::layout_of;
use crate::plan::HostInfo;

/// What a host step needs to run: the graph op and the n-d shapes and element types of its
/// operands and result (device tensors are tile-padded 2-D views of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostAttrs {
    /// The graph op.
    pub op: Op,
    /// Input shapes, in slot order.
    pub input_shapes: Vec<Vec<usize>>,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Input element types, in slot order.
    pub input_dtypes: Vec<DType>,
    /// Output element type.
    pub output_dtype: DType,
}

impl HostAttrs {
    /// The multiply-adds (as two FLOPs each) of the ops whose math can outweigh their traffic:
    /// convolutions, matmuls and attention.
    pub fn flops(&self) -> f64 {
        let out = self.output_shape.iter().product::<usize>() as f64;
        let per_output = match &self.op {
            Op::Conv { kernel, .. } => {
                self.input_shapes
                    .get(1)
                    .and_then(|w| w.get(1))
                    .map_or(0, |cg| cg * kernel[0] * kernel[1]) as f64
            }
            Op::MatMul => self
                .input_shapes
                .first()
                .and_then(|a| a.last())
                .copied()
                .unwrap_or(0) as f64,
            // Two products per query row: the scores (sk of them, d multiply-adds each, from
            // the transposed keys [.., d, sk]) and the output row (dv values, sk each).
            Op::Attention { .. } => match self.input_shapes.get(1).map(Vec::as_slice) {
                Some([.., d, sk]) => {
                    let dv = self.output_shape.last().copied().unwrap_or(1).max(1);
                    (*sk * *d) as f64 / dv as f64 + *sk as f64
                }
                _ => 0.0,
            },
            _ => 0.0,
        };
        2.0 * out * per_output
    }

    fn input_types(&self) -> Vec<TensorType> {
        self.input_shapes
            .iter()
            .zip(&self.input_dtypes)
            .map(|(s, &d)| TensorType::new(s.clone(), d))
            .collect()
    }
}

/// The program step of a host fallback.
pub fn host_step(graph: &Graph, info: &HostInfo, inputs: Vec<String>, output: String) -> Step {
    let node = graph.node(info.node);
    let attrs = HostAttrs {
        op: node.op.clone(),
        // The shapes the op sees are those of its direct inputs: a view (a reshape keeping the
        // 2-D view) shares its source's device tensor but not its n-d shape.
        input_shapes: graph
            .inputs_of(info.node)
            .iter()
            .map(|&i| graph.node(i).ty.shape.clone())
            .collect(),
        output_shape: node.ty.shape.clone(),
        input_dtypes: info
            .inputs
            .iter()
            .map(|&i| graph.node(i).ty.dtype)
            .collect(),
        output_dtype: node.ty.dtype,
    };
    Step::Host {
        op: info.op.clone(),
        attrs: serde_json::to_value(&attrs).unwrap_or(serde_json::Value::Null),
        inputs,
        outputs: vec![output],
    }
}

/// Bytes of one bf16 tile.
const TILE_BYTES: u64 = 32 * 32 * 2;

/// Runs host steps made by [`host_step`] with the reference interpreter's op semantics.
#[derive(Clone, Copy, Debug, Default)]
pub struct GraphHostOps;

fn binding(name: &str, ty: &TensorType) -> Result<Binding, String> {
    let layout = layout_of(&ty.shape)
        .ok_or_else(|| format!("`{name}` has shape {:?} with no tile layout", ty.shape))?;
    Ok(Binding {
        name: name.to_string(),
        tensor: name.to_string(),
        shape: ty.shape.clone(),
        layout,
    })
}

impl HostOps for GraphHostOps {
    fn flops(&self, _op: &str, attrs: &serde_json::Value) -> f64 {
        serde_json::from_value::<HostAttrs>(attrs.clone()).map_or(0.0, |a| a.flops())
    }

    /// A convolution's weights are read as TTNN prepares them, a tiled `[kh * kw * c, o]`
    /// matrix, not as the tile-padded `[o * c * kh, kw]` view of their OIHW tensor.
    fn read_bytes(
        &self,
        _op: &str,
        attrs: &serde_json::Value,
        slot: usize,
        tensor: &Tensor,
    ) -> u64 {
        let prepared = serde_json::from_value::<HostAttrs>(attrs.clone())
            .ok()
            .filter(|a| matches!(a.op, Op::Conv { .. }) && slot == 1)
            .and_then(|a| weight_matrix_tiles(&a.input_shapes[1]));
        match prepared {
            Some(tiles) => tiles as u64 * TILE_BYTES,
            None => tensor.data.len() as u64 * 2,
        }
    }

    fn run(
        &self,
        op: &str,
        attrs: &serde_json::Value,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, String> {
        let attrs: HostAttrs = serde_json::from_value(attrs.clone())
            .map_err(|e| format!("host op {op}: attributes are not a ttfuse host step: {e}"))?;
        let types = attrs.input_types();
        if types.len() != inputs.len() || attrs.input_shapes.len() != inputs.len() {
            return Err(format!(
                "host op {op}: {} inputs given, {} expected",
                inputs.len(),
                types.len()
            ));
        }
        let mut data = Vec::with_capacity(inputs.len());
        for (i, (t, ty)) in inputs.iter().zip(&types).enumerate() {
            let b = binding(&format!("input {i}"), ty)?;
            let d = b
                .try_from_device(t)
                .map_err(|e| format!("host op {op}: {e}"))?;
            data.push(if ty.dtype.is_float() {
                d
            } else {
                TensorData::I64 {
                    shape: ty.shape.clone(),
                    values: d.to_f32().iter().map(|v| v.round() as i64).collect(),
                }
            });
        }
        let refs: Vec<&TensorData> = data.iter().collect();
        let out_ty = TensorType::new(attrs.output_shape.clone(), attrs.output_dtype);
        let out = crate::reference::eval_op(&attrs.op, &refs, &out_ty)
            .map_err(|e| format!("host op {op}: {e}"))?;
        let b = binding("output", &out_ty)?;
        Ok(vec![b
            .try_to_device(&out)
            .map_err(|e| format!("host op {op}: {e}"))?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_convolution_reads_its_weights_as_the_prepared_matrix() {
        // [64, 32, 3, 3] weights: the OIHW view is 6144 x 3 (padded to 6144 x 32 on the
        // device), the prepared matrix 288 x 64, 9 x 2 tiles.
        let attrs = HostAttrs {
            op: Op::Conv {
                kernel: [3, 3],
                stride: [1, 1],
                pads: [1; 4],
                dilation: [1, 1],
                groups: 1,
                relu: false,
                pixels: None,
            },
            input_shapes: vec![vec![1, 32, 16, 16], vec![64, 32, 3, 3]],
            output_shape: vec![1, 64, 16, 16],
            input_dtypes: vec![DType::F32; 2],
            output_dtype: DType::F32,
        };
        let attrs = serde_json::to_value(&attrs).expect("serializes");
        let weights = Tensor::zeros(6144, 32);
        let x = Tensor::zeros(512, 32);
        let host = GraphHostOps;
        assert_eq!(host.read_bytes("ttnn.conv", &attrs, 1, &weights), 18 * 2048);
        assert_eq!(host.read_bytes("ttnn.conv", &attrs, 0, &x), 512 * 32 * 2);
    }
}
