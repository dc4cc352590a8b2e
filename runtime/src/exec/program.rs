//! Runs a whole host [`Program`]: materializes its tensors, performs its steps in order (kernel
//! launches on the executor, host ops through a [`HostOps`] implementation) and sums the costs.

use std::collections::BTreeMap;

use super::error::ExecError;
use super::kernel::{compile_kernel, execute, ModuleEnv};
use super::{Dispatch, HostOps, ProgramRun};
use crate::device::Device;
use crate::program::{Program, Step, TensorInit};
use crate::tensor::Tensor;
use crate::timing::report::{HostOpReport, ProgramReport, ProgramRoofline, StepReport};

/// Runs every step of `program` on `device`: kernel launches on the executor, host steps through
/// `host` (each costed as one TTNN op: dispatch plus the DRAM traffic of its inputs and
/// outputs). `inputs` supplies every tensor declared as [`crate::program::TensorInit::Input`].
pub fn run_program(
    program: &Program,
    device: &Device,
    inputs: &BTreeMap<String, Tensor>,
    host: &dyn HostOps,
    dispatch: Dispatch,
) -> Result<ProgramRun, ExecError> {
    let perr = |m: String| ExecError::Program(m);
    let mut tensors = BTreeMap::new();
    for d in &program.tensors {
        let t = match &d.init {
            TensorInit::Input => {
                let t = inputs.get(&d.name).ok_or_else(|| {
                    perr(format!(
                        "input tensor `{}` ({}x{}) was not supplied",
                        d.name, d.rows, d.cols
                    ))
                })?;
                if (t.rows, t.cols) != (d.rows, d.cols) {
                    return Err(perr(format!(
                        "input `{}` is {}x{} but the program declares {}x{}",
                        d.name, t.rows, t.cols, d.rows, d.cols
                    )));
                }
                t.clone()
            }
            TensorInit::Const(v) => {
                if v.len() != d.rows * d.cols {
                    return Err(perr(format!(
                        "constant tensor `{}` has {} values but is declared {}x{}",
                        d.name,
                        v.len(),
                        d.rows,
                        d.cols
                    )));
                }
                Tensor::from_f32(d.rows, d.cols, v)
            }
            TensorInit::Zeros => Tensor::zeros(d.rows, d.cols),
        };
        if tensors.insert(d.name.clone(), t).is_some() {
            return Err(perr(format!("tensor `{}` is declared twice", d.name)));
        }
    }
    for name in inputs.keys() {
        if program.tensor(name).is_none() {
            return Err(perr(format!(
                "input `{name}` is not a tensor of the program"
            )));
        }
    }

    let module = ModuleEnv::empty();
    let compiled = program
        .kernels
        .iter()
        .map(|k| compile_kernel(k, &module))
        .collect::<Result<Vec<_>, _>>()?;
    let traced = matches!(dispatch, Dispatch::Traced);
    let mut report = ProgramReport {
        kernels: Vec::new(),
        host_ops: Vec::new(),
        steps: Vec::new(),
        dispatch: if traced { "traced" } else { "eager" }.into(),
        total_us: 0.0,
        dram_bytes: 0,
        flops: 0.0,
        roofline: ProgramRoofline::default(),
    };
    let take = |tensors: &mut BTreeMap<String, Tensor>, n: &str| {
        tensors
            .remove(n)
            .ok_or_else(|| ExecError::Program(format!("step uses unknown tensor `{n}`")))
    };
    for (si, step) in program.steps.iter().enumerate() {
        match step {
            Step::Launch { kernel, args } => {
                let ck = compiled.get(*kernel).ok_or_else(|| {
                    perr(format!(
                        "step {si} launches kernel {kernel}, but the program has {}",
                        compiled.len()
                    ))
                })?;
                if let Some(dup) = args
                    .iter()
                    .enumerate()
                    .find(|(i, a)| args[..*i].contains(a))
                {
                    return Err(perr(format!(
                        "step {si} binds tensor `{}` to two parameters",
                        dup.1
                    )));
                }
                let mut bound = Vec::with_capacity(args.len());
                for a in args {
                    bound.push((a.clone(), take(&mut tensors, a)?));
                }
                let mut ts: Vec<Tensor> = bound.iter().map(|(_, t)| t.clone()).collect();
                let r = execute(ck, &module, device, &mut ts, traced)?;
                for ((n, _), t) in bound.into_iter().zip(ts) {
                    tensors.insert(n, t);
                }
                report.total_us += r.time_us;
                report.dram_bytes += r.dram_read_bytes + r.dram_write_bytes;
                report.flops += r.flops;
                report.steps.push(StepReport::Launch(report.kernels.len()));
                report.kernels.push(r);
            }
            Step::Host {
                op,
                attrs,
                inputs: ins,
                outputs,
            } => {
                let mut refs = Vec::with_capacity(ins.len());
                for n in ins {
                    refs.push(tensors.get(n).ok_or_else(|| {
                        perr(format!("host op `{op}` reads unknown tensor `{n}`"))
                    })?);
                }
                let outs = host.run(op, attrs, &refs).map_err(|msg| ExecError::Host {
                    op: op.clone(),
                    msg,
                })?;
                if outs.len() != outputs.len() {
                    return Err(ExecError::Host {
                        op: op.clone(),
                        msg: format!(
                            "returned {} tensors for {} outputs",
                            outs.len(),
                            outputs.len()
                        ),
                    });
                }
                let mut bytes: u64 = refs
                    .iter()
                    .enumerate()
                    .map(|(slot, t)| host.read_bytes(op, attrs, slot, t))
                    .sum();
                for (n, t) in outputs.iter().zip(outs) {
                    let d = program.tensor(n).ok_or_else(|| {
                        perr(format!("host op `{op}` writes unknown tensor `{n}`"))
                    })?;
                    if (t.rows, t.cols) != (d.rows, d.cols) {
                        return Err(ExecError::Host {
                            op: op.clone(),
                            msg: format!(
                                "output `{n}` is {}x{} but the program declares {}x{}",
                                t.rows, t.cols, d.rows, d.cols
                            ),
                        });
                    }
                    bytes += t.data.len() as u64 * 2;
                    tensors.insert(n.clone(), t);
                }
                let dispatch_us = if traced {
                    device.dispatch.traced_us
                } else {
                    device.dispatch.eager_us
                };
                // A TTNN op on the whole grid at its roofline: the longer of its DRAM traffic
                // and its math at the grid's peak rate.
                let flops = host.flops(op, attrs);
                let dram_cycles = bytes as f64 / device.dram_bytes_per_cycle();
                let math_cycles = flops / device.grid_peak_flops_per_cycle();
                let time_us = dispatch_us + device.cycles_to_us(dram_cycles.max(math_cycles));
                report.total_us += time_us;
                report.dram_bytes += bytes;
                report.flops += flops;
                report.steps.push(StepReport::Host(report.host_ops.len()));
                report.host_ops.push(HostOpReport {
                    op: op.clone(),
                    dispatch_us,
                    dram_bytes: bytes,
                    flops,
                    time_us,
                });
            }
        }
    }
    report.roofline =
        ProgramRoofline::of(device, &report.kernels, &report.host_ops, report.total_us);
    Ok(ProgramRun { tensors, report })
}
