//! The extraction cost: an estimate, in device cycles, of what an e-node costs on a Tensix chip,
//! following the runtime's timing model.
//!
//! Two kinds of ops:
//!
//! - **Fusable** ops (TT-Lang elementwise math, and row reductions over the last axis that keep
//!   it) join a fused kernel that the planner builds around them. They cost their compute plus
//!   unpacking each input tile and packing the result, spread over the core grid; no dispatch and
//!   no DRAM round trip.
//! - **Kernel** ops (matmul, transposes, and ops TT-Lang has no primitive for, which
//!   run as TTNN fallbacks) pay a dispatch, their DRAM traffic (inputs read and output written
//!   once) and their compute. A fallback pays a second dispatch, for breaking the fused chain.
//!
//! A composite (softmax, layer/RMS norm) is only extractable when the backend has a kernel for it
//! ([`CostModel::composite_kernels`]); otherwise it costs infinity and extraction picks its
//! decomposition. With a kernel it costs like the fused row-wise group of its decomposition,
//! without the intermediate unpacks and packs, so it wins over that group. All figures live in [`CostModel::wormhole_b0`], the one place to switch to the
//! runtime's device description.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::graph::{BinaryOp, Op, ReduceOp, TensorType, UnaryOp};

/// Composite ops that the backend can lower as one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Composite {
    /// `Op::Softmax`.
    Softmax,
    /// `Op::LayerNorm`.
    LayerNorm,
    /// `Op::RmsNorm`.
    RmsNorm,
}

/// Device figures used by the cost function.
#[derive(Clone, Debug, Serialize)]
pub struct CostModel {
    /// Cores in the compute grid.
    pub cores: f64,
    /// Chip DRAM bandwidth in bytes per cycle.
    pub dram_bytes_per_cycle: f64,
    /// Bytes per element on the device (bf16).
    pub bytes_per_element: f64,
    /// Cycles to dispatch one kernel.
    pub dispatch_cycles: f64,
    /// Cycles to unpack or pack one tile.
    pub tile_move_cycles: f64,
    /// Cycles for one 32x32x32 tile matmul.
    pub matmul_tile_cycles: f64,
    /// Composites with a kernel template in the backend.
    pub composite_kernels: BTreeSet<Composite>,
}

impl CostModel {
    /// Wormhole n150 figures from shared/reference/tensix-facts.md: 8x8 grid; 267 GB/s measured
    /// DRAM bandwidth at 1 GHz; bf16; ~4 us traced op-to-op dispatch; >= 32 cycles unpack/pack
    /// per tile; HiFi4 tile matmul 64 cycles. No composite kernels.
    pub fn wormhole_b0() -> Self {
        CostModel {
            cores: 64.0,
            dram_bytes_per_cycle: 267.0,
            bytes_per_element: 2.0,
            dispatch_cycles: 4000.0,
            tile_move_cycles: 32.0,
            matmul_tile_cycles: 64.0,
            composite_kernels: BTreeSet::new(),
        }
    }
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel::wormhole_b0()
    }
}

/// Compute cycles per output tile of an elementwise op (Wormhole, tensix-facts.md SFPU and FPU
/// tables; figures marked "est." are not in the table and assume ~8 SFPU instructions per
/// element, i.e. 256 cycles per tile).
fn unary_cycles(u: UnaryOp) -> f64 {
    match u {
        UnaryOp::Exp => 250.0,
        UnaryOp::Log => 256.0, // est.
        UnaryOp::Sqrt => 984.0,
        UnaryOp::Rsqrt => 256.0, // est.
        UnaryOp::Recip => 96.0,
        UnaryOp::Tanh => 530.0,
        UnaryOp::Sigmoid => 256.0,
        UnaryOp::Relu => 32.0, // one SFPU instruction per element
        UnaryOp::Abs => 146.0,
        UnaryOp::Neg => 32.0,
        UnaryOp::Floor => 568.0,
        UnaryOp::Erf => 512.0,  // est. (polynomial)
        UnaryOp::Gelu => 512.0, // est. (accurate, erf based)
        UnaryOp::GeluTanh => 256.0,
        UnaryOp::Silu => 1432.0,
        UnaryOp::Softplus => 512.0, // est. (exp + log)
        UnaryOp::Identity => 0.0,
    }
}

fn binary_cycles(b: BinaryOp) -> f64 {
    match b {
        BinaryOp::Add | BinaryOp::Sub => 8.0,
        BinaryOp::Mul => 32.0, // HiFi4
        BinaryOp::Div => 1475.0,
        BinaryOp::Max | BinaryOp::Min => 64.0, // est.
        BinaryOp::Pow => 128.0,                // est. (integer power: repeated multiplies)
    }
}

/// Tiles a tensor of `shape` occupies (last two axes padded to 32).
pub fn tiles(shape: &[usize]) -> f64 {
    let n = shape.len();
    let (h, w) = match n {
        0 => (1, 1),
        1 => (1, shape[0]),
        _ => (shape[n - 2], shape[n - 1]),
    };
    let lead: usize = shape[..n.saturating_sub(2)].iter().product();
    (lead * h.div_ceil(32) * w.div_ceil(32)) as f64
}

/// How an op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Joins a fused kernel.
    Fusable,
    /// Its own kernel.
    Kernel,
    /// A TTNN fallback op.
    Fallback,
}

