//! `ttfuse compare`: the fused program against the unfused baseline, side by side.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::ProgramReport;

use super::figures::{self, bound_name, multiple_text, Bound, CoreUtilization, StepFigures};
use crate::agreement::Agreement;
use crate::lower::Compiled;

/// Totals of one program run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramSummary {
    /// TT-Lang kernels in the program.
    pub kernels: usize,
    /// Kernel launches (and TTNN fallback ops) the host performs.
    pub launches: usize,
    /// Bytes read from and written to DRAM.
    pub dram_bytes: u64,
    /// Modeled time, microseconds, dispatch included.
    pub time_us: f64,
    /// Floating-point operations.
    pub flops: f64,
    /// Roofline time of the whole program: max(DRAM bytes / bandwidth, FLOPs / peak).
    pub roofline_us: f64,
    /// Modeled time over roofline time (`None` when the program moves and computes nothing).
    pub roofline_multiple: Option<f64>,
    /// The stricter bound of the same steps with perfect operand reuse: every kernel moving
    /// each tensor once, its math at the whole grid's peak, microseconds.
    pub single_pass_us: f64,
    /// Modeled time over `single_pass_us`.
    pub single_pass_multiple: Option<f64>,
    /// What dominates the modeled time, summed over steps.
    pub bound: Bound,
    /// Every step (kernel launch or TTNN fallback op) in order.
    pub steps: Vec<StepFigures>,
    /// Per-core utilization over the whole program (for the HTML page; not in the JSON).
    #[serde(skip)]
    pub cores: Vec<CoreUtilization>,
}

impl ProgramSummary {
    /// The summary of `compiled` as run on `device` with `report`.
    pub fn new(compiled: &Compiled, report: &ProgramReport, device: &Device) -> Self {
        let steps = figures::step_figures(report, device);
        let totals = figures::program_figures(report);
        ProgramSummary {
            kernels: compiled.program.kernels.len(),
            launches: compiled.program.steps.len(),
            dram_bytes: report.dram_bytes,
            time_us: report.total_us,
            flops: totals.flops,
            roofline_us: totals.roofline_us,
            roofline_multiple: totals.roofline_multiple,
            single_pass_us: totals.single_pass_us,
            single_pass_multiple: totals.single_pass_multiple,
            bound: totals.bound,
            steps,
            cores: figures::core_utilization(report, device),
        }
    }
}

/// The result of `compare`: its JSON form is the stable `compare --json` schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The model's name.
    pub model: String,
    /// The target device.
    pub target: String,
    /// `traced` or `eager`.
    pub dispatch: String,
    /// The unfused baseline (one kernel per graph op).
    pub unfused: ProgramSummary,
    /// The fused program.
    pub fused: ProgramSummary,
    /// Unfused time over fused time.
    pub speedup: f64,
    /// Largest absolute error of the fused outputs against the reference interpreter.
    pub max_abs_err: f64,
    /// Pearson correlation of the fused outputs with the reference (worst output).
    pub pcc: f64,
    /// The unfused outputs against the reference.
    pub unfused_agreement: Agreement,
    /// The fused outputs against the reference, per graph output.
    pub outputs: BTreeMap<String, Agreement>,
    /// Graph outputs whose reference holds one value throughout (a uniform softmax over logits
    /// that constant weights make equal): agreement on them checks that value only, not what
    /// the network computes before it.
    pub constant_references: Vec<String>,
}

impl Comparison {
    /// Builds the comparison from both runs and their agreement with the reference.
    pub fn new(
        model: &str,
        target: &str,
        dispatch: &str,
        unfused: ProgramSummary,
        fused: ProgramSummary,
        unfused_agreement: Agreement,
        fused_outputs: BTreeMap<String, Agreement>,
    ) -> Self {
        let fused_overall = fused_outputs
            .values()
            .fold(Agreement::perfect(), |a, &b| a.worst(b));
        Comparison {
            model: model.to_string(),
            target: target.to_string(),
            dispatch: dispatch.to_string(),
            speedup: unfused.time_us / fused.time_us,
            unfused,
            fused,
            max_abs_err: fused_overall.max_abs_err,
            pcc: fused_overall.pcc,
            unfused_agreement,
            outputs: fused_outputs,
            constant_references: Vec::new(),
        }
    }

