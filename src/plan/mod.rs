//! The fusion planner: which graph ops share a kernel ([`group`], then `splits` where the
//! estimate finds kernels faster apart or together), what each kernel computes ([`body`]; a
//! matmul kernel's product, [`matmul_info`]), in what order and with which circular buffers
//! ([`schedule`]), and how its work is cut into blocks over the core grid within the core's L1
//! ([`kernel`]; a matmul kernel's candidates, `matmul_fit`, on the device's grid or across it
//! when it is not square, [`Partition::across`]; [`partition`], [`wide`] for a chained
//! product's columns, and [`segments`] for the rows of a row-wise kernel on few rows).
//!
//! The result, a [`KernelPlan`], is what `explain` prints and what [`crate::lower`] turns into
//! TT-Lang.

pub mod body;
pub mod causal;
pub mod concat;
pub mod estimate;
pub mod explain;
pub mod gather;
pub mod group;
pub mod heads;
pub mod kernel;
pub mod layout;
mod matmul_fit;
pub mod matmul_info;
pub mod names;
pub mod partition;
pub mod schedule;
pub mod segments;
mod split_k;
mod splits;
pub mod stream;
pub mod target;
#[cfg(test)]
pub(crate) mod testing;
pub mod wide;

use std::cell::RefCell;
use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;
use serde::Serialize;
use thiserror::Error;

use crate::graph::Graph;
pub use group::{BreakReason, FreeOp, FusionBreak};
pub use kernel::{HostInfo, KernelDetail, TransposeInfo};
pub use matmul_info::MatmulInfo;
pub use partition::Partition;
pub use schedule::Cb;
pub use target::Target;

/// Whether ops are fused into shared kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FusionMode {
    /// Groups of ops become one kernel with intermediates in L1.
    Fused,
    /// One kernel per op, each reading and writing DRAM (today's TTNN).
    Unfused,
}

/// Why a graph cannot be planned.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The op (or this use of it) has no kernel template.
    #[error("node `{node}` ({op}) cannot be lowered: {reason}")]
    Unsupported {
        /// The node.
        node: String,
        /// Its op.
        op: String,
        /// Why.
        reason: String,
    },
    /// The tensor cannot be laid out in tiles where it is used: it is empty, or a batched
    /// matmul or transpose operand whose per-batch dimensions are not multiples of 32 (padding
    /// is per 2-D view, not per batch).
    #[error("node `{node}` ({op}) has shape {shape:?}: as a 2-D view ({rows} x {cols}) it has no tile layout here (empty tensors have none; batched matmuls and transposes need the last two dimensions to be multiples of 32, since padding is per 2-D view)")]
    Shape {
        /// The node.
        node: String,
        /// Its op.
        op: String,
        /// Its shape.
        shape: Vec<usize>,
        /// 2-D rows.
        rows: usize,
        /// 2-D columns.
        cols: usize,
    },
    /// No block size makes the kernel's circular buffers fit one core.
    #[error("kernel for `{node}` does not fit a core: {reason}")]
    DoesNotFit {
        /// The kernel's first node.
        node: String,
        /// The smallest budget tried and the limits.
        reason: String,
    },
    /// The grouping would make kernels depend on each other in a cycle.
    #[error("fusion produced a dependency cycle between kernels at node `{node}`")]
    Cycle {
        /// A node of a kernel in the cycle.
        node: String,
    },
}

impl PlanError {
    /// The shape error for node `n`.
    pub fn shape(graph: &Graph, n: NodeIndex) -> PlanError {
        let node = graph.node(n);
        let (rows, cols) = layout::flat2d(&node.ty.shape);
        PlanError::Shape {
            node: node.name.clone(),
            op: node.op.name(),
            shape: node.ty.shape.clone(),
            rows,
            cols,
        }
    }
}

/// The template a kernel is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum KernelKind {
    /// Elementwise ops, block by block.
    Eltwise,
    /// Elementwise ops with row reductions and broadcasts; each block spans whole rows.
    RowWise,
    /// A matmul over output blocks with K streamed, with an elementwise epilogue.
    Matmul,
    /// A transpose of the last two axes.
    Transpose,
    /// Not a kernel: an op without a TT-Lang template, run by the host as a TTNN op.
    Host,
}

