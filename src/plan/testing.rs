//! Helpers for the planner's unit tests: random constants, and running one planned kernel on
//! the runtime against the reference interpreter.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_program, Dispatch};

use super::{FusionMode, KernelPlan, PlannedKernel, Target};
use crate::graph::{DType, Graph, Op, TensorData, TensorType};
use crate::inputs::{complete_inputs, values, Fill};
use crate::lower::fallback::GraphHostOps;

/// An F32 tensor type of `shape`.
pub fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(shape.to_vec(), DType::F32)
}

/// Adds a constant of `shape` with small random values drawn from `seed`.
pub fn constant(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> NodeIndex {
    let n = shape.iter().product();
    let data = TensorData::F32 {
        shape: shape.to_vec(),
        values: values(n, Fill::Randn(seed))
            .iter()
            .map(|v| v * 0.2)
            .collect(),
    };
    g.add(name, Op::Constant(Arc::new(data)), f32t(shape), &[])
}

/// The wormhole_b0 device with a `x` by `y` grid, and the planner's view of it.
pub fn small_grid(x: u32, y: u32) -> (Device, Target) {
    let mut device = Device::load("wormhole_b0").expect("target exists");
    device.grid.x = x;
    device.grid.y = y;
    let target = Target::of(&device);
    (device, target)
}

/// Runs the one-kernel program of `k` on `device` and returns each graph output's PCC against
/// the reference interpreter.
pub fn output_pccs(graph: &Graph, device: &Device, k: PlannedKernel) -> Vec<(String, f64)> {
    run_kernel(graph, device, k).0
}

/// Runs the one-kernel program of `k` on `device`: each graph output's PCC against the
/// reference interpreter, and the program's modeled time in microseconds.
pub fn run_kernel(graph: &Graph, device: &Device, k: PlannedKernel) -> (Vec<(String, f64)>, f64) {
    let inputs = complete_inputs(graph, BTreeMap::new(), 7);
    let want = crate::reference::run(graph, &inputs).expect("reference runs");
    let plan = KernelPlan {
        mode: FusionMode::Fused,
        target: Target::of(device),
        kernels: vec![k],
        breaks: Vec::new(),
        free: Vec::new(),
    };
    let compiled = crate::lower::program::assemble(graph, plan).expect("lowers");
    if std::env::var("DUMP").is_ok() {
        for k in &compiled.program.kernels {
            eprintln!("{}", ttfuse_runtime::ttl::print::print_kernel(k));
        }
    }
    let dev_inputs = compiled
        .inputs
        .iter()
        .map(|b| (b.tensor.clone(), b.to_device(&inputs[&b.name])))
        .collect();
    let run = run_program(
        &compiled.program,
        device,
        &dev_inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .expect("runs");
    let pccs = compiled
        .outputs
        .iter()
        .map(|out| {
            let got = out.from_device(&run.tensors[&out.tensor]).to_f32();
            let pcc = crate::agreement::pcc(&want[&out.name].to_f32(), &got);
            (out.name.clone(), pcc)
        })
        .collect();
    (pccs, run.report.total_us)
}
