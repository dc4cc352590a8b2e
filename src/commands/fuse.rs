//! `ttfuse fuse`: optimize a model and write its fused TT-Lang kernels and host driver.

use super::output::outln;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::data::InputArgs;
use super::progress::{Progress, Verbosity};
use super::{ModelArgs, TargetArgs};
use crate::bundle;
use crate::graph::Graph;
use crate::optimize::OptimizeOptions;
use crate::pipeline;
use crate::plan::names::sanitize;
use ttfuse_runtime::program::{Program, Step};

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
    /// Graph input data written to inputs/ (seeded data as `compare` uses it, unless given).
    #[command(flatten)]
    pub inputs: InputArgs,
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
    let inputs = args.inputs.load(&model.graph)?;
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
    outln!("{}", fallback_summary(fused, &compilation.optimized.graph));
    for path in written {
        outln!("  wrote {}", path.display());
    }
    Ok(())
}

/// One line naming every TTNN fallback (host) op of `program`, in step order, with the node of
/// `graph` (the graph the program was built from) it computes, or "no TTNN fallback ops".
pub fn fallback_summary(program: &Program, graph: &Graph) -> String {
    let ops: Vec<String> = program
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::Host { op, outputs, .. } => {
                let nodes: Vec<String> = outputs.iter().map(|t| node_of(graph, t)).collect();
                Some(format!("{op} ({})", nodes.join(", ")))
            }
            Step::Launch { .. } => None,
        })
        .collect();
    match ops.len() {
        0 => "no TTNN fallback ops".to_string(),
        1 => format!("1 TTNN fallback op: {}", ops[0]),
        n => format!("{n} TTNN fallback ops: {}", ops.join(", ")),
    }
}

/// The name of the node of `graph` whose program tensor is `tensor` (program tensors are the
/// sanitized node names), or `tensor` itself when no single node sanitizes to it.
fn node_of(graph: &Graph, tensor: &str) -> String {
    let mut matches = graph
        .dag
        .node_weights()
        .filter(|n| sanitize(&n.name) == tensor);
    match (matches.next(), matches.next()) {
        (Some(node), None) => node.name.clone(),
        _ => tensor.to_string(),
    }
}
