//! Model importers: each reads one format into a [`Graph`] with static shapes.
//!
//! - `.onnx`: ONNX models ([`onnx`]), with initializers, constant folding of shape subgraphs and
//!   symbolic dimensions bound from [`ImportOptions`].
//! - `.py`: straight-line TTNN Python programs ([`ttnn_py`]).
//! - `.mlir`: TTNN-dialect MLIR functions in generic op form ([`ttnn_mlir`]).
//!
//! Graph inputs are [`Op::Input`](crate::graph::Op::Input) nodes named after the model's
//! inputs; `graph.outputs` are named after the model's outputs.

pub mod attention;
pub mod builder;
pub mod onnx;
pub mod ttnn_mlir;
pub mod ttnn_py;

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

use crate::graph::Graph;

/// Values the model file leaves open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Full shapes for named graph inputs (override the file's shapes).
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// Values for symbolic dimensions by name (e.g. `batch` = 1).
    pub dims: BTreeMap<String, usize>,
}

/// Why a model could not be imported. Every variant names the file, and the node or line.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read model `{file}`: {source}; check the path")]
    Io {
        /// The path.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file extension is not a known model format.
    #[error("`{file}`: unknown model format; ttfuse reads .onnx (ONNX), .py (TTNN Python program) and .mlir (TTNN MLIR) files")]
    UnknownFormat {
        /// The path.
        file: String,
    },
    /// The file is not a well-formed model of its format.
    #[error("`{file}` is not a valid {format} model: {reason}")]
    Malformed {
        /// The path.
        file: String,
        /// The format, e.g. `ONNX`.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A node uses an op the importer does not know.
    #[error("`{file}`: node `{node}` uses op `{op}`, which ttfuse does not support")]
    Unsupported {
        /// The path.
        file: String,
        /// The node name.
        node: String,
        /// The op type.
        op: String,
    },
    /// A node reads a value nothing defines.
    #[error("`{file}`: node `{node}` reads `{value}`, which is not a graph input, an initializer or a node output")]
    MissingValue {
        /// The path.
        file: String,
        /// The reading node (or `graph output`).
        node: String,
        /// The undefined value.
        value: String,
    },
    /// The nodes depend on each other in a cycle.
    #[error("`{file}`: the graph has a cycle through node(s) {nodes}")]
    Cycle {
        /// The path.
        file: String,
        /// The nodes that cannot be ordered.
        nodes: String,
    },
    /// An input dimension is symbolic and no value was given.
    #[error("`{file}`: input `{input}` has symbolic dimension `{dim}` with no value; bind it (dims: {dim}=N) or give the input's full shape")]
    SymbolicDim {
        /// The path.
        file: String,
        /// The graph input.
        input: String,
        /// The dimension's name.
        dim: String,
    },
    /// A node is invalid: bad attributes, shapes that do not fit, a non-constant shape operand.
    #[error("`{file}`: node `{node}` ({op}): {reason}")]
    Node {
        /// The path.
        file: String,
        /// The node name.
        node: String,
        /// The op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// An initializer's external data file is missing, too short, outside the model's
    /// directory or unreadable.
    #[error("`{file}`: initializer `{tensor}` is stored in `{data_file}`: {reason}")]
    ExternalData {
        /// The model's path.
        file: String,
        /// The initializer's name.
        tensor: String,
        /// The data file's path (as the model names it, joined to the model's directory).
        data_file: String,
        /// What is wrong.
        reason: String,
    },
    /// A line of a text program is invalid or unsupported.
    #[error("`{file}` line {line}: {reason}")]
    Line {
        /// The path.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads and imports the model at `path`, choosing the format by extension. ONNX
/// initializers stored in external data files are read from beside the model.
pub fn load(path: &Path, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let file = path.display().to_string();
    let io = |source| ImportError::Io {
        file: file.clone(),
        source,
    };
    if extension(&file) == "onnx" {
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives only for this import; as with any file read,
        // the model must not be truncated by another process while it is imported.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
        return onnx::import(&file, &map, opts);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    load_bytes(&file, &bytes, opts)
}

fn extension(name: &str) -> String {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Imports a model from memory; `name` (a file name or path) selects the format by extension
/// and names the model in errors; ONNX external data files are looked up in its directory.
pub fn load_bytes(name: &str, bytes: &[u8], opts: &ImportOptions) -> Result<Graph, ImportError> {
    match extension(name).as_str() {
        "onnx" => onnx::import(name, bytes, opts),
        "py" => ttnn_py::import(name, text(name, bytes, "TTNN Python")?, opts),
        "mlir" => ttnn_mlir::import(name, text(name, bytes, "TTNN MLIR")?, opts),
        _ => Err(ImportError::UnknownFormat {
            file: name.to_string(),
        }),
    }
}

fn text<'a>(name: &str, bytes: &'a [u8], format: &'static str) -> Result<&'a str, ImportError> {
    std::str::from_utf8(bytes).map_err(|e| ImportError::Malformed {
        file: name.to_string(),
        format,
        reason: format!("not UTF-8 text ({e})"),
    })
}
