//! The extraction cost: an estimate, in device cycles, of what an e-node costs on a Tensix chip,
//! following the runtime's timing model.
//!
//! Two kinds of ops:
//!
//! - **Fusable** ops (elementwise math, including the activations the planner expands into
//!   TT-Lang math, and row reductions over the last axis that keep it) join a fused kernel that the planner builds around them. They cost their compute plus
//!   unpacking each input tile and packing the result, spread over the core grid; no dispatch and
//!   no DRAM round trip.
//! - **Kernel** ops (matmul, transposes, and ops the planner has no TT-Lang form for, such as
//!   erf, gather or convolution, which run as TTNN fallbacks) pay a dispatch, their DRAM traffic (inputs read and output written
//!   once) and their compute. A fallback pays a second dispatch, for breaking the fused chain.
//!
//! A composite (softmax, layer/RMS norm) is only extractable when the backend has a kernel for it
//! ([`CostModel::composite_kernels`]); otherwise it costs infinity and extraction picks its
//! decomposition. With a kernel it costs like the fused row-wise group of its decomposition,
//! without the intermediate unpacks and packs, so it wins over that group. The figures come from
//! the runtime's device files (`runtime/devices/*.json`, [`CostModel::from_device`]); the few
//! SFPU functions those files do not list are supplemented here, for the ops that run as TTNN
//! fallbacks.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use ttfuse_runtime::device::{Device, DeviceError};

use crate::graph::composite;
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
    /// `Op::Attention`.
    Attention,
    /// `Op::Mlp`.
    Mlp,
}

/// Device figures used by the cost function, read from the runtime's device description.
#[derive(Clone, Debug, Serialize)]
pub struct CostModel {
    /// Cores in the compute grid.
    pub cores: f64,
    /// Chip DRAM bandwidth in bytes per cycle.
    pub dram_bytes_per_cycle: f64,
    /// DRAM read bytes per cycle one core achieves: a kernel on few cores reads at that many
    /// times this, when it is less than the chip's bandwidth.
    pub core_dram_bytes_per_cycle: f64,
    /// Bytes per element on the device (a bf16 tile's bytes / 1024).
    pub bytes_per_element: f64,
    /// Cycles to dispatch one kernel (traced op-to-op gap).
    pub dispatch_cycles: f64,
    /// Cycles to unpack one tile.
    pub unpack_cycles: f64,
    /// Cycles to pack one tile.
    pub pack_cycles: f64,
    /// Cycles for one 32x32x32 tile matmul at the device's fidelity.
    pub matmul_tile_cycles: f64,
    /// FPU add/sub cycles per tile.
    pub add_cycles: f64,
    /// FPU multiply cycles per tile at the device's fidelity.
    pub mul_cycles: f64,
    /// Reduction cycles per input tile.
    pub reduce_cycles: f64,
    /// SFPU cycles per tile by function name (`exp`, `division`, ...).
    pub sfpu: BTreeMap<String, f64>,
    /// Composites the backend lowers as one kernel (all of them by default: the planner expands
    /// the norms and softmax itself, and attention and the MLP into the chain it fuses).
    pub composite_kernels: BTreeSet<Composite>,
}

/// SFPU figures the device files do not list: `erf`, which TT-Lang has no instruction for (it
/// runs as a TTNN fallback). An estimate: a polynomial twice as long as approximate GELU's
/// (~256, tensix-facts.md).
const SFPU_SUPPLEMENT: [(&str, f64); 1] = [("erf", 512.0)];

/// The cost of an SFPU function absent from both tables: ~8 instructions per element.
const SFPU_DEFAULT: f64 = 256.0;

impl CostModel {
    /// The cost model of a device target.
    pub fn from_device(d: &Device) -> Self {
        let mut sfpu: BTreeMap<String, f64> = SFPU_SUPPLEMENT
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        sfpu.extend(d.sfpu_cycles_per_tile.iter().map(|(k, v)| (k.clone(), *v)));
        let c = &d.compute;
        CostModel {
            cores: f64::from(d.grid.x * d.grid.y),
            dram_bytes_per_cycle: d.dram_bytes_per_cycle(),
            core_dram_bytes_per_cycle: d.core_dm.dram_read_bytes_per_cycle,
            bytes_per_element: d.tile_bytes as f64 / 1024.0,
            dispatch_cycles: d.dispatch.traced_us * d.clock_ghz * 1000.0,
            unpack_cycles: c.unpack_cycles_per_tile,
            pack_cycles: c.pack_cycles_per_tile,
            matmul_tile_cycles: c.matmul_cycles_per_tile.at(c.fidelity),
            add_cycles: c.add_cycles_per_tile,
            mul_cycles: c.mul_cycles_per_tile.at(c.fidelity),
            reduce_cycles: c.reduce_sum_cycles_per_tile_per_phase * f64::from(c.fidelity.phases()),
            sfpu,
            composite_kernels: [
                Composite::Softmax,
                Composite::LayerNorm,
                Composite::RmsNorm,
                Composite::Attention,
                Composite::Mlp,
            ]
            .into(),
        }
    }

