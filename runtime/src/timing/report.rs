//! What a run reports: per kernel (cycles, time, DRAM bytes, FLOPs, per-core per-thread busy and
//! wait cycles) and per program (every launch and host op, totals).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::device::Device;

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
    /// Bytes of the kernel's tensor arguments: its DRAM traffic were it to move each once.
    pub tensor_bytes: u64,
    /// The roofline bound, the modeled time as a multiple of it, and what bounds the kernel.
    #[serde(flatten)]
    pub roofline: Roofline,
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
    /// Floating-point operations ([`crate::exec::HostOps::flops`]).
    pub flops: f64,
    /// Dispatch plus the longer of the DRAM traffic at the aggregate bandwidth and the math at
    /// the whole grid's peak rate, in microseconds.
    pub time_us: f64,
}

impl HostOpReport {
    /// The op's roofline time on `device` in microseconds (the longer of its DRAM traffic at
    /// the aggregate bandwidth and its math at the grid's peak rate), and what bounds its
    /// modeled time: that roofline's larger side, or the dispatch when that is longer.
    pub fn roofline(&self, device: &Device) -> (f64, Bound) {
        let dram_us = device.cycles_to_us(self.dram_bytes as f64 / device.dram_bytes_per_cycle());
        let math_us = device.cycles_to_us(self.flops / device.grid_peak_flops_per_cycle());
        let roofline_us = dram_us.max(math_us);
        let bound = if self.dispatch_us >= roofline_us {
            Bound::Dispatch
        } else if math_us > dram_us {
            Bound::Compute
        } else {
            Bound::Dram
        };
        (roofline_us, bound)
    }
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
    /// Roofline totals over every step.
    #[serde(flatten)]
    pub roofline: ProgramRoofline,
}

/// What bounds a kernel's modeled time: the largest of its dispatch overhead, its DRAM traffic at
/// the chip's aggregate bandwidth, the busiest core's compute work, and the rest of the
/// device-side time (threads waiting on each other, on per-core DMA rates or on latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// DRAM bytes over the aggregate bandwidth.
    Dram,
    /// The busiest compute thread's own work.
    Compute,
    /// The launch overhead.
    Dispatch,
    /// Device time explained by neither DRAM nor compute.
    Waiting,
}

/// A kernel's roofline figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Roofline {
    /// `max(DRAM bytes / aggregate bandwidth, FLOPs / peak)` in microseconds, where the peak is
    /// the matmul peak at the device's fidelity of the cores in the kernel's grid.
    pub roofline_us: f64,
    /// Modeled time (with dispatch) over `roofline_us`; `None` when the kernel moves no DRAM
    /// bytes and does no FLOPs.
    pub roofline_multiple: Option<f64>,
    /// What bounds the modeled time.
    pub bound: Bound,
}

impl Roofline {
    /// The roofline of a kernel on `device` with grid `grid` that modeled `cycles` of device
    /// time plus `dispatch_us`, moving `dram_bytes` and doing `flops`; `cores` gives the
    /// compute threads' busy time.
    pub fn of(
        device: &Device,
        grid: (u32, u32),
        cycles: f64,
        dispatch_us: f64,
        dram_bytes: u64,
        flops: f64,
        cores: &[CoreReport],
    ) -> Roofline {
        let compute_cycles = cores
            .iter()
            .flat_map(|c| &c.threads)
            .filter(|t| t.kind == "compute")
            .map(|t| t.busy_cycles)
            .fold(0.0, f64::max);
        let dram_cycles = dram_bytes as f64 / device.dram_bytes_per_cycle();
        let peak =
            device.core_peak_flops_per_cycle(device.compute.fidelity) * f64::from(grid.0 * grid.1);
        let flop_cycles = flops / peak;
        let roofline_us = device.cycles_to_us(dram_cycles.max(flop_cycles));
        let time_us = device.cycles_to_us(cycles) + dispatch_us;
        let roofline_multiple = (roofline_us > 0.0).then(|| time_us / roofline_us);
        let parts = [
            (Bound::Dram, device.cycles_to_us(dram_cycles)),
            (Bound::Compute, device.cycles_to_us(compute_cycles)),
            (Bound::Dispatch, dispatch_us),
            (
                Bound::Waiting,
                device.cycles_to_us(cycles - dram_cycles.max(compute_cycles)),
            ),
        ];
        let bound = parts
            .iter()
            .fold(parts[0], |best, p| if p.1 > best.1 { *p } else { best })
            .0;
        Roofline {
            roofline_us,
            roofline_multiple,
            bound,
        }
    }
}

/// Roofline totals of a program run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProgramRoofline {
    /// Sum of every kernel's roofline and every host op's DRAM time, in microseconds.
    pub roofline_us: f64,
    /// Total time over `roofline_us` (`None` when that is zero).
    pub roofline_multiple: Option<f64>,
    /// The stricter bound of the same steps with perfect operand reuse, in microseconds: per
    /// kernel the longer of moving each tensor argument once at the aggregate DRAM bandwidth
    /// and its FLOPs at the whole grid's peak (a kernel that re-reads its operands, or leaves
    /// cores idle, is measured against it), plus every host op's roofline.
    pub single_pass_us: f64,
    /// Total time over `single_pass_us` (`None` when that is zero).
    pub single_pass_multiple: Option<f64>,
    /// Microseconds of kernel time by what bounds each kernel (host ops count as dispatch, DRAM
    /// or compute, whichever is largest).
    pub time_by_bound_us: BTreeMap<Bound, f64>,
}

impl ProgramRoofline {
    /// The totals over `kernels` and `host_ops` of a run on `device` that took `total_us`.
    pub fn of(
        device: &Device,
        kernels: &[KernelReport],
        host_ops: &[HostOpReport],
        total_us: f64,
    ) -> ProgramRoofline {
        let mut r = ProgramRoofline::default();
        for k in kernels {
            r.roofline_us += k.roofline.roofline_us;
            let dram_cycles = k.tensor_bytes as f64 / device.dram_bytes_per_cycle();
            let math_cycles = k.flops / device.grid_peak_flops_per_cycle();
            r.single_pass_us += device.cycles_to_us(dram_cycles.max(math_cycles));
            *r.time_by_bound_us.entry(k.roofline.bound).or_default() += k.time_us;
        }
        for h in host_ops {
            let (roofline_us, bound) = h.roofline(device);
            r.roofline_us += roofline_us;
            r.single_pass_us += roofline_us;
            *r.time_by_bound_us.entry(bound).or_default() += h.time_us;
        }
        r.roofline_multiple = (r.roofline_us > 0.0).then(|| total_us / r.roofline_us);
        r.single_pass_multiple = (r.single_pass_us > 0.0).then(|| total_us / r.single_pass_us);
        r
    }
}
