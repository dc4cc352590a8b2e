//! Lowering a graph to a TT-Lang program: plan it ([`crate::plan`]), emit one
//! [`ttfuse_runtime::ttl::ast::Kernel`] per planned kernel from its template (elementwise /
//! row-wise body, matmul, transpose), and assemble the host [`Program`] that declares the DRAM
//! tensors and launches the kernels in order. [`crate::bundle::driver`] prints the Python host driver.

pub mod binding;
pub mod blocks;
pub mod body_kernel;
pub mod causal;
pub mod compute;
pub mod emit;
pub mod exchange;
pub mod fallback;
pub mod grid_axes;
pub mod matmul;
pub mod multicast;
pub mod program;
mod row_norm;
mod split_k;
pub mod transpose;

use thiserror::Error;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::program::Program;

use crate::graph::{composite, Graph};
pub use crate::plan::FusionMode;
use crate::plan::{KernelPlan, PlanError, Target};
pub use binding::Binding;

/// Why a graph could not be lowered, or a tensor not bound.
#[derive(Debug, Error)]
pub enum LowerError {
    /// A composite could not be expanded into the chain the planner fuses.
    #[error("expanding attention and MLP composites: {0}")]
    Expand(#[from] crate::import::builder::BuildError),
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
    /// The graph the plan was built from, when it is not the graph given to [`compile`]: that
    /// graph with its attention and MLP composites expanded.
    pub expanded: Option<Graph>,
}

impl Compiled {
    /// The graph the plan's kernels compute: `given` (the graph passed to [`compile`]) or its
    /// expansion.
    pub fn planned_graph<'a>(&'a self, given: &'a Graph) -> &'a Graph {
        self.expanded.as_ref().unwrap_or(given)
    }
}

/// Plans and lowers `graph` for `device`. In fused mode, attention and MLP composites are first
/// expanded into the chains of ops the planner fuses ([`composite::expand_all`]); unfused, they
/// run as the TTNN ops they are.
pub fn compile(graph: &Graph, device: &Device, mode: FusionMode) -> Result<Compiled, LowerError> {
    let expanded = match mode {
        FusionMode::Fused => composite::expand_all(graph)?,
        FusionMode::Unfused => None,
    };
    let graph = expanded.as_ref().unwrap_or(graph);
    let target = Target::of(device);
    let plan = crate::plan::plan(graph, &target, mode)?;
    let mut compiled = program::assemble(graph, plan)?;
    compiled.expanded = expanded;
    Ok(compiled)
}