    /// The cost model of target `name` (`wormhole_b0`, `blackhole`).
    pub fn for_target(name: &str) -> Result<Self, DeviceError> {
        Device::load(name).map(|d| CostModel::from_device(&d))
    }

    fn sfpu(&self, f: &str) -> f64 {
        self.sfpu.get(f).copied().unwrap_or(SFPU_DEFAULT)
    }

    /// Compute cycles per output tile of an elementwise op.
    fn elementwise_cycles(&self, op: &Op) -> f64 {
        match op {
            Op::Unary(UnaryOp::Identity) => 0.0,
            // The planner expands these into TT-Lang math (src/plan/body.rs): SiLU as
            // x * sigmoid(x), both GELUs as x * sigmoid(x * (a + b * x * x)), softplus as
            // log(1 + exp(x)).
            Op::Unary(UnaryOp::Silu) => self.sfpu("sigmoid") + self.mul_cycles,
            Op::Unary(UnaryOp::Gelu | UnaryOp::GeluTanh) => {
                self.sfpu("sigmoid") + 4.0 * self.mul_cycles + self.add_cycles
            }
            Op::Unary(UnaryOp::Softplus) => self.sfpu("exp") + self.add_cycles + self.sfpu("log"),
            Op::Unary(u) => self.sfpu(unary_name(*u)),
            Op::Binary(BinaryOp::Add | BinaryOp::Sub) => self.add_cycles,
            Op::Binary(BinaryOp::Mul) => self.mul_cycles,
            Op::Binary(BinaryOp::Div) => self.sfpu("division"),
            Op::Binary(BinaryOp::Max) => self.sfpu("max"),
            Op::Binary(BinaryOp::Min) => self.sfpu("min"),
            Op::Binary(BinaryOp::Pow) => self.sfpu("power"),
            _ => 0.0,
        }
    }
}

impl Default for CostModel {
    /// Wormhole n150 (`runtime/devices/wormhole_b0.json`).
    fn default() -> Self {
        // The data file is embedded in the runtime and checked by its tests; a failure here is a
        // build defect, not bad user input.
        CostModel::for_target("wormhole_b0").expect("the embedded wormhole_b0 device file loads")
    }
}

