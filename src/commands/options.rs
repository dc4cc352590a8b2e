//! Options shared by several subcommands.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

use crate::import::ImportOptions;
use crate::pipeline::{self, Model};

/// Which model to work on and how to import it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model: an ONNX file, a TTNN program (.py). Without it, the built-in attention + MLP
    /// block.
    pub model: Option<PathBuf>,
    /// A concrete size for a symbolic input dimension, e.g. `--dim batch=1` (repeatable).
    #[arg(long = "dim", value_name = "NAME=SIZE", value_parser = parse_dim)]
    pub dims: Vec<(String, usize)>,
    /// The shape of a TTNN program input the file does not give, e.g. `--shape input=64x64`.
    #[arg(long = "shape", value_name = "NAME=AxB", value_parser = parse_shape)]
    pub shapes: Vec<(String, Vec<usize>)>,
}

impl ModelArgs {
    /// Imports the model.
    pub fn load(&self) -> Result<Model> {
        let opts = ImportOptions {
            dims: self.dims.iter().cloned().collect::<BTreeMap<_, _>>(),
            input_shapes: self.shapes.iter().cloned().collect::<BTreeMap<_, _>>(),
        };
        pipeline::load_model(self.model.as_deref(), &opts)
    }
}

/// How kernels are dispatched, which sets the per-launch overhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DispatchMode {
    /// Captured in a trace and replayed (~4 us per op).
    Traced,
    /// Host-dispatched one op at a time (~30 us per op).
    Eager,
}

impl DispatchMode {
    /// The runtime's dispatch mode.
    pub fn to_runtime(self) -> Dispatch {
        match self {
            DispatchMode::Traced => Dispatch::Traced,
            DispatchMode::Eager => Dispatch::Eager,
        }
    }

    /// The lowercase name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            DispatchMode::Traced => "traced",
            DispatchMode::Eager => "eager",
        }
    }
}

/// The device to compile for and simulate.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Target device: wormhole_b0 (n150) or blackhole (p150).
    #[arg(long, default_value = "wormhole_b0")]
    pub target: String,
    /// Dispatch mode, which sets the per-launch overhead.
    #[arg(long, value_enum, default_value_t = DispatchMode::Traced)]
    pub dispatch: DispatchMode,
}

impl TargetArgs {
    /// Loads the target's device description.
    pub fn device(&self) -> Result<Device> {
        Device::load(&self.target).with_context(|| format!("unknown --target '{}'", self.target))
    }
}

/// Parses `NAME=SIZE`.
fn parse_dim(s: &str) -> Result<(String, usize)> {
    let (name, size) = s
        .split_once('=')
        .context("expected NAME=SIZE, e.g. batch=1")?;
    let size = size
        .parse()
        .with_context(|| format!("'{size}' is not a dimension size"))?;
    Ok((name.to_string(), size))
}

/// Parses `NAME=AxB[xC...]`.
fn parse_shape(s: &str) -> Result<(String, Vec<usize>)> {
    let (name, dims) = s
        .split_once('=')
        .context("expected NAME=AxB, e.g. input=64x64")?;
    let shape = dims
        .split('x')
        .map(|d| {
            d.parse::<usize>()
                .with_context(|| format!("'{d}' in '{dims}' is not a dimension"))
        })
        .collect::<Result<Vec<_>>>()?;
    if shape.is_empty() || shape.contains(&0) {
        bail!("shape '{dims}' must list positive dimensions");
    }
    Ok((name.to_string(), shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_dims_parse() {
        assert_eq!(
            parse_shape("input=64x128").unwrap(),
            ("input".into(), vec![64, 128])
        );
        assert_eq!(parse_dim("seq=128").unwrap(), ("seq".into(), 128));
    }

    #[test]
    fn malformed_shapes_and_dims_are_rejected() {
        assert!(parse_shape("input").is_err());
        assert!(parse_shape("input=64xq").is_err());
        assert!(parse_shape("input=0x4").is_err());
        assert!(parse_dim("seq=-1").is_err());
    }
}
