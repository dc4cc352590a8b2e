//! The functional executor: runs TT-Lang kernels on every core of their grid, three threads per
//! core synchronized through circular buffers and pipes, with bf16 storage and f32 math, and
//! times them with the [`crate::timing`] model.
//!
//! Execution is deterministic and single-threaded: each kernel is resolved once
//! (compile-time errors name the line), every Tensix thread is a resumable state machine, and
//! a scheduler runs the earliest thread until it blocks. A timed run computes the elements in
//! one pass and the times in a second pass over shape-only blocks (see `kernel`).

mod block;
mod cb;
mod compile;
mod copy;
mod error;
mod eval;
mod kernel;
mod math;
mod program;
mod state;
mod thread;
mod value;

use std::collections::BTreeMap;

pub use crate::timing::report::{
    Bound, CoreReport, HostOpReport, KernelReport, ProgramReport, ProgramRoofline, Roofline,
    StepReport, ThreadReport,
};
pub use error::{ExecError, FaultKind, Site};
pub use program::run_program;

use crate::device::Device;
use crate::tensor::Tensor;
use crate::ttl::ast::Module;

/// How kernel launches are dispatched, which sets the per-launch overhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Replayed from a captured trace (device-side op-to-op gap, ~4 us on Wormhole).
    Traced,
    /// Dispatched by the host one op at a time (~30 us on Wormhole).
    Eager,
}

/// Host-side (TTNN) operations for [`crate::program::Step::Host`] fallbacks.
pub trait HostOps {
    /// Runs `op` with its attributes on `inputs`, returning its outputs in order, or a message.
    fn run(
        &self,
        op: &str,
        attrs: &serde_json::Value,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, String>;

    /// The floating-point operations `op` does with these attributes (multiply-adds count two),
    /// which time it at the grid's peak math rate when that is longer than its DRAM traffic.
    /// Ops whose math is negligible next to their traffic return 0, the default.
    fn flops(&self, _op: &str, _attrs: &serde_json::Value) -> f64 {
        0.0
    }

    /// The DRAM bytes `op` reads of its input `slot`, held on the device as `tensor`: the
    /// tensor's size (the default), or another for an input that TTNN keeps in a layout of its
    /// own (a convolution's weights, prepared once as a tiled matrix).
    fn read_bytes(
        &self,
        _op: &str,
        _attrs: &serde_json::Value,
        _slot: usize,
        tensor: &Tensor,
    ) -> u64 {
        tensor.data.len() as u64 * 2
    }
}

/// The result of [`run_program`].
#[derive(Clone, Debug)]
pub struct ProgramRun {
    /// Final contents of every program tensor, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Timing and traffic of every step.
    pub report: ProgramReport,
}

/// Runs kernel `kernel` of `module` (module constants visible) on `device` with `args` bound to
/// its parameters in order, updating them in place. Dispatch is costed as traced.
pub fn run_kernel(
    module: &Module,
    kernel: &str,
    device: &Device,
    args: &mut [Tensor],
) -> Result<KernelReport, ExecError> {
    run_kernel_with(module, kernel, device, args, true)
}

/// [`run_kernel`] with the timing model switched off: the same functional results, every cost
/// zero (so the report's cycles are 0). It exists to measure what the timing model adds to a
/// run (the `exec` bench).
pub fn run_kernel_untimed(
    module: &Module,
    kernel: &str,
    device: &Device,
    args: &mut [Tensor],
) -> Result<KernelReport, ExecError> {
    run_kernel_with(module, kernel, device, args, false)
}

fn run_kernel_with(
    module: &Module,
    kernel: &str,
    device: &Device,
    args: &mut [Tensor],
    timed: bool,
) -> Result<KernelReport, ExecError> {
    let k = module
        .kernels
        .iter()
        .find(|k| k.name == kernel)
        .ok_or_else(|| ExecError::UnknownKernel {
            name: kernel.to_string(),
            known: module.kernels.iter().map(|k| k.name.clone()).collect(),
        })?;
    let env = kernel::eval_module(module, device)?;
    let ck = kernel::compile_kernel(k, &env)?;
    kernel::execute_with(&ck, &env, device, args, true, timed)
}
