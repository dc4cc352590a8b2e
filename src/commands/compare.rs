//! `ttfuse compare`: fused against unfused on the runtime, and both against the reference.

use super::output::{out, outln};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use ttfuse_runtime::device::Device;

use super::data::{self, InputArgs};
use super::progress::{Progress, Verbosity};
use super::{ModelArgs, TargetArgs};
use crate::graph::TensorData;
use crate::lower::fallback::GraphHostOps;
use crate::optimize::OptimizeOptions;
use crate::pipeline::{self, Compilation, Execution, Model};
use crate::report::compare::{Comparison, ProgramSummary};
use crate::report::html;

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
    /// Also write a self-contained HTML page with SVG charts (timeline, per-core utilization,
    /// roofline) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Graph input data.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Write every graph output of the reference, the unfused and the fused run as
    /// DIR/{reference,unfused,fused}/NAME.npy (f32, graph-shaped).
    #[arg(long, value_name = "DIR")]
    pub outputs: Option<PathBuf>,
}

/// Everything one model's fused and unfused runs produced.
#[derive(Debug)]
pub struct Study {
    /// The imported model.
    pub model: Model,
    /// The target.
    pub device: Device,
    /// Both programs.
    pub compilation: Compilation,
    /// The graph inputs the programs ran on.
    pub inputs: BTreeMap<String, TensorData>,
    /// The reference interpreter's outputs.
    pub expected: BTreeMap<String, TensorData>,
    /// The unfused program's run.
    pub unfused: Execution,
    /// The fused program's run.
    pub fused: Execution,
}

impl Study {
    /// Imports, compiles and runs both programs and the reference, with progress on stderr.
    pub fn run(
        model: &ModelArgs,
        target: &TargetArgs,
        inputs: &InputArgs,
        verbosity: Verbosity,
    ) -> Result<Study> {
        let mut progress = Progress::new(verbosity, 5);
        progress.step("importing");
        let model = model.load()?;
        let device = target.device()?;
        progress.step("optimizing and compiling");
        let compilation = pipeline::compile(&model, &device, &OptimizeOptions::default())?;
        progress.detail(&optimizer_summary(&compilation));
        progress.step("running the reference interpreter");
        let inputs = inputs.load(&model.graph)?;
        let expected = pipeline::reference_outputs(&model.graph, &inputs)?;
        let host = GraphHostOps;
        let dispatch = target.dispatch.to_runtime();
        progress.step("simulating the unfused program");
        let unfused = pipeline::execute(&compilation.unfused, &device, &inputs, &host, dispatch)?;
        progress.step("simulating the fused program");
        let fused = pipeline::execute(&compilation.fused, &device, &inputs, &host, dispatch)?;
        progress.finish();
        Ok(Study {
            model,
            device,
            compilation,
            inputs,
            expected,
            unfused,
            fused,
        })
    }

    /// The comparison `compare` prints.
    pub fn comparison(&self, target: &TargetArgs) -> Result<Comparison> {
        let (_, unfused_agreement) = pipeline::agreement(&self.expected, &self.unfused.outputs)?;
        let (fused_outputs, _) = pipeline::agreement(&self.expected, &self.fused.outputs)?;
        Ok(Comparison::new(
            &self.model.name,
            &target.target,
            target.dispatch.name(),
            ProgramSummary::new(
                &self.compilation.unfused,
                &self.unfused.report,
                &self.device,
            ),
            ProgramSummary::new(&self.compilation.fused, &self.fused.report, &self.device),
            unfused_agreement,
            fused_outputs,
        )
        .with_constant_references(self.constant_references()))
    }

    /// The graph outputs whose reference values are all equal.
    fn constant_references(&self) -> Vec<String> {
        self.expected
            .iter()
            .filter(|(_, t)| {
                let v = t.to_f32();
                v.windows(2).all(|w| w[0] == w[1])
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl Study {
    /// Writes the reference, unfused and fused outputs under `dir` (see `compare --outputs`)
    /// and returns the files written.
    pub fn write_outputs(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = data::write_outputs(&dir.join("reference"), &self.expected)?;
        written.extend(data::write_outputs(
            &dir.join("unfused"),
            &self.unfused.outputs,
        )?);
        written.extend(data::write_outputs(
            &dir.join("fused"),
            &self.fused.outputs,
        )?);
        Ok(written)
    }
}

/// One line about the optimizer's work, for `--verbose`.
fn optimizer_summary(c: &Compilation) -> String {
    let r = &c.optimized.report;
    let fired: usize = r.rules_fired.values().sum();
    format!(
        "optimizer: {} rule applications over {} stage(s), cost {:.0} -> {:.0} cycles{}",
        fired,
        r.stages.len(),
        r.cost_before,
        r.cost_after,
        if r.hit_limit {
            ", a search limit hit"
        } else {
            ""
        }
    )
}

/// Runs `ttfuse compare`.
pub fn run(args: &CompareArgs, verbosity: Verbosity) -> Result<()> {
    let study = Study::run(&args.model, &args.target, &args.inputs, verbosity)?;
    let cmp = study.comparison(&args.target)?;
    let written = match &args.outputs {
        Some(dir) => study.write_outputs(dir)?,
        None => Vec::new(),
    };
    if let Some(path) = &args.html {
        let page = html::page(&cmp, &study.device);
        fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        outln!("{}", cmp.to_json());
    } else {
        out!("{}", cmp.to_text());
        if let Some(path) = &args.html {
            outln!("\nwrote {}", path.display());
        }
        if let Some(dir) = &args.outputs {
            outln!(
                "\nwrote {} output file(s) under {}",
                written.len(),
                dir.display()
            );
        }
    }
    Ok(())
}
