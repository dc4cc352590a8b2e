//! The per-kernel timing breakdown as text: totals, then each thread's busy and waiting cycles
//! over the cores (the slowest core first, since it sets the kernel's time).

use std::fmt::Write;

use ttfuse_runtime::exec::KernelReport;

/// Renders one kernel's report.
pub fn kernel_text(k: &KernelReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel {} on a {}x{} grid: {:.2} us ({:.0} cycles + {:.2} us dispatch)",
        k.name, k.grid.0, k.grid.1, k.time_us, k.cycles, k.dispatch_us
    );
    let _ = writeln!(
        s,
        "  DRAM read {} B, write {} B; NoC {} B; {:.3} GFLOP; peak CB L1 {} B per core",
        k.dram_read_bytes,
        k.dram_write_bytes,
        k.noc_bytes,
        k.flops / 1e9,
        k.l1_cb_bytes
    );
    let Some(slowest) = k.cores.iter().max_by(|a, b| {
        let end = |c: &&ttfuse_runtime::exec::CoreReport| {
            c.threads.iter().map(|t| t.end_cycles).fold(0.0, f64::max)
        };
        end(a).total_cmp(&end(b)).then((b.y, b.x).cmp(&(a.y, a.x)))
    }) else {
        return s;
    };
    let _ = writeln!(s, "  slowest core ({}, {}):", slowest.x, slowest.y);
    let _ = writeln!(
        s,
        "    {:<16} {:<13} {:>12} {:>12} {:>12}",
        "thread", "kind", "busy", "waiting", "finished"
    );
    for t in &slowest.threads {
        let _ = writeln!(
            s,
            "    {:<16} {:<13} {:>12.0} {:>12.0} {:>12.0}",
            t.name, t.kind, t.busy_cycles, t.wait_cycles, t.end_cycles
        );
    }
    if k.cores.len() > 1 {
        let _ = writeln!(
            s,
            "  over all {} cores (busy cycles, min / mean / max):",
            k.cores.len()
        );
        for (i, t) in slowest.threads.iter().enumerate() {
            let busy: Vec<f64> = k
                .cores
                .iter()
                .filter_map(|c| c.threads.get(i))
                .map(|t| t.busy_cycles)
                .collect();
            let mean = busy.iter().sum::<f64>() / busy.len() as f64;
            let min = busy.iter().copied().fold(f64::INFINITY, f64::min);
            let max = busy.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "    {:<16} {:>12.0} {:>12.0} {:>12.0}",
                t.name, min, mean, max
            );
        }
    }
    s
}
