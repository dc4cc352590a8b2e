//! The SVG charts of the HTML report: a timeline of both programs' steps, per-core utilization
//! heat maps, and the roofline plot. Each function returns one `<svg>` element as text; numbers
//! are printed with fixed precision so the page is byte-identical for the same input.

use std::fmt::Write;

use super::compare::{Comparison, ProgramSummary};
use super::figures::{bound_name, multiple_text, Bound, Roof};

/// Escapes `&`, `<`, `>` and `"` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The fill colour of a bound.
pub fn bound_color(b: Bound) -> &'static str {
    match b {
        Bound::Dram => "#3b7dd8",
        Bound::Compute => "#d8743b",
        Bound::Dispatch => "#9a9a9a",
        Bound::Waiting => "#c9a227",
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` ticks up to `max`.
fn tick_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The timeline: one lane per program on a shared time axis; each step a bar coloured by its
/// bound, its dispatch share drawn lighter.
pub fn timeline(cmp: &Comparison) -> String {
    let (w, left, right, lane_h, top) = (960.0, 80.0, 70.0, 44.0, 20.0);
    let plot_w = w - left - right;
    let max_t = cmp.unfused.time_us.max(cmp.fused.time_us).max(1e-9);
    let x = |t: f64| left + t / max_t * plot_w;
    let h = top + 2.0 * (lane_h + 16.0) + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg id="timeline" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="timeline of kernels">"#
    );
    for (lane, (label, p)) in [("unfused", &cmp.unfused), ("fused", &cmp.fused)]
        .into_iter()
        .enumerate()
    {
        let y = top + lane as f64 * (lane_h + 16.0);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="lane">{label}</text>"#,
            left - 8.0,
            y + lane_h / 2.0 + 4.0
        );
        for (i, st) in p.steps.iter().enumerate() {
            let (x0, x1) = (x(st.start_us), x(st.start_us + st.time_us));
            let xd = x(st.start_us + st.dispatch_us);
            let _ = writeln!(
                s,
                r##"<g><title>{} #{i} {}: {:.2} us ({:.2} us dispatch), {} B DRAM, {:.3} MFLOP, {}x roofline, {}-bound</title><rect x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{lane_h:.1}" fill="{}" opacity="0.35"/><rect x="{xd:.2}" y="{y:.1}" width="{:.2}" height="{lane_h:.1}" fill="{}"/><line x1="{x1:.2}" y1="{y:.1}" x2="{x1:.2}" y2="{:.1}" stroke="#fff" stroke-width="1"/></g>"##,
                esc(label),
                esc(&st.name),
                st.time_us,
                st.dispatch_us,
                st.dram_bytes,
                st.flops / 1e6,
                multiple_text(st.roofline_multiple),
                bound_name(st.bound),
                (x1 - x0).max(0.5),
                bound_color(Bound::Dispatch),
                (x1 - xd).max(0.0),
                bound_color(st.bound),
                y + lane_h
            );
            if x1 - x0 > 7.0 * st.name.len().min(14) as f64 {
                let name: String = st.name.chars().take(14).collect();
                let _ = writeln!(
                    s,
                    r#"<text x="{:.2}" y="{:.1}" class="bar">{}</text>"#,
                    x0 + 3.0,
                    y + lane_h / 2.0 + 4.0,
                    esc(&name)
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.1}" class="end">{:.1} us</text>"#,
            x(p.time_us) + 4.0,
            y + lane_h / 2.0 + 4.0,
            p.time_us
        );
    }
    let axis_y = top + 2.0 * (lane_h + 16.0) + 4.0;
    let _ = writeln!(
        s,
        r##"<line x1="{left:.1}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#444"/>"##,
        w - right
    );
    let step = tick_step(max_t, 8.0);
    let mut t = 0.0;
    while t <= max_t * 1.0001 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.2}" y1="{axis_y:.1}" x2="{0:.2}" y2="{1:.1}" stroke="#444"/><text x="{0:.2}" y="{2:.1}" class="tick">{3}</text>"##,
            x(t),
            axis_y + 4.0,
            axis_y + 16.0,
            fmt_tick(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="axis">time (us)</text>"#,
        left + plot_w / 2.0,
        axis_y + 32.0
    );
    s += "</svg>\n";
    s
}

/// A tick label: integers without decimals, others with up to 3 significant decimals.
fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One heat map of per-core compute utilization over the device grid.
pub fn utilization(label: &str, p: &ProgramSummary, grid: (u32, u32)) -> String {
    let cell = 34.0;
    let (gx, gy) = (f64::from(grid.0), f64::from(grid.1));
    let (w, h) = (gx * cell + 40.0, gy * cell + 30.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="util" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="{} per-core utilization">"#,
        esc(label)
    );
    let _ = writeln!(
        s,
        r#"<text x="30" y="14" class="lane-left">{}</text>"#,
        esc(label)
    );
    for c in &p.cores {
        let (x, y) = (30.0 + f64::from(c.x) * cell, 22.0 + f64::from(c.y) * cell);
        let pct = c.compute * 100.0;
        // White (idle) to deep orange (always busy).
        let mix = |a: f64, b: f64| (a + (b - a) * c.compute.clamp(0.0, 1.0)).round() as u8;
        let fill = format!(
            "#{:02x}{:02x}{:02x}",
            mix(255.0, 216.0),
            mix(255.0, 90.0),
            mix(255.0, 20.0)
        );
        let _ = writeln!(
            s,
            r##"<g><title>core ({}, {}): compute busy {pct:.1}%, data movement busy {:.1}%</title><rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#bbb"/><text x="{:.1}" y="{:.1}" class="cell">{pct:.0}</text></g>"##,
            c.x,
            c.y,
            c.datamovement * 100.0,
            cell - 2.0,
            cell - 2.0,
            x + cell / 2.0 - 1.0,
            y + cell / 2.0 + 3.0
        );
    }
    s += "</svg>\n";
    s
}

/// The roofline plot: achieved GFLOP/s against arithmetic intensity (FLOPs per DRAM byte), log
/// scales, the DRAM slope and the compute ceiling, one marker per kernel of each program.
pub fn roofline(cmp: &Comparison, roof: &Roof) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 420.0, 70.0, 50.0, 20.0, 150.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let peak = roof.peak_flops_per_us / 1e3; // GFLOP/s
    let bw = roof.dram_bytes_per_us / 1e3; // GB/s
    let points: Vec<(&str, f64, f64, &str)> = [("unfused", &cmp.unfused), ("fused", &cmp.fused)]
        .into_iter()
        .flat_map(|(label, p)| {
            p.steps
                .iter()
                .filter(|st| st.flops > 0.0 && st.dram_bytes > 0 && st.time_us > 0.0)
                .map(move |st| {
                    (
                        label,
                        st.flops / st.dram_bytes as f64,
                        st.flops / st.time_us / 1e3,
                        st.name.as_str(),
                    )
                })
        })
        .collect();
    let ridge = peak / bw;
    let ai_min = points.iter().map(|p| p.1).fold(ridge, f64::min) / 4.0;
    let ai_max = points.iter().map(|p| p.1).fold(ridge, f64::max) * 8.0;
    let perf_min = points.iter().map(|p| p.2).fold(peak, f64::min) / 4.0;
    let perf_max = peak * 3.0;
    let (lx0, lx1) = (ai_min.log10().floor(), ai_max.log10().ceil());
    let (ly0, ly1) = (perf_min.log10().floor(), perf_max.log10().ceil());
    let x = |ai: f64| left + (ai.log10() - lx0) / (lx1 - lx0) * pw;
    let y = |g: f64| top + ph - (g.log10() - ly0) / (ly1 - ly0) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg id="roofline" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="roofline plot">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left:.1}" y="{top:.1}" width="{pw:.1}" height="{ph:.1}" fill="#fafafa" stroke="#444"/>"##
    );
    for d in lx0 as i32..=lx1 as i32 {
        let xv = x(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{xv:.2}" y1="{top:.1}" x2="{xv:.2}" y2="{:.1}" stroke="#e2e2e2"/><text x="{xv:.2}" y="{:.1}" class="tick">1e{d}</text>"##,
            top + ph,
            top + ph + 16.0
        );
    }
    for d in ly0 as i32..=ly1 as i32 {
        let yv = y(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{left:.1}" y1="{yv:.2}" x2="{:.1}" y2="{yv:.2}" stroke="#e2e2e2"/><text x="{:.1}" y="{:.2}" class="tick-left">1e{d}</text>"##,
            left + pw,
            left - 6.0,
            yv + 4.0
        );
    }
    // The roof: bandwidth slope up to the ridge point, then the compute ceiling.
    let a0 = 10f64.powf(lx0);
    let a1 = 10f64.powf(lx1);
    let y_at = |ai: f64| (ai * bw).min(peak).max(10f64.powf(ly0));
    let start = a0.max(10f64.powf(ly0) / bw);
    let _ = writeln!(
        s,
        r##"<polyline points="{:.2},{:.2} {:.2},{:.2} {:.2},{:.2}" fill="none" stroke="#222" stroke-width="2"/>"##,
        x(start),
        y(y_at(start)),
        x(ridge),
        y(peak),
        x(a1),
        y(peak)
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="label-end">peak {:.0} GFLOP/s</text><text x="{:.1}" y="{:.1}" class="label">DRAM {:.0} GB/s</text>"#,
        left + pw - 4.0,
        y(peak) - 6.0,
        peak,
        x(ridge / 100.0) - 110.0,
        y(y_at(ridge / 100.0)),
        bw
    );
    for (label, ai, perf, name) in &points {
        let (cx, cy) = (x(*ai), y(*perf));
        let title = format!("{label} {name}: {ai:.2} FLOP/B, {perf:.1} GFLOP/s");
        if *label == "fused" {
            let _ = writeln!(
                s,
                r##"<g><title>{}</title><rect x="{:.2}" y="{:.2}" width="9" height="9" fill="#2a9d5b" stroke="#145c33"/></g>"##,
                esc(&title),
                cx - 4.5,
                cy - 4.5
            );
        } else {
            let _ = writeln!(
                s,
                r##"<g><title>{}</title><circle cx="{cx:.2}" cy="{cy:.2}" r="4.5" fill="none" stroke="#b03a48" stroke-width="1.5"/></g>"##,
                esc(&title)
            );
        }
    }
    let lx = left + pw + 14.0;
    let _ = writeln!(
        s,
        r##"<circle cx="{lx:.1}" cy="{:.1}" r="4.5" fill="none" stroke="#b03a48" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" class="legend">unfused kernel</text><rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#2a9d5b" stroke="#145c33"/><text x="{:.1}" y="{:.1}" class="legend">fused kernel</text>"##,
        top + 10.0,
        lx + 10.0,
        top + 14.0,
        lx - 4.5,
        top + 25.5,
        lx + 10.0,
        top + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="axis">arithmetic intensity (FLOPs per DRAM byte)</text><text transform="translate(16 {:.1}) rotate(-90)" class="axis">achieved GFLOP/s (dispatch included)</text>"#,
        left + pw / 2.0,
        h - 12.0,
        top + ph / 2.0
    );
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(125.0, 8.0), 20.0);
        assert_eq!(tick_step(61.6, 8.0), 10.0);
        assert_eq!(tick_step(0.9, 8.0), 0.2);
        assert_eq!(fmt_tick(40.0), "40");
        assert_eq!(fmt_tick(0.2), "0.2");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(esc(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
