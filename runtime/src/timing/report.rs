//! What a run reports: per kernel (cycles, time, DRAM bytes, FLOPs, per-core per-thread busy and
//! wait cycles) and per program (every launch and host op, totals).

use serde::Serialize;

/// One thread's timeline summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadReport {
    /// The thread function's name.
    pub name: String,
    /// `compute` or `datamovement`.
    pub kind: String,
    /// Cycle at which the thread finished.
    pub end_cycles: f64,
    /// Cycles spent on its own work (compute pipeline, DMA transfers it waited on).
    pub busy_cycles: f64,
    /// Cycles spent blocked on circular buffers or pipes.
    pub wait_cycles: f64,
}

/// One core's threads.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoreReport {
    /// Core x (column).
    pub x: u32,
    /// Core y (row).
    pub y: u32,
    /// Its threads in kernel order.
    pub threads: Vec<ThreadReport>,
}

/// The result of one kernel launch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelReport {
    /// Kernel name.
    pub name: String,
    /// Grid `(x, y)`.
    pub grid: (u32, u32),
    /// Cycles until the last thread finished (without dispatch).
    pub cycles: f64,
    /// Dispatch overhead added for this launch, in microseconds.
    pub dispatch_us: f64,
    /// `cycles` at the device clock plus dispatch, in microseconds.
    pub time_us: f64,
    /// Bytes read from DRAM.
    pub dram_read_bytes: u64,
    /// Bytes written to DRAM.
    pub dram_write_bytes: u64,
    /// Bytes sent through pipes.
    pub noc_bytes: u64,
    /// Floating-point operations.
    pub flops: f64,
    /// Peak circular-buffer bytes allocated on any core.
    pub l1_cb_bytes: u64,
    /// Per-core, per-thread timelines.
    pub cores: Vec<CoreReport>,
    /// What the kernel did that runs but deserves attention (blocks pushed and never consumed,
    /// ops the guide calls broken), each naming the kernel and where.
    pub warnings: Vec<String>,
}

/// The cost of one host (TTNN fallback) op.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostOpReport {
    /// The op's name.
    pub op: String,
    /// Dispatch overhead in microseconds.
    pub dispatch_us: f64,
    /// Bytes read and written in DRAM.
    pub dram_bytes: u64,
    /// Dispatch plus DRAM traffic at the aggregate bandwidth, in microseconds.
    pub time_us: f64,
}

/// One step of a program run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StepReport {
    /// A kernel launch: index into [`ProgramReport::kernels`].
    Launch(usize),
    /// A host op: index into [`ProgramReport::host_ops`].
    Host(usize),
}

/// The result of a whole program run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramReport {
    /// Every kernel launch, in order.
    pub kernels: Vec<KernelReport>,
    /// Every host op, in order.
    pub host_ops: Vec<HostOpReport>,
    /// The steps in order.
    pub steps: Vec<StepReport>,
    /// Whether dispatch was traced or eager.
    pub dispatch: String,
    /// Total time of all steps, in microseconds.
    pub total_us: f64,
    /// Total DRAM bytes read and written.
    pub dram_bytes: u64,
    /// Total floating-point operations.
    pub flops: f64,
}
