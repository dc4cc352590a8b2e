//! Tensor data on the command line: `--input NAME=FILE.npy` for graph inputs and
//! `--outputs DIR` for the outputs `compare` computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use thiserror::Error;

use crate::graph::{Graph, TensorData};
use crate::inputs;
use crate::npy;

/// The largest integer magnitude an f32 holds exactly (2^24).
const F32_EXACT_INT: i64 = 1 << 24;

/// Graph inputs given as files.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Data for a graph input, e.g. `--input x=inputs/x.npy` (repeatable); inputs not given get
    /// seeded random data (integer inputs: valid indices).
    #[arg(long = "input", value_name = "NAME=FILE.npy", value_parser = parse_input)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Seed of the random data for the graph inputs not given with --input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Why an `--input` could not be used.
#[derive(Debug, Error)]
pub enum InputError {
    /// The name is not a graph input.
    #[error("--input {name}: the model has no input '{name}'; its inputs are: {known}")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The graph's inputs with their shapes.
        known: String,
    },
    /// The same input was given twice.
    #[error("--input {name} is given more than once")]
    Repeated {
        /// The input.
        name: String,
    },
    /// The file could not be read as `.npy`.
    #[error("--input {name}: {reason}")]
    Unreadable {
        /// The input.
        name: String,
        /// What went wrong, naming the file.
        reason: String,
    },
    /// The file's shape differs from the graph input's.
    #[error("--input {name}: {file} has shape {got:?}, but the model's input has shape {want:?}")]
    Shape {
        /// The input.
        name: String,
        /// The file.
        file: String,
        /// The file's shape.
        got: Vec<usize>,
        /// The graph input's shape.
        want: Vec<usize>,
    },
    /// Float data for an integer input with a value that is not a whole number (or beyond 2^24).
    #[error("--input {name}: {file} holds float value {value} at element {at}, which is not a whole number within ±2^24, but the input is an integer tensor; give integer data")]
    NotInteger {
        /// The input.
        name: String,
        /// The file.
        file: String,
        /// The first offending value.
        value: f32,
        /// Its element index.
        at: usize,
    },
    /// Integer data for a float input that f32 cannot hold exactly.
    #[error("--input {name}: {file} holds integer value {value} at element {at}, which float32 cannot represent exactly; give float data")]
    NotExactFloat {
        /// The input.
        name: String,
        /// The file.
        file: String,
        /// The first offending value.
        value: i64,
        /// Its element index.
        at: usize,
    },
}

impl InputArgs {
    /// Every graph input's data: the files given, converted to the input's element type, and
    /// seeded data for the rest.
    pub fn load(&self, graph: &Graph) -> Result<BTreeMap<String, TensorData>, InputError> {
        let mut given = BTreeMap::new();
        for (name, path) in &self.inputs {
            if given.contains_key(name) {
                return Err(InputError::Repeated { name: name.clone() });
            }
            given.insert(name.clone(), load_one(graph, name, path)?);
        }
        Ok(inputs::complete_inputs(graph, given, self.seed))
    }
}

