//! Writes a compiled program as files a person can take to a device: one TT-Lang file per
//! kernel, the host driver `run.py`, the weights as .npy files and `program.json` (the program
//! with weights replaced by their file names, and where the graph inputs and outputs live).
//! [`export`] adds inputs, reference outputs, a comparing driver and a README; [`load`] reads a
//! bundle back for `ttfuse run DIR`.

pub mod driver;
pub mod export;
pub mod load;
mod readme;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use ttfuse_runtime::program::{Step, TensorInit};
use ttfuse_runtime::ttl::print::print_kernel;

use crate::graph::TensorData;
use crate::lower::binding::device_values;
use crate::lower::{Binding, Compiled};
use crate::npy;
use crate::plan::layout::Layout;

/// A tensor as listed in `program.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TensorEntry {
    /// The program tensor's name.
    pub name: String,
    /// Rows in elements.
    pub rows: usize,
    /// Columns in elements.
    pub cols: usize,
    /// `input`, `zeros`, or the weight file relative to the bundle.
    pub init: String,
    /// Whether it is a graph output.
    pub is_output: bool,
}

/// A graph input or output and the program tensor holding it, as listed in `program.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingEntry {
    /// The graph name.
    pub name: String,
    /// The program tensor.
    pub tensor: String,
    /// The graph shape.
    pub shape: Vec<usize>,
    /// `Full`, `Row`, `Col` or `Scalar`: how the 2-D device tensor holds it.
    pub layout: String,
}

impl BindingEntry {
    fn of(b: &Binding) -> BindingEntry {
        BindingEntry {
            name: b.name.clone(),
            tensor: b.tensor.clone(),
            shape: b.shape.clone(),
            layout: format!("{:?}", b.layout),
        }
    }

    /// The lowering's binding, or `None` when the layout name is unknown.
    pub fn to_binding(&self) -> Option<Binding> {
        let layout = match self.layout.as_str() {
            "Full" => Layout::Full,
            "Row" => Layout::Row,
            "Col" => Layout::Col,
            "Scalar" => Layout::Scalar,
            _ => return None,
        };
        Some(Binding {
            name: self.name.clone(),
            tensor: self.tensor.clone(),
            shape: self.shape.clone(),
            layout,
        })
    }
}

/// `program.json`: the program's structure without its weight data.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The target the kernels were planned for.
    pub target: String,
    /// Every DRAM tensor.
    pub tensors: Vec<TensorEntry>,
    /// Kernel names; kernel `k` is in `kernels/k.py`.
    pub kernels: Vec<String>,
    /// The host steps in order.
    pub steps: Vec<Step>,
    /// Graph inputs.
    pub inputs: Vec<BindingEntry>,
    /// Graph outputs.
    pub outputs: Vec<BindingEntry>,
}

/// Writes the bundle for `compiled` into `dir` (created if needed): kernels, weights, the graph
/// inputs `inputs` in the device layout, `program.json` and the host driver `run.py` (with the
/// fallback ops it needs). Returns the files written, in order.
pub fn write(
    compiled: &Compiled,
    inputs: &BTreeMap<String, TensorData>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
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
            name: t.name.clone(),
            rows: t.rows,
            cols: t.cols,
            init,
            is_output: t.is_output,
        });
    }

    let inputs_dir = dir.join("inputs");
    fs::create_dir_all(&inputs_dir)
        .with_context(|| format!("creating {}", inputs_dir.display()))?;
    for b in &compiled.inputs {
        let value = inputs
            .get(&b.name)
            .with_context(|| format!("no data for graph input '{}'", b.name))?;
        let (rows, cols) = b.device_dims();
        let device = TensorData::F32 {
            shape: vec![rows, cols],
            values: device_values(value.to_f32(), &b.shape, b.layout),
        };
        let path = inputs_dir.join(format!("{}.npy", b.tensor));
        npy::write(&path, &device)?;
        written.push(path);
    }

    let run_py = dir.join("run.py");
    write_file(&run_py, &driver::driver(compiled))?;
    written.push(run_py);
    if driver::has_host_steps(compiled) {
        let host_ops = dir.join(driver::HOST_OPS_FILE);
        write_file(&host_ops, driver::HOST_OPS_PY)?;
        written.push(host_ops);
    }

    let manifest = Manifest {
        target: compiled.plan.target.name.clone(),
        tensors,
        kernels: kernel_files,
        steps: program.steps.clone(),
        inputs: compiled.inputs.iter().map(BindingEntry::of).collect(),
        outputs: compiled.outputs.iter().map(BindingEntry::of).collect(),
    };
    let json = dir.join("program.json");
    write_file(&json, &(serde_json::to_string_pretty(&manifest)? + "\n"))?;
    written.push(json);
    Ok(written)
}

/// Writes `contents` to `path`, naming the file on failure.
pub(crate) fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
