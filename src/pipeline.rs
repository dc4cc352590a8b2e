//! The end-to-end flow the commands share: load a model, optimize it, compile the fused and the
//! unfused programs, run programs on the runtime and check them against the reference.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{self, Dispatch, HostOps, ProgramReport};

use crate::agreement::Agreement;
use crate::graph::{Graph, TensorData};
use crate::import::{self, ImportOptions};
use crate::lower::{self, Compiled, FusionMode};
use crate::optimize::cost::CostModel;
use crate::optimize::{self, OptimizeOptions, Optimized};
use crate::reference;

/// Name of the model built into the binary, used when no model path is given.
pub const DEFAULT_MODEL_NAME: &str = "attention_mlp";

/// The default model: a small attention + MLP block (an elementwise chain, matmuls and a
/// softmax), exported from PyTorch by `models/make_models.py`.
const DEFAULT_MODEL_ONNX: &[u8] = include_bytes!("../models/attention_mlp/model.onnx");

/// An imported model.
#[derive(Clone, Debug)]
pub struct Model {
    /// Display name: the path as given, or [`DEFAULT_MODEL_NAME`].
    pub name: String,
    /// The imported graph.
    pub graph: Graph,
}

/// Loads the model at `path`, or the embedded default model when `path` is `None`.
pub fn load_model(path: Option<&Path>, opts: &ImportOptions) -> Result<Model> {
    match path {
        Some(p) => {
            let graph = import::load(p, opts)?;
            let name = p.display().to_string();
            Ok(Model { name, graph })
        }
        None => {
            let graph = import::load_bytes(
                &format!("{DEFAULT_MODEL_NAME}.onnx"),
                DEFAULT_MODEL_ONNX,
                opts,
            )
            .context("importing the embedded default model")?;
            Ok(Model {
                name: DEFAULT_MODEL_NAME.to_string(),
                graph,
            })
        }
    }
}

/// Both programs for one model, and what it took to build them.
#[derive(Debug)]
pub struct Compilation {
    /// The e-graph stage's result (the graph the fused program was planned from).
    pub optimized: Optimized,
    /// The fused program.
    pub fused: Compiled,
    /// The unfused baseline: one kernel per graph op, as TTNN runs it.
    pub unfused: Compiled,
    /// Wall time from the imported graph to the fused program.
    pub fuse_time: Duration,
}

/// Optimizes `model` and compiles the fused program and the unfused baseline for `device`.
/// The e-graph's extraction is costed for `device`, whatever `opts.cost` says.
pub fn compile(model: &Model, device: &Device, opts: &OptimizeOptions) -> Result<Compilation> {
    let start = Instant::now();
    let opts = OptimizeOptions {
        cost: CostModel::from_device(device),
        ..opts.clone()
    };
    let optimized = optimize::optimize(&model.graph, &opts)
        .with_context(|| format!("optimizing {}", model.name))?;
    let fused = lower::compile(&optimized.graph, device, FusionMode::Fused)
        .with_context(|| format!("compiling the fused program of {}", model.name))?;
    let fuse_time = start.elapsed();
    let unfused = lower::compile(&model.graph, device, FusionMode::Unfused)
        .with_context(|| format!("compiling the unfused program of {}", model.name))?;
    Ok(Compilation {
        optimized,
        fused,
        unfused,
        fuse_time,
    })
}

/// The outputs and timing report of one program run.
#[derive(Debug)]
pub struct Execution {
    /// Graph outputs by name, read back from the device (bf16 values widened to f32).
    pub outputs: BTreeMap<String, TensorData>,
    /// The runtime's timing report.
    pub report: ProgramReport,
}

/// Runs a compiled program on the runtime with graph-level `inputs`.
pub fn execute(
    compiled: &Compiled,
    device: &Device,
    inputs: &BTreeMap<String, TensorData>,
    host: &dyn HostOps,
    dispatch: Dispatch,
) -> Result<Execution> {
    let mut device_inputs = BTreeMap::new();
    for binding in &compiled.inputs {
        let data = inputs
            .get(&binding.name)
            .with_context(|| format!("no data for graph input '{}'", binding.name))?;
        device_inputs.insert(binding.tensor.clone(), binding.try_to_device(data)?);
    }
    let run = exec::run_program(&compiled.program, device, &device_inputs, host, dispatch)?;
    let mut outputs = BTreeMap::new();
    for binding in &compiled.outputs {
        let tensor = run
            .tensors
            .get(&binding.tensor)
            .with_context(|| format!("the program did not produce tensor '{}'", binding.tensor))?;
        outputs.insert(binding.name.clone(), binding.try_from_device(tensor)?);
    }
    Ok(Execution {
        outputs,
        report: run.report,
    })
}

/// Runs the reference interpreter on `graph`.
pub fn reference_outputs(
    graph: &Graph,
    inputs: &BTreeMap<String, TensorData>,
) -> Result<BTreeMap<String, TensorData>> {
    Ok(reference::run(graph, inputs)?)
}

/// The agreement of `actual` with `expected`, output by output, and overall (the worst).
pub fn agreement(
    expected: &BTreeMap<String, TensorData>,
    actual: &BTreeMap<String, TensorData>,
) -> Result<(BTreeMap<String, Agreement>, Agreement)> {
    let mut per_output = BTreeMap::new();
    let mut overall = Agreement::perfect();
    for (name, want) in expected {
        let got = actual
            .get(name)
            .with_context(|| format!("output '{name}' is missing"))?;
        anyhow::ensure!(
            got.shape() == want.shape(),
            "output '{name}' has shape {:?}, the reference {:?}",
            got.shape(),
            want.shape()
        );
        let a = Agreement::of(&want.to_f32(), &got.to_f32());
        overall = overall.worst(a);
        per_output.insert(name.clone(), a);
    }
    Ok((per_output, overall))
}