/// Reads `path` for graph input `name` and checks it against the input's type.
fn load_one(graph: &Graph, name: &str, path: &Path) -> Result<TensorData, InputError> {
    let node = graph
        .inputs
        .iter()
        .map(|&i| graph.node(i))
        .find(|n| n.name == name)
        .ok_or_else(|| InputError::UnknownInput {
            name: name.to_string(),
            known: graph
                .inputs
                .iter()
                .map(|&i| {
                    let n = graph.node(i);
                    format!("{} {:?}", n.name, n.ty.shape)
                })
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let file = path.display().to_string();
    let data = npy::read(path).map_err(|e| InputError::Unreadable {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    if data.shape() != node.ty.shape.as_slice() {
        return Err(InputError::Shape {
            name: name.to_string(),
            file,
            got: data.shape().to_vec(),
            want: node.ty.shape.clone(),
        });
    }
    match (data, node.ty.dtype.is_float()) {
        (data @ TensorData::F32 { .. }, true) | (data @ TensorData::I64 { .. }, false) => Ok(data),
        (TensorData::F32 { shape, values }, false) => {
            let mut ints = Vec::with_capacity(values.len());
            for (at, &value) in values.iter().enumerate() {
                if !value.is_finite() || value.fract() != 0.0 || value.abs() > F32_EXACT_INT as f32
                {
                    return Err(InputError::NotInteger {
                        name: name.to_string(),
                        file,
                        value,
                        at,
                    });
                }
                ints.push(value as i64);
            }
            Ok(TensorData::I64 {
                shape,
                values: ints,
            })
        }
        (TensorData::I64 { shape, values }, true) => {
            if let Some((at, &value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.abs() > F32_EXACT_INT)
            {
                return Err(InputError::NotExactFloat {
                    name: name.to_string(),
                    file,
                    value,
                    at,
                });
            }
            Ok(TensorData::F32 {
                shape,
                values: values.iter().map(|&v| v as f32).collect(),
            })
        }
    }
}

/// Parses `NAME=FILE`.
fn parse_input(s: &str) -> Result<(String, PathBuf)> {
    let (name, file) = s
        .split_once('=')
        .filter(|(name, file)| !name.is_empty() && !file.is_empty())
        .context("expected NAME=FILE.npy, e.g. x=inputs/x.npy")?;
    Ok((name.to_string(), PathBuf::from(file)))
}

/// `name` as a file name: every character other than a letter, digit, `_`, `-` or `.` becomes
/// `_`.
pub fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes each output as `dir/NAME.npy` (f32, graph-shaped) and returns the paths written.
pub fn write_outputs(dir: &Path, outputs: &BTreeMap<String, TensorData>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, data) in outputs {
        let path = dir.join(format!("{}.npy", file_name(name)));
        let f32_data = TensorData::F32 {
            shape: data.shape().to_vec(),
            values: data.to_f32(),
        };
        npy::write(&path, &f32_data)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_arguments_parse() {
        assert_eq!(
            parse_input("x=a/b.npy").unwrap(),
            ("x".into(), PathBuf::from("a/b.npy"))
        );
        assert!(parse_input("x").is_err());
        assert!(parse_input("=a.npy").is_err());
        assert!(parse_input("x=").is_err());
    }

    #[test]
    fn output_names_become_safe_file_names() {
        assert_eq!(file_name("/attn/Add_output_0"), "_attn_Add_output_0");
        assert_eq!(file_name("y.1-a_b"), "y.1-a_b");
        assert_eq!(file_name("a b:c"), "a_b_c");
    }

    fn graph() -> Graph {
        use crate::graph::{DType, TensorType};
        let mut g = Graph::new();
        g.add_input("f", TensorType::new(vec![2], DType::F32));
        g.add_input("i", TensorType::new(vec![2], DType::I64));
        g
    }

    fn write(dir: &Path, name: &str, data: &TensorData) -> PathBuf {
        let path = dir.join(name);
        npy::write(&path, data).unwrap();
        path
    }

    #[test]
    fn data_converts_between_float_and_integer_only_when_exact() {
        let dir = std::env::temp_dir().join(format!("ttfuse-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = graph();
        let whole = write(&dir, "whole.npy", &TensorData::f32(vec![2], vec![3.0, 5.0]));
        let frac = write(&dir, "frac.npy", &TensorData::f32(vec![2], vec![3.0, 5.5]));
        let ints = write(&dir, "ints.npy", &TensorData::i64(vec![2], vec![3, -4]));
        let huge = write(
            &dir,
            "huge.npy",
            &TensorData::i64(vec![2], vec![1, (1 << 24) + 1]),
        );
        assert_eq!(
            load_one(&g, "i", &whole).unwrap(),
            TensorData::i64(vec![2], vec![3, 5])
        );
        assert!(matches!(
            load_one(&g, "i", &frac),
            Err(InputError::NotInteger { at: 1, .. })
        ));
        assert_eq!(
            load_one(&g, "f", &ints).unwrap(),
            TensorData::f32(vec![2], vec![3.0, -4.0])
        );
        assert!(matches!(
            load_one(&g, "f", &huge),
            Err(InputError::NotExactFloat { at: 1, .. })
        ));
        let err = load_one(&g, "g", &whole).unwrap_err().to_string();
        assert!(err.contains("f [2], i [2]"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