/// The device file's name of a unary SFPU function.
fn unary_name(u: UnaryOp) -> &'static str {
    match u {
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Rsqrt => "rsqrt",
        UnaryOp::Recip => "recip",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Relu => "relu",
        UnaryOp::Abs => "abs",
        UnaryOp::Neg => "neg",
        UnaryOp::Floor => "floor",
        UnaryOp::Erf => "erf",
        UnaryOp::Gelu => "gelu",
        UnaryOp::GeluTanh => "gelu_tanh",
        UnaryOp::Silu => "silu",
        UnaryOp::Softplus => "softplus",
        UnaryOp::Identity => "identity",
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
pub fn kind(op: &Op, inputs: &[&TensorType], tt_exponent: bool) -> Kind {
    match op {
        Op::Unary(UnaryOp::Erf) => Kind::Fallback,
        Op::Unary(_)
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Cast { .. } => Kind::Fusable,
        Op::Binary(BinaryOp::Pow) if !tt_exponent => Kind::Fallback,
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
        // Attention and the MLP are one kernel whose intermediates (scores, hidden layer) stay
        // in L1: one dispatch and the DRAM traffic of their inputs and result.
        Op::MatMul | Op::Transpose { .. } | Op::Attention { .. } | Op::Mlp { .. } => Kind::Kernel,
        _ => Kind::Fallback,
    }
}

fn composite(op: &Op) -> Option<Composite> {
    match op {
        Op::Softmax { .. } => Some(Composite::Softmax),
        Op::LayerNorm { .. } => Some(Composite::LayerNorm),
        Op::RmsNorm { .. } => Some(Composite::RmsNorm),
        Op::Attention { .. } => Some(Composite::Attention),
        Op::Mlp { .. } => Some(Composite::Mlp),
        _ => None,
    }
}

impl CostModel {
    /// Compute cycles of `op` (whole chip).
    fn compute(&self, op: &Op, inputs: &[&TensorType], out: &TensorType) -> f64 {
        let t_out = tiles(&out.shape);
        let t_in = inputs.first().map_or(t_out, |t| tiles(&t.shape));
        let t_rows = inputs.first().map_or(t_out, |t| {
            let mut rows = t.shape.clone();
            if let Some(last) = rows.last_mut() {
                *last = 1;
            }
            tiles(&rows)
        });
        let per_core = |tiles: f64, cycles: f64| tiles * cycles / self.cores;
        let (exp, recip, rsqrt) = (self.sfpu("exp"), self.sfpu("recip"), self.sfpu("rsqrt"));
        let (add, mul, red) = (self.add_cycles, self.mul_cycles, self.reduce_cycles);
        match op {
            Op::Unary(_) | Op::Binary(_) => per_core(t_out, self.elementwise_cycles(op)),
            Op::Reduce { .. } => per_core(t_in, red),
            Op::MatMul => {
                let k = inputs
                    .first()
                    .and_then(|t| t.shape.last())
                    .copied()
                    .unwrap_or(1);
                per_core(t_out * k.div_ceil(32) as f64, self.matmul_tile_cycles)
            }
            // A TTNN convolution at the matmul rate: its multiply-adds in 32x32x32 tile products
            // (a fused ReLU is the packer's, at no cost).
            Op::Conv { kernel, .. } => {
                let per_output = inputs
                    .get(1)
                    .and_then(|w| w.shape.get(1))
                    .map_or(0, |cg| cg * kernel[0] * kernel[1]);
                let tile_products = (out.numel() * per_output) as f64 / 32f64.powi(3);
                per_core(tile_products, self.matmul_tile_cycles)
            }
            // Chains: the work of their ops.
            Op::Attention { .. } | Op::Mlp { .. } => {
                let mut cycles = 0.0;
                let chain = composite::visit_chain(op, inputs, |op, inputs, out| {
                    cycles += self.compute(op, inputs, out);
                });
                chain.map_or(f64::INFINITY, |_| cycles)
            }
            // Composites: the work of their decomposition, full-tensor parts per input tile and
            // per-row parts (on the reduced column) per row tile.
            // max, subtract, exp, sum, multiply | reciprocal
            Op::Softmax { .. } => {
                per_core(t_in, red + add + exp + red + mul) + per_core(t_rows, recip)
            }
            // mean, subtract, square, mean, normalize, scale, shift (with a beta) | add eps,
            // rsqrt
            Op::LayerNorm { .. } => {
                let shift = if inputs.len() > 2 { add } else { 0.0 };
                per_core(t_in, red + add + mul + red + mul + mul + shift)
                    + per_core(t_rows, add + rsqrt)
            }
            // square, mean, normalize, scale | add eps, rsqrt
            Op::RmsNorm { .. } => {
                per_core(t_in, mul + red + mul + mul) + per_core(t_rows, add + rsqrt)
            }
            _ => per_core(t_out.max(t_in), self.unpack_cycles + self.pack_cycles),
        }
    }

    /// Cycles of `op` run as a TTNN op, as the runtime times a host step: one dispatch, then the
    /// longer of its DRAM traffic (every input and the result, once) and its math over the grid.
    pub fn ttnn_op_cycles(&self, op: &Op, inputs: &[&TensorType], out: &TensorType) -> f64 {
        let elems: usize = inputs.iter().map(|t| t.numel()).sum::<usize>() + out.numel();
        let traffic = elems as f64 * self.bytes_per_element / self.dram_bytes_per_cycle;
        self.dispatch_cycles + traffic.max(self.compute(op, inputs, out))
    }

    /// The cost of one e-node that computes `op` from `inputs` (tensor inputs only; scalar
    /// literals are free constant tiles) into `out`. `tt_exponent`: a `Pow` has an exponent
    /// TT-Lang can raise to (an integer up to 16, or +-0.5).
    pub fn node_cost(
        &self,
        op: &Op,
        inputs: &[&TensorType],
        out: &TensorType,
        tt_exponent: bool,
    ) -> f64 {
        if let Some(c) = composite(op) {
            if !self.composite_kernels.contains(&c) {
                return f64::INFINITY;
            }
        }
        let compute = self.compute(op, inputs, out);
        match kind(op, inputs, tt_exponent) {
            Kind::Fusable => {
                let unpacked: f64 = inputs.iter().map(|t| tiles(&t.shape)).sum();
                compute
                    + (unpacked * self.unpack_cycles + tiles(&out.shape) * self.pack_cycles)
                        / self.cores
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
        m.composite_kernels.clear();
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
