//! The subcommands of the `ttfuse` command line, one module each.

mod compare;
mod fuse;
mod options;
mod run;

use clap::{Parser, Subcommand};

pub use compare::CompareArgs;
pub use fuse::FuseArgs;
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
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fuse a model and write its TT-Lang kernels and a host driver.
    Fuse(FuseArgs),
    /// Run the fused program and the unfused baseline on the runtime, side by side.
    Compare(CompareArgs),
    /// Run a TT-Lang kernel file on the simulated device and report its modeled time.
    Run(RunArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Fuse(args) => fuse::run(&args),
            Command::Compare(args) => compare::run(&args),
            Command::Run(args) => run::run(&args),
        }
    }
}
