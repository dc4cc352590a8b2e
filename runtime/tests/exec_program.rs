//! Whole host programs: tensors, kernel launches, host fallbacks, dispatch modes and totals.

mod exec_util;

use std::collections::BTreeMap;

use exec_util::*;
use ttfuse_runtime::exec::{run_program, Dispatch, ExecError, HostOps, StepReport};
use ttfuse_runtime::program::{Program, Step, TensorDecl, TensorInit};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::parse_module;

/// Host ops for the test: `test.scale` multiplies by `attrs.factor`.
struct Host;

impl HostOps for Host {
    fn run(
        &self,
        op: &str,
        attrs: &serde_json::Value,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, String> {
        match op {
            "test.scale" => {
                let f = attrs["factor"].as_f64().ok_or("factor missing")? as f32;
                let t = inputs[0];
                let v: Vec<f32> = t.to_f32().iter().map(|x| x * f).collect();
                Ok(vec![Tensor::from_f32(t.rows, t.cols, &v)])
            }
            other => Err(format!("no host op `{other}`")),
        }
    }
}

fn program() -> Program {
    let exp = parse_module(&unary_kernel(2, 2, "ttl.math.exp(a)"), "exp.py").unwrap();
    let add = parse_module(&binary_kernel(2, 2, "a + b"), "add.py").unwrap();
    let decl = |name: &str, init, is_output| TensorDecl {
        name: name.into(),
        rows: 64,
        cols: 64,
        init,
        is_output,
    };
    Program {
        tensors: vec![
            decl("x", TensorInit::Input, false),
            decl("bias", TensorInit::Const(vec![0.5; 64 * 64]), false),
            decl("t", TensorInit::Zeros, false),
            decl("u", TensorInit::Zeros, false),
            decl("out", TensorInit::Zeros, true),
        ],
        kernels: vec![exp.kernels[0].clone(), add.kernels[0].clone()],
        steps: vec![
            Step::Launch {
                kernel: 0,
                args: vec!["x".into(), "t".into()],
            },
            Step::Host {
                op: "test.scale".into(),
                attrs: serde_json::json!({"factor": 2.0}),
                inputs: vec!["t".into()],
                outputs: vec!["u".into()],
            },
            Step::Launch {
                kernel: 1,
                args: vec!["u".into(), "bias".into(), "out".into()],
            },
        ],
    }
}

#[test]
fn runs_launches_and_host_ops_in_order() {
    let d = wormhole();
    let x = tensor(64, 64, 1, -1.0, 1.0);
    let inputs = BTreeMap::from([("x".to_string(), x.clone())]);
    let run = run_program(&program(), &d, &inputs, &Host, Dispatch::Traced).unwrap();
    let want: Vec<f32> = x
        .to_f32()
        .iter()
        .map(|v| bf(bf(bf(v.exp()) * 2.0) + 0.5))
        .collect();
    assert_close(&run.tensors["out"], &want, 0.0, 0.0);
    assert_eq!(run.tensors.len(), 5);
    let r = &run.report;
    assert_eq!(
        r.steps,
        vec![
            StepReport::Launch(0),
            StepReport::Host(0),
            StepReport::Launch(1)
        ]
    );
    let host_bytes = 2 * 64 * 64 * 2;
    assert_eq!(r.host_ops[0].dram_bytes, host_bytes as u64);
    let host_us = d.dispatch.traced_us
        + host_bytes as f64 / d.dram_bytes_per_cycle() / (d.clock_ghz * 1000.0);
    assert!((r.host_ops[0].time_us - host_us).abs() < 1e-9);
    let total = r.kernels[0].time_us + r.kernels[1].time_us + r.host_ops[0].time_us;
    assert!((r.total_us - total).abs() < 1e-9);
    let kernel_bytes: u64 = r
        .kernels
        .iter()
        .map(|k| k.dram_read_bytes + k.dram_write_bytes)
        .sum();
    assert_eq!(r.dram_bytes, kernel_bytes + host_bytes as u64);

    // Eager dispatch costs the same work plus the larger per-launch overhead, three times.
    let eager = run_program(&program(), &d, &inputs, &Host, Dispatch::Eager).unwrap();
    let extra = 3.0 * (d.dispatch.eager_us - d.dispatch.traced_us);
    assert!((eager.report.total_us - r.total_us - extra).abs() < 1e-9);
    assert_eq!(eager.tensors["out"], run.tensors["out"]);
}

#[test]
fn program_errors_are_clear() {
    let d = wormhole();
    let e = run_program(&program(), &d, &BTreeMap::new(), &Host, Dispatch::Traced).unwrap_err();
    assert!(
        e.to_string()
            .contains("input tensor `x` (64x64) was not supplied"),
        "{e}"
    );

    let wrong = BTreeMap::from([("x".to_string(), Tensor::zeros(32, 64))]);
    let e = run_program(&program(), &d, &wrong, &Host, Dispatch::Traced).unwrap_err();
    assert!(
        e.to_string()
            .contains("input `x` is 32x64 but the program declares 64x64"),
        "{e}"
    );

    let inputs = BTreeMap::from([("x".to_string(), Tensor::zeros(64, 64))]);
    let mut p = program();
    p.steps[1] = Step::Host {
        op: "test.nope".into(),
        attrs: serde_json::Value::Null,
        inputs: vec!["t".into()],
        outputs: vec!["u".into()],
    };
    let e = run_program(&p, &d, &inputs, &Host, Dispatch::Traced).unwrap_err();
    assert!(
        matches!(&e, ExecError::Host { op, .. } if op == "test.nope"),
        "{e}"
    );

    let mut p = program();
    p.steps[0] = Step::Launch {
        kernel: 0,
        args: vec!["x".into(), "missing".into()],
    };
    let e = run_program(&p, &d, &inputs, &Host, Dispatch::Traced).unwrap_err();
    assert!(e.to_string().contains("unknown tensor `missing`"), "{e}");

    let mut p = program();
    p.steps[0] = Step::Launch {
        kernel: 7,
        args: vec![],
    };
    let e = run_program(&p, &d, &inputs, &Host, Dispatch::Traced).unwrap_err();
    assert!(
        e.to_string()
            .contains("launches kernel 7, but the program has 2"),
        "{e}"
    );
}
