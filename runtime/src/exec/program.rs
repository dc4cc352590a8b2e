//! Runs a whole host [`Program`]: materializes its tensors, performs its steps in order (kernel
//! launches on the executor, host ops through a [`HostOps`] implementation) and sums the costs.

use std::collections::BTreeMap;

use super::error::ExecError;
use super::kernel::{compile_kernel, execute, CompiledKernel, ModuleEnv};
use super::{Dispatch, HostOps, ProgramRun};
use crate::device::Device;
use crate::program::{Program, Step, TensorInit};
use crate::tensor::Tensor;
use crate::timing::report::{
    HostOpReport, KernelReport, ProgramReport, ProgramRoofline, StepReport,
};

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
    let mut tensors = materialize(program, inputs)?;
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
    for (si, step) in program.steps.iter().enumerate() {
        match step {
            Step::Launch { kernel, args } => {
                let ck = compiled.get(*kernel).ok_or_else(|| {
                    ExecError::Program(format!(
                        "step {si} launches kernel {kernel}, but the program has {}",
                        compiled.len()
                    ))
                })?;
                let args = bind(&mut tensors, args, si)?;
                let r = launch(ck, &module, device, &mut tensors, args, traced)?;
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
                let on = HostStep {
                    program,
                    device,
                    host,
                    traced,
                };
                let r = on.run(&mut tensors, (op, attrs), (ins, outputs))?;
                report.total_us += r.time_us;
                report.dram_bytes += r.dram_bytes;
                report.flops += r.flops;
                report.steps.push(StepReport::Host(report.host_ops.len()));
                report.host_ops.push(r);
            }
        }
    }
    report.roofline =
        ProgramRoofline::of(device, &report.kernels, &report.host_ops, report.total_us);
    Ok(ProgramRun { tensors, report })
}

/// The program's tensors at the start: its inputs from `inputs` (each checked against its
/// declaration), its constants and its zero-filled tensors.
fn materialize(
    program: &Program,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, Tensor>, ExecError> {
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
    Ok(tensors)
}

/// Takes the tensors step `si` binds to its kernel's parameters, `args`, out of `tensors`
/// (the kernel owns them while it runs): each bound once.
fn bind(
    tensors: &mut BTreeMap<String, Tensor>,
    args: &[String],
    si: usize,
) -> Result<Vec<(String, Tensor)>, ExecError> {
    if let Some((_, dup)) = args
        .iter()
        .enumerate()
        .find(|(i, a)| args[..*i].contains(a))
    {
        return Err(ExecError::Program(format!(
            "step {si} binds tensor `{dup}` to two parameters"
        )));
    }
    args.iter()
        .map(|a| {
            let t = tensors
                .remove(a)
                .ok_or_else(|| ExecError::Program(format!("step uses unknown tensor `{a}`")))?;
            Ok((a.clone(), t))
        })
        .collect()
}

/// Runs kernel `ck` on the tensors `bound` to its parameters and puts them back into
/// `tensors`, its outputs written.
fn launch(
    ck: &CompiledKernel<'_>,
    module: &ModuleEnv,
    device: &Device,
    tensors: &mut BTreeMap<String, Tensor>,
    bound: Vec<(String, Tensor)>,
    traced: bool,
) -> Result<KernelReport, ExecError> {
    let (names, mut ts): (Vec<String>, Vec<Tensor>) = bound.into_iter().unzip();
    let r = execute(ck, module, device, &mut ts, traced)?;
    tensors.extend(names.into_iter().zip(ts));
    Ok(r)
}

/// What a host step runs with: the program (its tensor declarations), the device (its
/// dispatch and roofline figures), the host ops and the dispatch mode.
struct HostStep<'a> {
    program: &'a Program,
    device: &'a Device,
    host: &'a dyn HostOps,
    traced: bool,
}

impl HostStep<'_> {
    /// Runs host op `op` on the tensors `ins`, writes its results to `outputs` (each checked
    /// against its declaration), and costs it as a TTNN op on the whole grid at its roofline:
    /// dispatch plus the longer of its DRAM traffic and its math at the grid's peak rate
    /// ([`HostOpReport::roofline`]).
    fn run(
        &self,
        tensors: &mut BTreeMap<String, Tensor>,
        (op, attrs): (&String, &serde_json::Value),
        (ins, outputs): (&[String], &[String]),
    ) -> Result<HostOpReport, ExecError> {
        let (device, host) = (self.device, self.host);
        let host_err = |msg: String| ExecError::Host {
            op: op.clone(),
            msg,
        };
        let mut refs = Vec::with_capacity(ins.len());
        for n in ins {
            refs.push(tensors.get(n).ok_or_else(|| {
                ExecError::Program(format!("host op `{op}` reads unknown tensor `{n}`"))
            })?);
        }
        let outs = host.run(op, attrs, &refs).map_err(host_err)?;
        if outs.len() != outputs.len() {
            return Err(host_err(format!(
                "returned {} tensors for {} outputs",
                outs.len(),
                outputs.len()
            )));
        }
        let mut bytes: u64 = refs
            .iter()
            .enumerate()
            .map(|(slot, t)| host.read_bytes(op, attrs, slot, t))
            .sum();
        for (n, t) in outputs.iter().zip(outs) {
            let d = self.program.tensor(n).ok_or_else(|| {
                ExecError::Program(format!("host op `{op}` writes unknown tensor `{n}`"))
            })?;
            if (t.rows, t.cols) != (d.rows, d.cols) {
                return Err(host_err(format!(
                    "output `{n}` is {}x{} but the program declares {}x{}",
                    t.rows, t.cols, d.rows, d.cols
                )));
            }
            bytes += t.data.len() as u64 * 2;
            tensors.insert(n.clone(), t);
        }
        let dispatch_us = device.dispatch.us(self.traced);
        let mut report = HostOpReport {
            op: op.clone(),
            dispatch_us,
            dram_bytes: bytes,
            flops: host.flops(op, attrs),
            time_us: 0.0,
        };
        report.time_us = dispatch_us + report.roofline(device).0;
        Ok(report)
    }
}
