//! `compare --html`: one self-contained page (inline CSS and SVG, no scripts, no external
//! resources) with the comparison's tables and charts.

use std::fmt::Write;

use ttfuse_runtime::device::Device;

use super::charts::{self, bound_color, esc};
use super::compare::{Comparison, ProgramSummary};
use super::figures::{bound_name, multiple_text, Bound, Roof};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px 32px;color:#222;max-width:1000px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}\
.sub{color:#666;margin-top:0}table{border-collapse:collapse;font-size:13px;margin:8px 0}\
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}th{background:#f4f4f4}\
td.l,th.l{text-align:left}.big{font-size:28px;font-weight:600;color:#2a7a4b}\
.cards{display:flex;gap:28px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 16px}\
.card span{display:block;color:#666;font-size:12px}.pair{display:flex;gap:24px;flex-wrap:wrap}\
.swatch{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:-1px}\
svg{max-width:100%;height:auto}svg text{font-size:11px;fill:#333}svg text.lane{text-anchor:end;font-weight:600;font-size:12px}\
svg text.bar{fill:#111;font-size:10px}svg text.tick{text-anchor:middle}svg text.tick-left{text-anchor:end}\
svg text.axis{text-anchor:middle;font-size:12px}svg text.label-end{text-anchor:end}svg text.cell{text-anchor:middle;font-size:10px}\
svg text.lane-left,svg text.axis-left{font-size:12px}details{margin:8px 0}summary{cursor:pointer}";

/// The whole page for `cmp` on `device`.
pub fn page(cmp: &Comparison, device: &Device) -> String {
    let roof = Roof::of(device);
    let mut s = String::new();
    s += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    let _ = writeln!(
        s,
        "<title>ttfuse compare: {} on {}</title>",
        esc(&cmp.model),
        esc(&cmp.target)
    );
    let _ = writeln!(s, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        s,
        "<h1>{}: fused vs unfused</h1>\n<p class=\"sub\">{} ({}, {}x{} cores, {:.0} GB/s DRAM, {:.0} GFLOP/s peak), {} dispatch. Modeled by the ttfuse runtime.</p>",
        esc(&cmp.model),
        esc(&cmp.target),
        esc(&device.card),
        device.grid.x,
        device.grid.y,
        roof.dram_bytes_per_us / 1e3,
        roof.peak_flops_per_us / 1e3,
        esc(&cmp.dispatch)
    );
    s += &cards(cmp);
    s += "<h2>Totals</h2>\n";
    s += &totals_table(cmp);
    s += "<h2>Timeline</h2>\n<p>Each bar is one kernel launch (or TTNN op), coloured by what bounds it; its lighter left part is the dispatch overhead. Hover a bar for its figures.";
    for b in [Bound::Dram, Bound::Compute, Bound::Dispatch, Bound::Waiting] {
        let _ = write!(
            s,
            "<span class=\"swatch\" style=\"background:{}\"></span>{}",
            bound_color(b),
            bound_name(b)
        );
    }
    s += "</p>\n";
    s += &charts::timeline(cmp);
    s += "<h2>Per-core utilization</h2>\n<p>Percentage of each program's kernel cycles in which a core's compute thread was busy (x = core column, y = core row; hover a core for its data-movement share).</p>\n<div class=\"pair\">\n";
    let grid = (device.grid.x, device.grid.y);
    s += &charts::utilization("unfused", &cmp.unfused, grid);
    s += &charts::utilization("fused", &cmp.fused, grid);
    s += "</div>\n<h2>Roofline</h2>\n";
    s += &charts::roofline(cmp, &roof);
    for (label, p) in [("unfused", &cmp.unfused), ("fused", &cmp.fused)] {
        let _ = writeln!(s, "<h2>{label} program: {} launches</h2>", p.launches);
        s += &steps_table(p);
    }
    s += "<h2>Numerical agreement with the reference interpreter</h2>\n<table><tr><th class=\"l\">output</th><th>max |err|</th><th>PCC</th></tr>\n";
    for (name, a) in &cmp.outputs {
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{} (fused)</td><td>{:.3e}</td><td>{:.6}</td></tr>",
            esc(name),
            a.max_abs_err,
            a.pcc
        );
    }
    let _ = writeln!(
        s,
        "<tr><td class=\"l\">all outputs (unfused)</td><td>{:.3e}</td><td>{:.6}</td></tr>\n</table>",
        cmp.unfused_agreement.max_abs_err, cmp.unfused_agreement.pcc
    );
    s += "</body>\n</html>\n";
    s
}

fn cards(cmp: &Comparison) -> String {
    format!(
        "<div class=\"cards\"><div class=\"card\"><span>speedup</span><div class=\"big\">{:.2}x</div></div>\
<div class=\"card\"><span>modeled time</span>{:.2} us &rarr; {:.2} us</div>\
<div class=\"card\"><span>launches</span>{} &rarr; {}</div>\
<div class=\"card\"><span>DRAM traffic</span>{} &rarr; {} B</div>\
<div class=\"card\"><span>fused vs reference</span>PCC {:.6}, max |err| {:.2e}</div></div>\n",
        cmp.speedup,
        cmp.unfused.time_us,
        cmp.fused.time_us,
        cmp.unfused.launches,
        cmp.fused.launches,
        cmp.unfused.dram_bytes,
        cmp.fused.dram_bytes,
        cmp.pcc,
        cmp.max_abs_err
    )
}

fn totals_table(cmp: &Comparison) -> String {
    let mut s = String::from(
        "<table><tr><th class=\"l\">program</th><th>kernels</th><th>launches</th><th>DRAM bytes</th><th>MFLOP</th><th>time (us)</th><th>roofline (us)</th><th>x roofline</th><th class=\"l\">bound</th></tr>\n",
    );
    for (label, p) in [("unfused", &cmp.unfused), ("fused", &cmp.fused)] {
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            p.kernels,
            p.launches,
            p.dram_bytes,
            p.flops / 1e6,
            p.time_us,
            p.roofline_us,
            multiple_text(p.roofline_multiple),
            bound_name(p.bound)
        );
    }
    s += "</table>\n";
    s
}

fn steps_table(p: &ProgramSummary) -> String {
    let mut s = String::from(
        "<details><summary>per kernel</summary><table><tr><th>#</th><th class=\"l\">kernel</th><th>grid</th><th>start (us)</th><th>time (us)</th><th>dispatch (us)</th><th>DRAM bytes</th><th>MFLOP</th><th>x roofline</th><th class=\"l\">bound</th></tr>\n",
    );
    for (i, st) in p.steps.iter().enumerate() {
        let grid = if st.kind == "host" {
            "host".to_string()
        } else {
            format!("{}x{}", st.grid.0, st.grid.1)
        };
        let _ = writeln!(
            s,
            "<tr><td>{i}</td><td class=\"l\">{}</td><td>{grid}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{:.3}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&st.name),
            st.start_us,
            st.time_us,
            st.dispatch_us,
            st.dram_bytes,
            st.flops / 1e6,
            multiple_text(st.roofline_multiple),
            bound_name(st.bound)
        );
    }
    s += "</table></details>\n";
    s
}
