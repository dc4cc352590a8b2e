//! Per-step and per-program figures for the reports, taken from the runtime's timing report
//! (which computes each kernel's roofline time, roofline multiple and bound, and the program's
//! totals), plus what the charts need: start times, host ops' figures, per-core utilization and
//! the chip's roof.

use serde::Serialize;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{HostOpReport, KernelReport, ProgramReport, StepReport};

pub use ttfuse_runtime::exec::Bound;

/// The lowercase name of a bound, as shown in tables.
pub fn bound_name(b: Bound) -> &'static str {
    match b {
        Bound::Dram => "dram",
        Bound::Compute => "compute",
        Bound::Dispatch => "dispatch",
        Bound::Waiting => "waiting",
    }
}

/// A roofline multiple as text: two decimals, or `-` when there is none.
pub fn multiple_text(m: Option<f64>) -> String {
    m.map_or_else(|| "-".to_string(), |m| format!("{m:.2}"))
}

/// The chip's limits the roofline is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Roof {
    /// Aggregate DRAM bandwidth (measured), bytes per microsecond.
    pub dram_bytes_per_us: f64,
    /// Peak matmul throughput of all cores at the default fidelity, FLOPs per microsecond.
    pub peak_flops_per_us: f64,
    /// Cores on the chip.
    pub cores: u32,
}

impl Roof {
    /// The roof of `device`: one 32x32x32 tile matmul (2 * 32^3 FLOPs) per
    /// `matmul_cycles_per_tile` on every core, and the measured DRAM bandwidth.
    pub fn of(device: &Device) -> Roof {
        let cores = device.grid.x * device.grid.y;
        let per_core_per_cycle = device.core_peak_flops_per_cycle(device.compute.fidelity);
        Roof {
            dram_bytes_per_us: device.dram.measured_gbps * 1e3,
            peak_flops_per_us: per_core_per_cycle * f64::from(cores) * device.clock_ghz * 1e3,
            cores,
        }
    }

    /// The least time in microseconds that moving `bytes` and computing `flops` can take:
    /// max(bytes / bandwidth, FLOPs / peak).
    pub fn time_us(&self, bytes: u64, flops: f64) -> f64 {
        (bytes as f64 / self.dram_bytes_per_us).max(flops / self.peak_flops_per_us)
    }
}

/// The figures of one program step (a kernel launch or a TTNN fallback op).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepFigures {
    /// Kernel name, or the host op's name.
    pub name: String,
    /// `kernel` or `host`.
    pub kind: &'static str,
    /// Core grid `(x, y)`; `(0, 0)` for a host op.
    pub grid: (u32, u32),
    /// When the step starts in the program's modeled timeline, microseconds.
    pub start_us: f64,
    /// Modeled time, dispatch included, microseconds.
    pub time_us: f64,
    /// Dispatch overhead, microseconds.
    pub dispatch_us: f64,
    /// Bytes read from and written to DRAM.
    pub dram_bytes: u64,
    /// Floating-point operations.
    pub flops: f64,
    /// The roofline time: max(DRAM bytes / bandwidth, FLOPs / peak), microseconds.
    pub roofline_us: f64,
    /// Modeled time over roofline time (`None` when the step moves and computes nothing).
    pub roofline_multiple: Option<f64>,
    /// What dominates the modeled time.
    pub bound: Bound,
}

impl StepFigures {
    fn kernel(k: &KernelReport, start_us: f64) -> StepFigures {
        StepFigures {
            name: k.name.clone(),
            kind: "kernel",
            grid: k.grid,
            start_us,
            time_us: k.time_us,
            dispatch_us: k.dispatch_us,
            dram_bytes: k.dram_read_bytes + k.dram_write_bytes,
            flops: k.flops,
            roofline_us: k.roofline.roofline_us,
            roofline_multiple: k.roofline.roofline_multiple,
            bound: k.roofline.bound,
        }
    }

    /// A host op's figures, bounded as the runtime's program totals count it
    /// ([`HostOpReport::roofline`]).
    fn host(h: &HostOpReport, start_us: f64, device: &Device) -> StepFigures {
        let (roofline_us, bound) = h.roofline(device);
        StepFigures {
            name: h.op.clone(),
            kind: "host",
            grid: (0, 0),
            start_us,
            time_us: h.time_us,
            dispatch_us: h.dispatch_us,
            dram_bytes: h.dram_bytes,
            flops: h.flops,
            roofline_us,
            roofline_multiple: (roofline_us > 0.0).then(|| h.time_us / roofline_us),
            bound,
        }
    }
}

