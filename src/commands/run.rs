//! `ttfuse run`: run a TT-Lang kernel file on the simulated device.

use super::output::{out, outln};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use ttfuse_runtime::exec::{self, KernelReport};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::parse_module;

use super::TargetArgs;
use crate::graph::TensorData;
use crate::inputs::{self, Fill};
use crate::npy;

/// Arguments of `ttfuse run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A TT-Lang source file (.py) holding the kernel, or a bundle directory written by
    /// `ttfuse export` (runs the whole program and compares with its reference outputs).
    pub file: PathBuf,
    /// The kernel to run (may be omitted when the file holds exactly one).
    #[arg(long)]
    pub kernel: Option<String>,
    /// A kernel argument, in parameter order: `NAME=ROWSxCOLS:INIT`, INIT one of `randn[:SEED]`,
    /// `rand[:SEED]`, `zeros`, `ones`, `full:VALUE` or a path to a .npy file.
    #[arg(long = "arg", value_name = "NAME=RxC:INIT", value_parser = parse_arg)]
    pub args: Vec<ArgSpec>,
    /// Directory to write every argument's final contents into, as NAME.npy (float32); for a
    /// bundle, every graph output as TENSOR.npy in its graph shape.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The device.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// One `--arg`: a kernel parameter's shape and initial contents.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgSpec {
    /// The parameter name.
    pub name: String,
    /// Rows in elements.
    pub rows: usize,
    /// Columns in elements.
    pub cols: usize,
    /// How to fill it.
    pub init: ArgInit,
}

/// The initial contents of a kernel argument.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgInit {
    /// Generated values.
    Fill(Fill),
    /// Values read from a .npy file.
    File(PathBuf),
}

/// Parses `NAME=RxC:INIT`.
fn parse_arg(s: &str) -> Result<ArgSpec> {
    let (name, rest) = s
        .split_once('=')
        .context("expected NAME=ROWSxCOLS:INIT, e.g. x=128x128:randn:1")?;
    let (shape, init) = rest.split_once(':').unwrap_or((rest, "zeros"));
    let (rows, cols) = shape
        .split_once('x')
        .context("the shape must be ROWSxCOLS in elements, e.g. 64x128")?;
    let rows: usize = rows
        .parse()
        .with_context(|| format!("'{rows}' is not a row count"))?;
    let cols: usize = cols
        .parse()
        .with_context(|| format!("'{cols}' is not a column count"))?;
    if rows == 0 || cols == 0 || !rows.is_multiple_of(32) || !cols.is_multiple_of(32) {
        bail!(
            "argument '{name}': shape {rows}x{cols} must be positive multiples of 32 (whole tiles)"
        );
    }
    let seed = |spec: Option<&str>| -> Result<u64> {
        spec.map_or(Ok(0), |s| {
            s.parse().with_context(|| format!("'{s}' is not a seed"))
        })
    };
    let (kind, param) = match init.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (init, None),
    };
    let init = match kind {
        "randn" => ArgInit::Fill(Fill::Randn(seed(param)?)),
        "rand" => ArgInit::Fill(Fill::Rand(seed(param)?)),
        "zeros" if param.is_none() => ArgInit::Fill(Fill::Full(0.0)),
        "ones" if param.is_none() => ArgInit::Fill(Fill::Full(1.0)),
        "full" => {
            let v = param.context("full needs a value, e.g. full:0.5")?;
            ArgInit::Fill(Fill::Full(
                v.parse()
                    .with_context(|| format!("'{v}' is not a number"))?,
            ))
        }
        _ => ArgInit::File(PathBuf::from(init)),
    };
    Ok(ArgSpec {
        name: name.to_string(),
        rows,
        cols,
        init,
    })
}

impl ArgSpec {
    /// The argument's initial device tensor.
    fn tensor(&self) -> Result<Tensor> {
        let n = self.rows * self.cols;
        let values = match &self.init {
            ArgInit::Fill(fill) => inputs::values(n, *fill),
            ArgInit::File(path) => {
                let data = npy::read(path).with_context(|| format!("argument '{}'", self.name))?;
                if data.len() != n {
                    bail!(
                        "argument '{}': {} holds {} values ({:?}), the shape {}x{} needs {n}",
                        self.name,
                        path.display(),
                        data.len(),
                        data.shape(),
                        self.rows,
                        self.cols
                    );
                }
                data.to_f32()
            }
        };
        Ok(Tensor::from_f32(self.rows, self.cols, &values))
    }
}

