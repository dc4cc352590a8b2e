//! Writes a compiled program as files a person can take to a device: one TT-Lang file per
//! kernel, the host driver `run.py`, the weights as .npy files and `program.json` (the program
//! with weights replaced by their file names).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use ttfuse_runtime::program::{Step, TensorInit};
use ttfuse_runtime::ttl::print::print_kernel;

use crate::graph::TensorData;
use crate::lower::{host, Compiled};
use crate::npy;

/// A tensor as listed in `program.json`.
#[derive(Debug, Serialize)]
struct TensorEntry<'a> {
    name: &'a str,
    rows: usize,
    cols: usize,
    /// `input`, `zeros`, or the weight file relative to the bundle.
    init: String,
    is_output: bool,
}

/// `program.json`: the program's structure without its weight data.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    tensors: Vec<TensorEntry<'a>>,
    kernels: Vec<String>,
    steps: &'a [Step],
}

/// Writes the bundle for `compiled` into `dir` (created if needed) and returns the files
/// written, in order.
pub fn write(compiled: &Compiled, dir: &Path) -> Result<Vec<PathBuf>> {
    let program = &compiled.program;
    let kernels_dir = dir.join("kernels");
    let weights_dir = dir.join("weights");
    fs::create_dir_all(&kernels_dir)
        .with_context(|| format!("creating {}", kernels_dir.display()))?;
    let mut written = Vec::new();

    let mut kernel_files = Vec::new();
    for kernel in &program.kernels {
        let path = kernels_dir.join(format!("{}.py", kernel.name));
        write_file(&path, &print_kernel(kernel))?;
        kernel_files.push(kernel.name.clone());
        written.push(path);
    }

    let mut tensors = Vec::new();
    for t in &program.tensors {
        let init = match &t.init {
            TensorInit::Input => "input".to_string(),
            TensorInit::Zeros => "zeros".to_string(),
            TensorInit::Const(values) => {
                fs::create_dir_all(&weights_dir)
                    .with_context(|| format!("creating {}", weights_dir.display()))?;
                let path = weights_dir.join(format!("{}.npy", t.name));
                let data = TensorData::F32 {
                    shape: vec![t.rows, t.cols],
                    values: values.clone(),
                };
                npy::write(&path, &data)?;
                written.push(path);
                format!("weights/{}.npy", t.name)
            }
        };
        tensors.push(TensorEntry {
            name: &t.name,
            rows: t.rows,
            cols: t.cols,
            init,
            is_output: t.is_output,
        });
    }

    let driver = dir.join("run.py");
    write_file(&driver, &host::host_driver(program, &kernel_files))?;
    written.push(driver);

    let manifest = Manifest {
        tensors,
        kernels: kernel_files,
        steps: &program.steps,
    };
    let json = dir.join("program.json");
    write_file(&json, &(serde_json::to_string_pretty(&manifest)? + "\n"))?;
    written.push(json);
    Ok(written)
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