/// One planned kernel.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedKernel {
    /// The kernel's (unique) name.
    pub name: String,
    /// Its template.
    pub kind: KernelKind,
    /// The graph nodes it computes, in order.
    pub nodes: Vec<String>,
    /// Their ops.
    pub ops: Vec<String>,
    /// Graph tensors it reads from DRAM (constant tiles excluded).
    pub reads: Vec<String>,
    /// Graph tensors it writes to DRAM.
    pub writes: Vec<String>,
    /// Work partition and grid.
    pub partition: Partition,
    /// Human-readable partition summary.
    pub partition_summary: String,
    /// Circular buffers per core.
    pub cbs: Vec<Cb>,
    /// Bytes of L1 the buffers use per core.
    pub l1_bytes: u64,
    /// Bytes of L1 available per core.
    pub l1_limit: u64,
    /// Bytes read from DRAM by all cores.
    pub dram_read_bytes: u64,
    /// Bytes written to DRAM by all cores.
    pub dram_write_bytes: u64,
    /// Approximations and other remarks.
    pub notes: Vec<String>,
    /// What the lowering needs to emit the kernel.
    #[serde(skip)]
    pub detail: KernelDetail,
}

/// The whole plan: kernels in launch order, and the fusion decisions.
#[derive(Clone, Debug, Serialize)]
pub struct KernelPlan {
    /// Fused or unfused.
    pub mode: FusionMode,
    /// The target's limits used.
    pub target: Target,
    /// The kernels, in launch order.
    pub kernels: Vec<PlannedKernel>,
    /// Producer/consumer pairs in different kernels, with the reason.
    pub breaks: Vec<FusionBreak>,
    /// Ops that need no kernel.
    pub free: Vec<FreeOp>,
}

impl KernelPlan {
    /// Total DRAM bytes read and written by all kernels.
    pub fn dram_bytes(&self) -> u64 {
        self.kernels
            .iter()
            .map(|k| k.dram_read_bytes + k.dram_write_bytes)
            .sum()
    }
}

/// Plans `graph` for `target`.
pub fn plan(graph: &Graph, target: &Target, mode: FusionMode) -> Result<KernelPlan, PlanError> {
    // Whether a kernel fits needs no search over its splits (`kernel::build` needs the whole
    // kernel, or the kernel with its hidden layer streamed, to fit first). The whole kernels
    // it builds are kept for the cost of the same groups, which starts from them.
    let wholes: RefCell<BTreeMap<group::Group, PlannedKernel>> = RefCell::default();
    let fits = |g: &group::Group| match kernel::fits_some_cut(graph, target, g, mode) {
        Ok(whole) => {
            if let Some(k) = whole {
                wholes.borrow_mut().insert(g.clone(), k);
            }
            Ok(())
        }
        Err(PlanError::DoesNotFit { reason, .. }) => Err(BreakReason::Budget { detail: reason }),
        Err(other) => Err(BreakReason::OpKind {
            detail: other.to_string(),
        }),
    };
    // The grouping search costs a group each time it meets it, and the plan takes the kernels
    // of the groups it chose: each group's kernel is built once.
    let built: RefCell<BTreeMap<group::Group, Option<PlannedKernel>>> = RefCell::default();
    let cost = |g: &group::Group| {
        let mut built = built.borrow_mut();
        let k = built.entry(g.clone()).or_insert_with(|| {
            let whole = wholes.borrow_mut().remove(g).map(Ok);
            let whole = whole
                .unwrap_or_else(|| kernel::build_cut(graph, target, g, mode, kernel::Cut::Whole));
            kernel::build_from_whole(graph, target, g, mode, whole).ok()
        });
        k.as_ref().map(|k| estimate::cycles(k, target))
    };
    let grouping = group::group(graph, mode, &fits, &cost)?;
    let mut built = built.into_inner();
    let mut kernels = Vec::with_capacity(grouping.groups.len());
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    for g in &grouping.groups {
        let mut k = match built.remove(g).flatten() {
            Some(k) => k,
            None => kernel::build(graph, target, g, mode)?,
        };
        let count = taken.entry(k.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            k.name = format!("{}_{}", k.name, count);
        }
        kernels.push(k);
    }
    Ok(KernelPlan {
        mode,
        target: target.clone(),
        kernels,
        breaks: grouping.breaks,
        free: grouping.free,
    })
}
