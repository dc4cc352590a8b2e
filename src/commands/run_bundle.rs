//! `ttfuse run DIR`: run an exported bundle's program on the simulated device and compare its
//! outputs with the bundle's stored reference outputs.

use super::output::outln;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::TargetArgs;
use crate::agreement::Agreement;
use crate::bundle::export::PCC_THRESHOLD;
use crate::bundle::load;
use crate::graph::TensorData;
use crate::lower::fallback::GraphHostOps;
use crate::npy;

/// What `run DIR --json` prints.
#[derive(Debug, Serialize)]
struct BundleRun<'a> {
    bundle: String,
    target: &'a str,
    dispatch: &'a str,
    launches: usize,
    dram_bytes: u64,
    time_us: f64,
    max_abs_err: f64,
    pcc: f64,
    outputs: BTreeMap<String, Agreement>,
}

/// Runs the bundle in `dir`; writes the graph outputs into `out` when given.
pub fn run(dir: &Path, target: &TargetArgs, out: Option<&Path>, json: bool) -> Result<()> {
    let bundle = load::load(dir)?;
    if bundle.manifest.target != target.target {
        bail!(
            "{} was compiled for {}; run it with --target {}",
            dir.display(),
            bundle.manifest.target,
            bundle.manifest.target
        );
    }
    let device = target.device()?;
    for b in &bundle.manifest.inputs {
        if !bundle.inputs.contains_key(&b.tensor) {
            bail!(
                "{}: no stored data for input '{}' ({}); write the bundle with `ttfuse export`, which stores inputs/",
                dir.display(),
                b.name,
                dir.join("inputs").join(format!("{}.npy", b.tensor)).display()
            );
        }
    }
    if bundle.reference.len() != bundle.outputs.len() {
        bail!(
            "{}: reference/ lacks some outputs' reference data; write the bundle with `ttfuse export`",
            dir.display()
        );
    }
    let run = ttfuse_runtime::exec::run_program(
        &bundle.program,
        &device,
        &bundle.inputs,
        &GraphHostOps,
        target.dispatch.to_runtime(),
    )
    .with_context(|| format!("running {}", dir.display()))?;
    let mut outputs = BTreeMap::new();
    let mut agreements = BTreeMap::new();
    let mut overall = Agreement::perfect();
    for b in &bundle.outputs {
        let t = run
            .tensors
            .get(&b.tensor)
            .with_context(|| format!("the program did not produce tensor '{}'", b.tensor))?;
        let got = b.try_from_device(t)?;
        let want = &bundle.reference[&b.name];
        let a = Agreement::of(&want.to_f32(), &got.to_f32());
        overall = overall.worst(a);
        agreements.insert(b.name.clone(), a);
        outputs.insert(b.tensor.clone(), got);
    }
    if let Some(out) = out {
        write_outputs(out, &outputs)?;
    }
    let report = BundleRun {
        bundle: dir.display().to_string(),
        target: &target.target,
        dispatch: target.dispatch.name(),
        launches: bundle.program.steps.len(),
        dram_bytes: run.report.dram_bytes,
        time_us: run.report.total_us,
        max_abs_err: overall.max_abs_err,
        pcc: overall.pcc,
        outputs: agreements,
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} on {} ({} dispatch): {} launches, {:.2} us, {} DRAM bytes",
            report.bundle,
            report.target,
            report.dispatch,
            report.launches,
            report.time_us,
            report.dram_bytes
        );
        for (name, a) in &report.outputs {
            outln!(
                "  {name}: max |err| {:.3e}, PCC {:.6} against reference/",
                a.max_abs_err,
                a.pcc
            );
        }
    }
    if !overall.meets(PCC_THRESHOLD) {
        bail!(
            "{}: an output's PCC {:.6} is below {PCC_THRESHOLD}",
            dir.display(),
            overall.pcc
        );
    }
    Ok(())
}

fn write_outputs(dir: &Path, outputs: &BTreeMap<String, TensorData>) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (tensor, data) in outputs {
        npy::write(&dir.join(format!("{tensor}.npy")), data)?;
    }
    Ok(())
}
