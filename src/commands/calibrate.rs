//! `ttfuse calibrate`: the timing model beside published measurements, row by row.

use anyhow::Result;
use clap::Args;
use ttfuse_runtime::calibrate::{self, Options, Row};

/// Arguments of `ttfuse calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Target device: wormhole_b0 (n150) or blackhole (p150).
    #[arg(long, default_value = "wormhole_b0")]
    pub target: String,
    /// Print a JSON list of {"name", "published", "modeled", "ratio"} (and "note" where a row is
    /// off or not simulated).
    #[arg(long)]
    pub json: bool,
    /// Simulate every GEMM row, including the largest (minutes in a release build).
    #[arg(long)]
    pub all: bool,
}

/// Runs `ttfuse calibrate`.
pub fn run(args: &CalibrateArgs) -> Result<()> {
    let opts = if args.all {
        Options {
            max_gemm_macs: u64::MAX,
        }
    } else {
        Options::default()
    };
    let rows = calibrate::run(&args.target, opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&args.target, &rows));
    }
    Ok(())
}

/// The rows as a text table, with the notes of rows that are off or not simulated below it.
fn table(target: &str, rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut s = format!(
        "calibration of {target} (ratio = modeled / published; within {:.0}% passes)\n{:<width$}  {:>10}  {:>10}  {:>6}\n",
        calibrate::TOLERANCE * 100.0,
        "row",
        "published",
        "modeled",
        "ratio"
    );
    let mut notes = Vec::new();
    for r in rows {
        let modeled = r.modeled.map_or("-".to_string(), |m| format!("{m:.2}"));
        let ratio = r.ratio.map_or("-".to_string(), |x| format!("{x:.3}"));
        let mark = match &r.note {
            Some(n) => {
                notes.push(format!("[{}] {}: {n}", notes.len() + 1, r.name));
                format!("  [{}]", notes.len())
            }
            None => String::new(),
        };
        s.push_str(&format!(
            "{:<width$}  {:>10.2}  {:>10}  {:>6}{mark}\n",
            r.name, r.published, modeled, ratio
        ));
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(&n);
            s.push('\n');
        }
    }
    s
}