    /// The comparison, noting the graph outputs whose reference holds one value throughout
    /// ([`Comparison::constant_references`]).
    pub fn with_constant_references(mut self, names: Vec<String>) -> Self {
        self.constant_references = names;
        self
    }

    /// The JSON form (pretty-printed, stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a comparison always serializes")
    }

    /// The table a person reads: both programs step by step, then the totals side by side,
    /// the speedup and the agreement with the reference.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} on {} ({} dispatch)",
            self.model, self.target, self.dispatch
        );
        for (label, p) in [("unfused", &self.unfused), ("fused", &self.fused)] {
            let _ = writeln!(s, "\n{label}: {} launches", p.launches);
            let _ = writeln!(s, "{}", step_header());
            for (i, step) in p.steps.iter().enumerate() {
                let _ = writeln!(s, "{}", step_row(i, step));
            }
        }
        let _ = writeln!(s, "\ntotals");
        let _ = writeln!(
            s,
            "           {:>8} {:>9} {:>14} {:>10} {:>12} {:>10}  bound",
            "kernels", "launches", "DRAM bytes", "MFLOP", "time (us)", "x roofline"
        );
        for (label, p) in [("unfused", &self.unfused), ("fused", &self.fused)] {
            let _ = writeln!(
                s,
                "  {label:<8} {:>8} {:>9} {:>14} {:>10.2} {:>12.2} {:>10}  {}",
                p.kernels,
                p.launches,
                group_thousands(p.dram_bytes),
                p.flops / 1e6,
                p.time_us,
                multiple_text(p.roofline_multiple),
                bound_name(p.bound)
            );
        }
        let _ = writeln!(
            s,
            "\n  x roofline with perfect reuse (each kernel moving every tensor once, math at the whole grid's peak):"
        );
        for (label, p) in [("unfused", &self.unfused), ("fused", &self.fused)] {
            let _ = writeln!(
                s,
                "  {label:<8} {}x of {:.2} us",
                multiple_text(p.single_pass_multiple),
                p.single_pass_us
            );
        }
        let _ = writeln!(s, "\n  speedup   {:.2}x", self.speedup);
        let _ = writeln!(
            s,
            "  fused   vs reference: max |err| {:.3e}, PCC {:.6}",
            self.max_abs_err, self.pcc
        );
        let _ = writeln!(
            s,
            "  unfused vs reference: max |err| {:.3e}, PCC {:.6}",
            self.unfused_agreement.max_abs_err, self.unfused_agreement.pcc
        );
        if !self.constant_references.is_empty() {
            let _ = writeln!(
                s,
                "  note: every value of the reference's {} is the same, so the agreement checks that one value, not what the network computes before it",
                self.constant_references.join(", ")
            );
        }
        s
    }
}

/// The column headings of [`step_row`].
fn step_header() -> String {
    format!(
        "  {:>3} {:<34} {:>5} {:>12} {:>10} {:>10} {:>10}  bound",
        "#", "kernel", "grid", "DRAM bytes", "MFLOP", "time (us)", "x roofline"
    )
}

/// One step as a table row.
fn step_row(i: usize, f: &StepFigures) -> String {
    let grid = if f.kind == "host" {
        "host".to_string()
    } else {
        format!("{}x{}", f.grid.0, f.grid.1)
    };
    format!(
        "  {:>3} {:<34} {:>5} {:>12} {:>10.3} {:>10.2} {:>10}  {}",
        i,
        f.name,
        grid,
        group_thousands(f.dram_bytes),
        f.flops / 1e6,
        f.time_us,
        multiple_text(f.roofline_multiple),
        bound_name(f.bound)
    )
}

/// `1234567` as `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
    }
}
