//! `ttfuse export`: write the fused program as a bundle that runs and checks itself on a device
//! (`python run.py`) or on the simulator (`ttfuse run DIR`).

use super::output::outln;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::compare::Study;
use super::data::InputArgs;
use super::progress::Verbosity;
use super::{ModelArgs, TargetArgs};
use crate::bundle::export::{export, ExportData};
use crate::pipeline;

/// Arguments of `ttfuse export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The device.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Directory to write the bundle into (created if needed).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Graph input data (stored in the bundle's inputs/).
    #[command(flatten)]
    pub inputs: InputArgs,
}

/// Runs `ttfuse export`.
pub fn run(args: &ExportArgs, verbosity: Verbosity) -> Result<()> {
    let study = Study::run(&args.model, &args.target, &args.inputs, verbosity)?;
    let (simulated, overall) = pipeline::agreement(&study.expected, &study.fused.outputs)?;
    let data = ExportData {
        model: &study.model.name,
        inputs: &study.inputs,
        expected: &study.expected,
        simulated: &simulated,
    };
    let written = export(&study.compilation.fused, &data, &args.out)?;
    outln!(
        "{}: exported {} fused kernel(s) for {} to {} (simulated: max |err| {:.3e}, PCC {:.6})",
        study.model.name,
        study.compilation.fused.program.kernels.len(),
        args.target.target,
        args.out.display(),
        overall.max_abs_err,
        overall.pcc
    );
    for path in written {
        let shown = path.strip_prefix(&args.out).unwrap_or(&path);
        outln!("  {}", shown.display());
    }
    Ok(())
}
