//! Executor errors. Every kernel error names the kernel, and where known the core, thread and
//! source line, so a user can find the statement that failed.

use std::fmt;

use thiserror::Error;

use crate::ttl::ast::Line;

/// Where in a kernel something went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The kernel's name.
    pub kernel: String,
    /// The core `(x, y)`, when the error belongs to one core.
    pub core: Option<(u32, u32)>,
    /// The thread function's name (`compute`, `dm_read`, ...), or `setup` for kernel-level code.
    pub thread: Option<String>,
    /// The source line (0 when unknown or built by the optimizer).
    pub line: Line,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel `{}`", self.kernel)?;
        if let Some((x, y)) = self.core {
            write!(f, ", core ({x}, {y})")?;
        }
        if let Some(t) = &self.thread {
            write!(f, ", thread `{t}`")?;
        }
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        Ok(())
    }
}

/// The class of a kernel error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The kernel uses a name, op or construct the runtime does not know or accept.
    Unsupported,
    /// A value has the wrong type for its use (a scalar where a block is needed, ...).
    Type,
    /// Block or slice shapes do not match.
    Shape,
    /// A tile slice lies outside its tensor.
    Bounds,
    /// Circular-buffer misuse: double reserve, pop without wait, blocks left at kernel end, ...
    CircularBuffer,
    /// A pipe send or receive without its partner, or used on the wrong core.
    Pipe,
    /// A hardware limit is exceeded (circular buffers per core, L1 bytes).
    Limit,
    /// Every live thread is blocked.
    Deadlock,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FaultKind::Unsupported => "unsupported",
            FaultKind::Type => "type error",
            FaultKind::Shape => "shape mismatch",
            FaultKind::Bounds => "out of bounds",
            FaultKind::CircularBuffer => "circular buffer error",
            FaultKind::Pipe => "pipe error",
            FaultKind::Limit => "hardware limit exceeded",
            FaultKind::Deadlock => "deadlock",
        };
        f.write_str(s)
    }
}

/// An error from running a kernel or a program.
#[derive(Debug, Error)]
pub enum ExecError {
    /// A kernel failed: compile-time (unknown name or op) or run-time (shape, CB, deadlock...).
    #[error("{site}: {kind}: {msg}")]
    Kernel {
        /// Where.
        site: Site,
        /// What class of error.
        kind: FaultKind,
        /// What happened and what to do about it.
        msg: String,
    },
    /// The module has no kernel of that name.
    #[error("no kernel named `{name}` in the module; kernels: {}", .known.join(", "))]
    UnknownKernel {
        /// The name asked for.
        name: String,
        /// The kernels that exist.
        known: Vec<String>,
    },
    /// A kernel was called with the wrong number of tensors.
    #[error("kernel `{kernel}` takes {expected} tensors ({}) but was given {given}", .params.join(", "))]
    ArgCount {
        /// The kernel.
        kernel: String,
        /// Its parameter names.
        params: Vec<String>,
        /// How many it takes.
        expected: usize,
        /// How many it got.
        given: usize,
    },
    /// A kernel argument is not a tile-aligned 2-D tensor.
    #[error("kernel `{kernel}` argument `{param}` is {rows}x{cols}; device tensors need both dimensions to be multiples of 32")]
    Unaligned {
        /// The kernel.
        kernel: String,
        /// The parameter.
        param: String,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A program is inconsistent (unknown tensor, missing input, bad kernel index, shape).
    #[error("program error: {0}")]
    Program(String),
    /// A host (TTNN fallback) op failed.
    #[error("host op `{op}` failed: {msg}")]
    Host {
        /// The op.
        op: String,
        /// Its error.
        msg: String,
    },
}

/// An error raised inside the executor before the site is known; [`Fault::at`] adds it.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    pub msg: String,
}

impl Fault {
    pub fn new(kind: FaultKind, msg: impl Into<String>) -> Self {
        Fault {
            kind,
            msg: msg.into(),
        }
    }

    pub fn at(self, site: Site) -> ExecError {
        ExecError::Kernel {
            site,
            kind: self.kind,
            msg: self.msg,
        }
    }
}

/// Shorthand for building a [`Fault`] result.
pub(crate) fn fault<T>(kind: FaultKind, msg: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::new(kind, msg))
}
