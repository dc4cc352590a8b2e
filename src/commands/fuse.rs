//! `ttfuse fuse`: optimize a model and write its fused TT-Lang kernels and host driver.

use super::output::outln;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::progress::{Progress, Verbosity};
use super::{ModelArgs, TargetArgs};
use crate::bundle;
use crate::inputs;
use crate::optimize::OptimizeOptions;
use crate::pipeline;

/// Arguments of `ttfuse fuse`.
#[derive(Debug, Args)]
pub struct FuseArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The device.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Directory to write the kernels, the host driver and the weights into.
    #[arg(short, long, default_value = "out")]
    pub out: PathBuf,
    /// Seed of the random data written for the graph inputs (inputs/), as `compare` uses it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `ttfuse fuse`.
pub fn run(args: &FuseArgs, verbosity: Verbosity) -> Result<()> {
    let mut progress = Progress::new(verbosity, 3);
    progress.step("importing");
    let model = args.model.load()?;
    let device = args.target.device()?;
    progress.step("optimizing and compiling");
    let compilation = pipeline::compile(&model, &device, &OptimizeOptions::default())?;
    progress.step("writing");
    let inputs = inputs::complete_inputs(&model.graph, BTreeMap::new(), args.seed);
    let written = bundle::write(&compilation.fused, &inputs, &args.out)?;
    progress.finish();
    let fused = &compilation.fused.program;
    outln!(
        "{}: {} graph ops -> {} fused kernels ({} unfused) for {} in {:.1} ms",
        model.name,
        compilation.unfused.program.steps.len(),
        fused.kernels.len(),
        compilation.unfused.program.kernels.len(),
        args.target.target,
        compilation.fuse_time.as_secs_f64() * 1e3
    );
    for path in written {
        outln!("  wrote {}", path.display());
    }
    Ok(())
}
