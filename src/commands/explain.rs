//! `ttfuse explain`: which rules fired, which ops share which kernel, why the rest did not fuse,
//! and the graphs before and after as Graphviz DOT.

use super::output::{out, outln};
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::progress::{Progress, Verbosity};
use super::{ModelArgs, TargetArgs};
use crate::optimize::OptimizeOptions;
use crate::pipeline;
use crate::report::dot::graph_dot;
use crate::report::explain::Explanation;

/// Arguments of `ttfuse explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The device.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write `before.dot` (the imported graph) and `after.dot` (the optimized graph as the
    /// kernels compute it, one cluster per kernel) into DIR.
    #[arg(long, value_name = "DIR")]
    pub dot: Option<PathBuf>,
}

/// Runs `ttfuse explain`.
pub fn run(args: &ExplainArgs, verbosity: Verbosity) -> Result<()> {
    let mut progress = Progress::new(verbosity, 2);
    progress.step("importing");
    let model = args.model.load()?;
    let device = args.target.device()?;
    progress.step("optimizing and planning");
    let compilation = pipeline::compile(&model, &device, &OptimizeOptions::default())?;
    progress.finish();
    let explanation = Explanation::new(
        &model.name,
        &args.target.target,
        &model.graph,
        &compilation.optimized,
        &compilation.fused,
    );
    let mut written = Vec::new();
    if let Some(dir) = &args.dot {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let before = dir.join("before.dot");
        let after = dir.join("after.dot");
        fs::write(&before, graph_dot("before", &model.graph, None))
            .with_context(|| format!("writing {}", before.display()))?;
        fs::write(
            &after,
            graph_dot(
                "after",
                compilation
                    .fused
                    .planned_graph(&compilation.optimized.graph),
                Some(&compilation.fused.plan),
            ),
        )
        .with_context(|| format!("writing {}", after.display()))?;
        written = vec![before, after];
    }
    if args.json {
        outln!("{}", explanation.to_json());
    } else {
        out!("{}", explanation.to_text());
        for path in written {
            outln!("wrote {}", path.display());
        }
    }
    Ok(())
}
