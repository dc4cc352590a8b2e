//! `ttfuse compare`: fused against unfused on the runtime, and both against the reference.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;

use super::{ModelArgs, TargetArgs};
use crate::host_ops::ReferenceHostOps;
use crate::inputs;
use crate::optimize::OptimizeOptions;
use crate::pipeline;
use crate::report::compare::{Comparison, ProgramSummary};

/// Arguments of `ttfuse compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The device.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the comparison as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the random data for graph inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Builds the comparison for `args` (everything `compare` prints).
pub fn comparison(args: &CompareArgs) -> Result<Comparison> {
    let model = args.model.load()?;
    let device = args.target.device()?;
    let compilation = pipeline::compile(&model, &device, &OptimizeOptions::default())?;
    let inputs = inputs::complete_inputs(&model.graph, BTreeMap::new(), args.seed);
    let expected = pipeline::reference_outputs(&model.graph, &inputs)?;
    let host = ReferenceHostOps;
    let dispatch = args.target.dispatch.to_runtime();
    let unfused = pipeline::execute(&compilation.unfused, &device, &inputs, &host, dispatch)?;
    let fused = pipeline::execute(&compilation.fused, &device, &inputs, &host, dispatch)?;
    let (_, unfused_agreement) = pipeline::agreement(&expected, &unfused.outputs)?;
    let (fused_outputs, _) = pipeline::agreement(&expected, &fused.outputs)?;
    Ok(Comparison::new(
        &model.name,
        &args.target.target,
        args.target.dispatch.name(),
        ProgramSummary::new(&compilation.unfused, &unfused.report),
        ProgramSummary::new(&compilation.fused, &fused.report),
        unfused_agreement,
        fused_outputs,
    ))
}

/// Runs `ttfuse compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    let cmp = comparison(args)?;
    if args.json {
        println!("{}", cmp.to_json());
    } else {
        print!("{}", cmp.to_text());
    }
    Ok(())
}