/// What `run --json` prints.
#[derive(Debug, Serialize)]
struct RunReport<'a> {
    file: String,
    target: &'a str,
    kernel: &'a KernelReport,
}

/// Runs `ttfuse run`.
pub fn run(args: &RunArgs) -> Result<()> {
    if args.file.is_dir() {
        if args.kernel.is_some() || !args.args.is_empty() {
            bail!(
                "{} is a bundle directory: it runs its whole program, so --kernel and --arg do not apply",
                args.file.display()
            );
        }
        return super::run_bundle::run(&args.file, &args.target, args.out.as_deref(), args.json);
    }
    let source = fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file = args.file.display().to_string();
    let module = parse_module(&source, &file)?;
    let kernel = match &args.kernel {
        Some(k) => module
            .kernels
            .iter()
            .find(|kk| &kk.name == k)
            .with_context(|| {
                format!(
                    "{file} has no kernel '{k}'; it has: {}",
                    kernel_names(&module)
                )
            })?,
        None => match module.kernels.as_slice() {
            [only] => only,
            _ => bail!(
                "{file} holds {} kernels ({}): choose one with --kernel",
                module.kernels.len(),
                kernel_names(&module)
            ),
        },
    };
    if kernel.params.len() != args.args.len() {
        bail!(
            "kernel '{}' takes {} tensors ({}); give one --arg per parameter in that order",
            kernel.name,
            kernel.params.len(),
            kernel.params.join(", ")
        );
    }
    for (param, spec) in kernel.params.iter().zip(&args.args) {
        if param != &spec.name {
            bail!(
                "--arg '{}' given where kernel '{}' expects '{param}' (parameters: {})",
                spec.name,
                kernel.name,
                kernel.params.join(", ")
            );
        }
    }
    let mut tensors = args
        .args
        .iter()
        .map(ArgSpec::tensor)
        .collect::<Result<Vec<_>>>()?;
    let device = args.target.device()?;
    let report = exec::run_kernel(&module, &kernel.name, &device, &mut tensors)?;
    if let Some(dir) = &args.out {
        write_results(dir, &args.args, &tensors)?;
    }
    if args.json {
        let out = RunReport {
            file,
            target: &args.target.target,
            kernel: &report,
        };
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("{}", crate::report::kernel::kernel_text(&report));
    }
    Ok(())
}

/// Writes each argument's final contents as `DIR/NAME.npy`.
fn write_results(dir: &Path, specs: &[ArgSpec], tensors: &[Tensor]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (spec, t) in specs.iter().zip(tensors) {
        let data = TensorData::F32 {
            shape: vec![t.rows, t.cols],
            values: t.to_f32(),
        };
        npy::write(&dir.join(format!("{}.npy", spec.name)), &data)?;
    }
    Ok(())
}

fn kernel_names(module: &ttfuse_runtime::ttl::ast::Module) -> String {
    module
        .kernels
        .iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_specs_parse() {
        let a = parse_arg("x=128x64:randn:3").unwrap();
        assert_eq!((a.name.as_str(), a.rows, a.cols), ("x", 128, 64));
        assert_eq!(a.init, ArgInit::Fill(Fill::Randn(3)));
        assert_eq!(
            parse_arg("o=32x32:zeros").unwrap().init,
            ArgInit::Fill(Fill::Full(0.0))
        );
        assert_eq!(
            parse_arg("o=32x32:full:0.5").unwrap().init,
            ArgInit::Fill(Fill::Full(0.5))
        );
        assert_eq!(
            parse_arg("w=32x32:data/w.npy").unwrap().init,
            ArgInit::File("data/w.npy".into())
        );
    }

    #[test]
    fn shapes_that_do_not_tile_are_rejected() {
        let err = parse_arg("x=100x64:zeros").unwrap_err().to_string();
        assert!(err.contains("multiples of 32"), "{err}");
        assert!(parse_arg("x=64:zeros").is_err());
        assert!(parse_arg("x").is_err());
    }
}