/// One core's share of a program's kernel time spent busy in its compute thread.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CoreUtilization {
    /// Core x (column).
    pub x: u32,
    /// Core y (row).
    pub y: u32,
    /// Compute-thread busy cycles over all launches divided by all launches' cycles (0..=1).
    pub compute: f64,
    /// Data-movement threads' busy cycles (the busier of the two) over all launches' cycles.
    pub datamovement: f64,
}

/// Per-core utilization over every launch of a program, row-major over the device grid. A core
/// outside a kernel's grid counts as idle for that kernel.
pub fn core_utilization(report: &ProgramReport, device: &Device) -> Vec<CoreUtilization> {
    let (gx, gy) = (device.grid.x, device.grid.y);
    let mut busy = vec![(0.0f64, 0.0f64); (gx * gy) as usize];
    let mut total = 0.0;
    for k in &report.kernels {
        total += k.cycles;
        for c in &k.cores {
            if c.x >= gx || c.y >= gy {
                continue;
            }
            let slot = &mut busy[(c.y * gx + c.x) as usize];
            let kind_busy = |kind: &str| {
                c.threads
                    .iter()
                    .filter(|t| t.kind == kind)
                    .map(|t| t.busy_cycles)
                    .fold(0.0, f64::max)
            };
            slot.0 += kind_busy("compute");
            slot.1 += kind_busy("datamovement");
        }
    }
    let share = |b: f64| if total > 0.0 { b / total } else { 0.0 };
    (0..gy)
        .flat_map(|y| (0..gx).map(move |x| (x, y)))
        .zip(busy)
        .map(|((x, y), (c, d))| CoreUtilization {
            x,
            y,
            compute: share(c),
            datamovement: share(d),
        })
        .collect()
}

/// The figures of every step of a program run, in order, with their start times.
pub fn step_figures(report: &ProgramReport, device: &Device) -> Vec<StepFigures> {
    let mut start_us = 0.0;
    let mut out = Vec::with_capacity(report.steps.len());
    for step in &report.steps {
        let fig = match step {
            StepReport::Launch(i) => report
                .kernels
                .get(*i)
                .map(|k| StepFigures::kernel(k, start_us)),
            StepReport::Host(i) => report
                .host_ops
                .get(*i)
                .map(|h| StepFigures::host(h, start_us, device)),
        };
        if let Some(f) = fig {
            start_us += f.time_us;
            out.push(f);
        }
    }
    out
}

/// Totals of a program, from the runtime's program roofline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProgramFigures {
    /// Total floating-point operations.
    pub flops: f64,
    /// The sum of every step's roofline time, microseconds.
    pub roofline_us: f64,
    /// Modeled time over roofline time.
    pub roofline_multiple: Option<f64>,
    /// The bound with perfect operand reuse: every kernel moving each tensor once, its math at
    /// the whole grid's peak (`ProgramRoofline::single_pass_us`), microseconds.
    pub single_pass_us: f64,
    /// Modeled time over `single_pass_us`.
    pub single_pass_multiple: Option<f64>,
    /// The bound that accounts for the most modeled time over all steps.
    pub bound: Bound,
}

/// The totals of `report`.
pub fn program_figures(report: &ProgramReport) -> ProgramFigures {
    let bound = report
        .roofline
        .time_by_bound_us
        .iter()
        .fold((Bound::Dispatch, f64::NEG_INFINITY), |best, (&b, &t)| {
            if t > best.1 {
                (b, t)
            } else {
                best
            }
        })
        .0;
    ProgramFigures {
        flops: report.flops,
        roofline_us: report.roofline.roofline_us,
        roofline_multiple: report.roofline.roofline_multiple,
        single_pass_us: report.roofline.single_pass_us,
        single_pass_multiple: report.roofline.single_pass_multiple,
        bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roof_follows_the_device_figures() {
        let d = Device::load("wormhole_b0").unwrap();
        let roof = Roof::of(&d);
        // 1 MB at the measured bandwidth in GB/s (= bytes per ns).
        let us = roof.time_us(1_000_000, 0.0);
        assert!((us - 1_000_000.0 / (d.dram.measured_gbps * 1e3)).abs() < 1e-9);
        // A FLOP count that takes 1 us on the peak: cores * 2*32^3/cycles * clock.
        let cycles = d.compute.matmul_cycles_per_tile.at(d.compute.fidelity);
        let per_us = f64::from(d.grid.x * d.grid.y) * 65536.0 / cycles * d.clock_ghz * 1e3;
        assert!((roof.time_us(0, per_us) - 1.0).abs() < 1e-9);
    }
}