/// The kind of `op` given its input types.
pub fn kind(op: &Op, inputs: &[&TensorType], integer_exponent: bool) -> Kind {
    match op {
        Op::Unary(u) => match u {
            UnaryOp::Erf
            | UnaryOp::Gelu
            | UnaryOp::GeluTanh
            | UnaryOp::Silu
            | UnaryOp::Softplus => Kind::Fallback,
            _ => Kind::Fusable,
        },
        Op::Binary(BinaryOp::Pow) if !integer_exponent => Kind::Fallback,
        Op::Binary(_) => Kind::Fusable,
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => {
            let rank = inputs.first().map_or(0, |t| t.shape.len());
            let row = *keep_dims && rank > 0 && axes.as_slice() == [rank - 1];
            if row && *op != ReduceOp::Min {
                Kind::Fusable
            } else {
                Kind::Kernel
            }
        }
        // A composite with a kernel is the fused row-wise group the planner would build from its
        // decomposition, minus the intermediate circular-buffer traffic.
        Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. } => Kind::Fusable,
        Op::MatMul | Op::Transpose { .. } => Kind::Kernel,
        _ => Kind::Fallback,
    }
}

fn composite(op: &Op) -> Option<Composite> {
    match op {
        Op::Softmax { .. } => Some(Composite::Softmax),
        Op::LayerNorm { .. } => Some(Composite::LayerNorm),
        Op::RmsNorm { .. } => Some(Composite::RmsNorm),
        _ => None,
    }
}

impl CostModel {
    /// Compute cycles of `op` (whole chip).
    fn compute(&self, op: &Op, inputs: &[&TensorType], out: &TensorType) -> f64 {
        let t_out = tiles(&out.shape);
        let t_in = inputs.first().map_or(t_out, |t| tiles(&t.shape));
        let per_core = |tiles: f64, cycles: f64| tiles * cycles / self.cores;
        match op {
            Op::Unary(u) => per_core(t_out, unary_cycles(*u)),
            Op::Binary(b) => per_core(t_out, binary_cycles(*b)),
            Op::Reduce { .. } => per_core(t_in, self.tile_move_cycles),
            Op::MatMul => {
                let k = inputs
                    .first()
                    .and_then(|t| t.shape.last())
                    .copied()
                    .unwrap_or(1);
                per_core(t_out * k.div_ceil(32) as f64, self.matmul_tile_cycles)
            }
            // max, subtract, exp, sum, divide per tile
            Op::Softmax { .. } => per_core(t_in, 64.0 + 8.0 + 250.0 + 32.0 + 96.0 + 32.0),
            // mean, subtract, square, mean, rsqrt, multiply, scale, shift
            Op::LayerNorm { .. } => {
                per_core(t_in, 32.0 + 8.0 + 32.0 + 32.0 + 256.0 + 32.0 + 32.0 + 8.0)
            }
            // square, mean, rsqrt, multiply, scale
            Op::RmsNorm { .. } => per_core(t_in, 32.0 + 32.0 + 256.0 + 32.0 + 32.0),
            _ => per_core(t_out.max(t_in), self.tile_move_cycles),
        }
    }

    /// The cost of one e-node that computes `op` from `inputs` (tensor inputs only; scalar
    /// literals are free constant tiles) into `out`.
    pub fn node_cost(
        &self,
        op: &Op,
        inputs: &[&TensorType],
        out: &TensorType,
        integer_exponent: bool,
    ) -> f64 {
        if let Some(c) = composite(op) {
            if !self.composite_kernels.contains(&c) {
                return f64::INFINITY;
            }
        }
        let compute = self.compute(op, inputs, out);
        match kind(op, inputs, integer_exponent) {
            Kind::Fusable => {
                let moved: f64 =
                    inputs.iter().map(|t| tiles(&t.shape)).sum::<f64>() + tiles(&out.shape);
                compute + moved * self.tile_move_cycles / self.cores
            }
            k => {
                let elems: usize = inputs.iter().map(|t| t.numel()).sum::<usize>() + out.numel();
                let traffic = elems as f64 * self.bytes_per_element / self.dram_bytes_per_cycle;
                let dispatches = if k == Kind::Fallback { 2.0 } else { 1.0 };
                dispatches * self.dispatch_cycles + traffic + compute
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DType;

    fn t(shape: &[usize]) -> TensorType {
        TensorType::new(shape.to_vec(), DType::BF16)
    }

    #[test]
    fn rsqrt_and_mul_beat_sqrt_and_div() {
        let m = CostModel::default();
        let x = t(&[256, 256]);
        let sqrt_div = m.node_cost(&Op::Unary(UnaryOp::Sqrt), &[&x], &x, false)
            + m.node_cost(&Op::Binary(BinaryOp::Div), &[&x, &x], &x, false);
        let rsqrt_mul = m.node_cost(&Op::Unary(UnaryOp::Rsqrt), &[&x], &x, false)
            + m.node_cost(&Op::Binary(BinaryOp::Mul), &[&x, &x], &x, false);
        assert!(rsqrt_mul < sqrt_div, "{rsqrt_mul} vs {sqrt_div}");
    }

    #[test]
    fn composites_without_kernels_cost_infinity() {
        let mut m = CostModel::default();
        let x = t(&[32, 64]);
        assert!(m
            .node_cost(&Op::Softmax { axis: 1 }, &[&x], &x, false)
            .is_infinite());
        m.composite_kernels.insert(Composite::Softmax);
        assert!(m
            .node_cost(&Op::Softmax { axis: 1 }, &[&x], &x, false)
            .is_finite());
    }

    #[test]
    fn tiles_pad_the_last_two_axes() {
        assert_eq!(tiles(&[64, 1]), 2.0);
        assert_eq!(tiles(&[2, 33, 64]), 8.0);
        assert_eq!(tiles(&[]), 1.0);
    }
}
