//! A whole host program: the tensors it owns, the TT-Lang kernels it launches, and the ordered
//! steps (kernel launches and TTNN fallback ops) that a host driver performs.

use serde::{Deserialize, Serialize};

use crate::ttl::ast::Kernel;

/// What a program tensor holds before the program runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorInit {
    /// A graph input, supplied by the caller.
    Input,
    /// Constant data known when the program is built (weights, scaler and constant tiles),
    /// row-major f32 values; stored as bf16 on the device.
    Const(Vec<f32>),
    /// Zero-filled (kernel outputs and intermediates).
    Zeros,
}

/// A DRAM tensor of the program. Device tensors are 2-D, tilized, with both dimensions
/// multiples of 32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorDecl {
    /// Unique name; also the kernel argument name in the emitted host driver.
    pub name: String,
    /// Rows in elements.
    pub rows: usize,
    /// Columns in elements.
    pub cols: usize,
    /// Initial contents.
    pub init: TensorInit,
    /// Whether the caller reads this tensor after the run (a graph output).
    pub is_output: bool,
}

/// One step of the host program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Launch `kernels[kernel]` with the named tensors as its arguments, in parameter order.
    Launch {
        /// Index into `Program::kernels`.
        kernel: usize,
        /// Tensor names bound to the kernel's parameters.
        args: Vec<String>,
    },
    /// A host-side (TTNN) operation that has no TT-Lang kernel: the executor hands it to a
    /// [`crate::exec::HostOps`] implementation and costs it as one TTNN op.
    Host {
        /// The op's name as shown to users, e.g. `ttnn.embedding`.
        op: String,
        /// Opaque attributes for the host-op implementation (JSON).
        attrs: serde_json::Value,
        /// Input tensor names.
        inputs: Vec<String>,
        /// Output tensor names.
        outputs: Vec<String>,
    },
}

/// A complete program: what `fuse` emits, `export` writes and the runtime executes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Every DRAM tensor the program touches.
    pub tensors: Vec<TensorDecl>,
    /// The kernels, each printed as its own TT-Lang file.
    pub kernels: Vec<Kernel>,
    /// The host steps in execution order.
    pub steps: Vec<Step>,
}

impl Program {
    /// The declaration of tensor `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorDecl> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Number of kernel launches.
    pub fn launches(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Launch { .. }))
            .count()
    }
}
