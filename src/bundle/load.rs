//! Reads an exported (or fused) bundle back into a runnable program: `program.json`, the kernels
//! parsed from `kernels/*.py`, the weights, the stored inputs and the reference outputs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;
use ttfuse_runtime::program::{Program, TensorDecl, TensorInit};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::{parse_module, ParseError};

use super::Manifest;
use crate::graph::TensorData;
use crate::lower::Binding;
use crate::npy::{self, NpyError};

/// Why a bundle could not be read.
#[derive(Debug, Error)]
pub enum BundleError {
    /// A file the bundle needs is absent.
    #[error("{} is missing: {what} (write a bundle with `ttfuse export MODEL -o DIR`)", .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// A file exists but could not be read.
    #[error("reading {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `program.json` or a file it names is not what the bundle format says.
    #[error("{}: {reason}", .path.display())]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A weight, input or reference file is not a valid .npy array.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A kernel file is not valid TT-Lang.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// A bundle read back from disk.
#[derive(Debug)]
pub struct Bundle {
    /// `program.json` as written.
    pub manifest: Manifest,
    /// The program, with weights loaded and kernels parsed.
    pub program: Program,
    /// The stored device inputs by program tensor (empty for a `fuse` bundle, which has none).
    pub inputs: BTreeMap<String, Tensor>,
    /// Where each graph output lives.
    pub outputs: Vec<Binding>,
    /// The stored reference outputs by graph output name (empty when `reference/` is absent).
    pub reference: BTreeMap<String, TensorData>,
}

/// Reads the bundle in `dir`.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    let manifest_path = dir.join("program.json");
    let text = read(&manifest_path, "the program manifest")?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| BundleError::Invalid {
        path: manifest_path.clone(),
        reason: format!("not a ttfuse program manifest: {e}"),
    })?;
    let invalid = |reason: String| BundleError::Invalid {
        path: manifest_path.clone(),
        reason,
    };

    let mut kernels = Vec::new();
    for name in &manifest.kernels {
        let path = dir.join("kernels").join(format!("{name}.py"));
        let source = read(&path, "a TT-Lang kernel listed in program.json")?;
        let module = parse_module(&source, &path.display().to_string())?;
        if !module.constants.is_empty() {
            return Err(BundleError::Invalid {
                path,
                reason: "module-level constants are not part of a bundle kernel; define them inside the kernel function".into(),
            });
        }
        let kernel = module
            .kernels
            .into_iter()
            .find(|k| &k.name == name)
            .ok_or_else(|| BundleError::Invalid {
                path: path.clone(),
                reason: format!("defines no kernel named '{name}'"),
            })?;
        kernels.push(kernel);
    }

    let mut tensors = Vec::new();
    let mut inputs = BTreeMap::new();
    for t in &manifest.tensors {
        let init = match t.init.as_str() {
            "input" => {
                let path = dir.join("inputs").join(format!("{}.npy", t.name));
                if path.exists() {
                    let values = read_2d(&path, t.rows, t.cols)?;
                    inputs.insert(t.name.clone(), Tensor::from_f32(t.rows, t.cols, &values));
                }
                TensorInit::Input
            }
            "zeros" => TensorInit::Zeros,
            file => {
                let rel = Path::new(file);
                if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                    return Err(invalid(format!(
                        "tensor '{}': weight path '{file}' must be relative to the bundle, without '..'",
                        t.name
                    )));
                }
                TensorInit::Const(read_2d(&dir.join(rel), t.rows, t.cols)?)
            }
        };
        tensors.push(TensorDecl {
            name: t.name.clone(),
            rows: t.rows,
            cols: t.cols,
            init,
            is_output: t.is_output,
        });
    }

    let mut outputs = Vec::new();
    let mut reference = BTreeMap::new();
    for entry in &manifest.outputs {
        let binding = entry.to_binding().ok_or_else(|| {
            invalid(format!(
                "output '{}': unknown layout '{}' (Full, Row, Col or Scalar)",
                entry.name, entry.layout
            ))
        })?;
        let path = dir.join("reference").join(format!("{}.npy", entry.tensor));
        if path.exists() {
            let data = npy::read(&path)?;
            if data.shape() != entry.shape.as_slice() {
                return Err(BundleError::Invalid {
                    path,
                    reason: format!(
                        "holds shape {:?}, output '{}' has shape {:?}",
                        data.shape(),
                        entry.name,
                        entry.shape
                    ),
                });
            }
            reference.insert(entry.name.clone(), data);
        }
        outputs.push(binding);
    }

    let program = Program {
        tensors,
        kernels,
        steps: manifest.steps.clone(),
    };
    Ok(Bundle {
        manifest,
        program,
        inputs,
        outputs,
        reference,
    })
}

fn read(path: &Path, what: &'static str) -> Result<String, BundleError> {
    fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BundleError::Missing {
                path: path.to_path_buf(),
                what,
            }
        } else {
            BundleError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a `rows x cols` array.
fn read_2d(path: &Path, rows: usize, cols: usize) -> Result<Vec<f32>, BundleError> {
    if !path.exists() {
        return Err(BundleError::Missing {
            path: path.to_path_buf(),
            what: "a tensor file listed in program.json",
        });
    }
    let data = npy::read(path)?;
    if data.len() != rows * cols {
        return Err(BundleError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "holds {} values (shape {:?}); program.json declares {rows}x{cols}",
                data.len(),
                data.shape()
            ),
        });
    }
    Ok(data.to_f32())
}
