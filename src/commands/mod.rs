//! The subcommands of the `ttfuse` command line, one module each.

mod calibrate;
mod compare;
mod data;
mod explain;
mod export;
mod fuse;
mod inspect;
mod options;
mod output;
pub mod progress;
mod run;
mod run_bundle;

use clap::{Parser, Subcommand};

use progress::Verbosity;

pub use compare::{CompareArgs, Study};
pub use explain::ExplainArgs;
pub use export::ExportArgs;
pub use fuse::FuseArgs;
pub use inspect::InspectArgs;
pub use options::{DispatchMode, ModelArgs, TargetArgs};
pub use run::RunArgs;

/// ttfuse: fuse TTNN and ONNX models into TT-Lang kernels for Tenstorrent Tensix chips, and
/// compare fused against unfused on a simulated device.
#[derive(Debug, Parser)]
#[command(name = "ttfuse", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Progress and detail on stderr.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fuse a model and write its TT-Lang kernels and a host driver.
    Fuse(FuseArgs),
    /// Run the fused program and the unfused baseline on the runtime, side by side.
    Compare(CompareArgs),
    /// Write the fused program as a bundle that runs and checks itself (kernels, run.py,
    /// weights, inputs, reference outputs, program.json, README).
    Export(ExportArgs),
    /// Explain the fusion: rules fired, ops per kernel, why the rest did not fuse (DOT graphs
    /// with --dot).
    Explain(ExplainArgs),
    /// Show a model's inputs, outputs, op histogram and parameter count.
    Inspect(InspectArgs),
    /// Run a TT-Lang kernel file, or an exported bundle directory, on the simulated device.
    Run(RunArgs),
    /// Run the calibration kernels and print published, modeled and their ratio, row by row.
    Calibrate(calibrate::CalibrateArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Fuse(args) => fuse::run(&args, self.verbosity),
            Command::Compare(args) => compare::run(&args, self.verbosity),
            Command::Export(args) => export::run(&args, self.verbosity),
            Command::Explain(args) => explain::run(&args, self.verbosity),
            Command::Inspect(args) => inspect::run(&args),
            Command::Run(args) => run::run(&args),
            Command::Calibrate(args) => calibrate::run(&args),
        }
    }
}
