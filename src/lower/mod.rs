//! Lowering a graph to a TT-Lang program: plan it ([`crate::plan`]), emit one
//! [`ttfuse_runtime::ttl::ast::Kernel`] per planned kernel from its template (elementwise /
//! row-wise body, matmul, transpose), and assemble the host [`Program`] that declares the DRAM
//! tensors and launches the kernels in order. [`crate::bundle::driver`] prints the Python host driver.

pub mod binding;
pub mod blocks;
pub mod body_kernel;
pub mod compute;
pub mod emit;
pub mod fallback;
pub mod matmul;
pub mod program;
pub mod transpose;

use thiserror::Error;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::program::Program;

use crate::graph::Graph;
pub use crate::plan::FusionMode;
use crate::plan::{KernelPlan, PlanError, Target};
pub use binding::Binding;

/// Why a graph could not be lowered, or a tensor not bound.
#[derive(Debug, Error)]
pub enum LowerError {
    /// Planning failed (unsupported op or shape, no block fits).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Data for a graph input has the wrong number of elements.
    #[error("tensor `{name}`: shape {shape:?} needs {expected} values, the data has {got}")]
    DataSize {
        /// The graph input.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements supplied.
        got: usize,
    },
    /// A device tensor has the wrong dimensions for its binding.
    #[error("tensor `{name}`: the device tensor is {rows}x{cols}, the binding needs {expected_rows}x{expected_cols}")]
    DeviceSize {
        /// The graph output.
        name: String,
        /// Rows found.
        rows: usize,
        /// Columns found.
        cols: usize,
        /// Rows expected.
        expected_rows: usize,
        /// Columns expected.
        expected_cols: usize,
    },
    /// A kernel parameter has no program tensor (a lowering bug, reported rather than run).
    #[error("kernel `{kernel}`: parameter `{param}` is bound to no program tensor")]
    UnboundParam {
        /// The kernel.
        kernel: String,
        /// The parameter.
        param: String,
    },
}

/// A lowered graph.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The program the runtime executes and `export` writes.
    pub program: Program,
    /// The plan it was built from (what `explain` prints).
    pub plan: KernelPlan,
    /// Graph inputs, in graph order.
    pub inputs: Vec<Binding>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<Binding>,
}

/// Plans and lowers `graph` for `device`.
pub fn compile(graph: &Graph, device: &Device, mode: FusionMode) -> Result<Compiled, LowerError> {
    let target = Target::of(device);
    let plan = crate::plan::plan(graph, &target, mode)?;
    program::assemble(graph, plan)
}
