//! `ttfuse inspect`: a model's inputs, outputs, op histogram and parameter count.

use super::output::{out, outln};
use anyhow::Result;
use clap::Args;

use super::ModelArgs;
use crate::report::inspect::Inspection;

/// Arguments of `ttfuse inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ttfuse inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    let model = args.model.load()?;
    let report = Inspection::new(&model.name, &model.graph);
    if args.json {
        outln!("{}", report.to_json());
    } else {
        out!("{}", report.to_text());
    }
    Ok(())
}
