//! `export`: the fused program's bundle plus what it takes to check it anywhere: the graph
//! inputs it ran on (`inputs/`), the reference interpreter's outputs (`reference/`), a host
//! driver that runs everything on a device and compares (`run.py`) and a README.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{readme, write, write_file};
use crate::agreement::Agreement;
use crate::graph::TensorData;
use crate::lower::Compiled;
use crate::npy;

/// The PCC every output must reach for `run.py` and `ttfuse run DIR` to call a run good.
pub const PCC_THRESHOLD: f64 = 0.99;

/// What an export holds besides the program.
#[derive(Debug)]
pub struct ExportData<'a> {
    /// The model's name.
    pub model: &'a str,
    /// The graph inputs the reference outputs were computed from.
    pub inputs: &'a BTreeMap<String, TensorData>,
    /// The reference interpreter's outputs for `inputs`.
    pub expected: &'a BTreeMap<String, TensorData>,
    /// The fused program's agreement with the reference on the simulator, per output.
    pub simulated: &'a BTreeMap<String, Agreement>,
}

/// Writes the export bundle of `compiled` into `dir` and returns the files written, in order.
pub fn export(compiled: &Compiled, data: &ExportData, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = write(compiled, data.inputs, dir)?;
    let reference_dir = dir.join("reference");
    fs::create_dir_all(&reference_dir)
        .with_context(|| format!("creating {}", reference_dir.display()))?;
    for b in &compiled.outputs {
        let value = data
            .expected
            .get(&b.name)
            .with_context(|| format!("no reference output '{}'", b.name))?;
        let path = reference_dir.join(format!("{}.npy", b.tensor));
        npy::write(
            &path,
            &TensorData::F32 {
                shape: b.shape.clone(),
                values: value.to_f32(),
            },
        )?;
        written.push(path);
    }
    let readme = dir.join("README.md");
    write_file(&readme, &readme::readme(compiled, data))?;
    written.push(readme);
    Ok(written)
}
