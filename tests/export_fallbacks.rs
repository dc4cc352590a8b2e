//! The exported driver's TTNN fallback ops (`ttfuse_host_ops.py`, numpy) compute what ttfuse's
//! runtime computes for every host step, on the very device tensors of a run: the unfused LLaMA
//! block (head-split reshapes and transposes, the rotate-half slices and concatenations), the
//! fused ResNet block (convolutions with BatchNorm folded in, the first with its ReLU fused),
//! the conv/pool op model (strided, dilated, grouped and asymmetrically padded convolutions, max
//! and average pools), an im2col that no matmul gathers and a convolution of pixel matrices.
//! Needs python3; numpy comes from python3 when it has it, else from a virtual environment the
//! test makes under the target directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ttfuse::graph::{DType, Graph, Op, TensorData, TensorType};
use ttfuse::import::builder::GraphBuilder;
use ttfuse::import::ImportOptions;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::lower::{compile, Compiled, FusionMode};
use ttfuse::optimize::OptimizeOptions;
use ttfuse::{inputs, npy, pipeline};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_program, Dispatch};
use ttfuse_runtime::program::Step;

/// The numpy version the virtual environment gets (the one the exported driver was tested with).
const NUMPY: &str = "numpy==2.4.6";

/// A Python interpreter that imports numpy: `python3` itself, or one of a virtual environment
/// made once under the target directory with numpy installed from PyPI, so that the test suite
/// asks nothing of a fresh machine beyond python3. Found once for all of this file's tests,
/// which run in parallel: two installing numpy into the one environment at once break each
/// other's install.
fn python_with_numpy() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_python_with_numpy).clone()
}

/// [`python_with_numpy`], found (and the environment made) now.
fn find_python_with_numpy() -> PathBuf {
    let imports_numpy = |python: &Path| {
        Command::new(python)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let system = PathBuf::from("python3");
    if imports_numpy(&system) {
        return system;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-numpy");
    let python = venv.join("bin").join("python3");
    if !imports_numpy(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", NUMPY])
            .status()
            .expect("the virtual environment's python runs");
        assert!(
            installed.success(),
            "pip could not install {NUMPY} into {}",
            venv.display()
        );
    }
    python
}

/// Runs `model`'s fused or unfused program and checks every host step against
/// `ttfuse_host_ops.py` on the step's own input tensors; returns the host ops it checked.
fn check_host_steps(model_path: &str, fused: bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model =
        pipeline::load_model(Some(&root.join(model_path)), &ImportOptions::default()).unwrap();
    let device = Device::load("wormhole_b0").unwrap();
    let compiled = pipeline::compile(&model, &device, &OptimizeOptions::default()).unwrap();
    let lowered = if fused {
        &compiled.fused
    } else {
        &compiled.unfused
    };
    let label = format!("{}-{fused}", model_path.replace('/', "_"));
    check_program_host_steps(&model.graph, lowered, &label)
}

/// Runs `lowered` (a program of `graph`) and checks every host step against
/// `ttfuse_host_ops.py`; returns the host ops it checked.
fn check_program_host_steps(graph: &Graph, lowered: &Compiled, label: &str) -> Vec<String> {
    let device = Device::load("wormhole_b0").unwrap();
    let program = &lowered.program;
    let data = inputs::complete_inputs(graph, BTreeMap::new(), 0);
    let mut device_inputs = BTreeMap::new();
    for b in &lowered.inputs {
        device_inputs.insert(b.tensor.clone(), b.to_device(&data[&b.name]));
    }
    let run = run_program(
        program,
        &device,
        &device_inputs,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .unwrap();

    let dir = std::env::temp_dir().join(format!("ttfuse-fallbacks-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ttfuse_host_ops.py"),
        ttfuse::bundle::driver::HOST_OPS_PY,
    )
    .unwrap();
    let save = |path: &Path, name: &str| {
        let t = &run.tensors[name];
        npy::write(
            path,
            &TensorData::F32 {
                shape: vec![t.rows, t.cols],
                values: t.to_f32(),
            },
        )
        .unwrap();
    };
    let mut steps = Vec::new();
    for (i, step) in program.steps.iter().enumerate() {
        if let Step::Host {
            attrs,
            inputs,
            outputs,
            ..
        } = step
        {
            for (j, input) in inputs.iter().enumerate() {
                save(&dir.join(format!("s{i}_in{j}.npy")), input);
            }
            steps.push(serde_json::json!({"step": i, "attrs": attrs, "inputs": inputs.len()}));
            assert_eq!(outputs.len(), 1);
        }
    }
    std::fs::write(
        dir.join("steps.json"),
        serde_json::to_string(&steps).unwrap(),
    )
    .unwrap();
    let script = r#"
import json, os, sys
import numpy as np
sys.path.insert(0, os.getcwd())
import ttfuse_host_ops
for s in json.load(open("steps.json")):
    arrays = [np.load(f"s{s['step']}_in{j}.npy") for j in range(s["inputs"])]
    np.save(f"s{s['step']}_out.npy", ttfuse_host_ops.run(s["attrs"], arrays))
"#;
    let out = Command::new(python_with_numpy())
        .args(["-c", script])
        .current_dir(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "host ops failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked = Vec::new();
    for step in &steps {
        let i = step["step"].as_u64().unwrap() as usize;
        let Step::Host { outputs, op, .. } = &program.steps[i] else {
            unreachable!()
        };
        checked.push(op.clone());
        let want = run.tensors[&outputs[0]].to_f32();
        let got = npy::read(&dir.join(format!("s{i}_out.npy"))).unwrap();
        let t = &run.tensors[&outputs[0]];
        assert_eq!(got.shape(), &[t.rows, t.cols], "step {i} {op}");
        for (k, (g, w)) in got.to_f32().iter().zip(&want).enumerate() {
            // The runtime stores the result as bf16 (8 mantissa bits).
            assert!(
                g == w || (g - w).abs() <= 1e-2 * w.abs().max(1e-3),
                "{label} step {i} {op}: element {k} is {g}, the runtime has {w}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    checked
}

#[test]
fn host_ops_py_matches_the_runtime_on_every_fallback_step() {
    let mut ops = check_host_steps("models/llama_block/model.onnx", false);
    ops.extend(check_host_steps("models/resnet_block/model.onnx", true));
    ops.extend(check_host_steps("models/ops/conv_pool/model.onnx", true));
    ops.extend(im2col_host_step());
    ops.extend(pixel_conv_host_step());
    for want in [
        "ttnn.reshape",
        "ttnn.transpose",
        "ttnn.slice",
        "ttnn.concat",
        "ttnn.conv",
        "ttnn.conv_relu",
        "ttnn.max_pool",
        "ttnn.mean_pool",
        "ttnn.im2col",
    ] {
        assert!(
            ops.iter().any(|op| op == want),
            "no {want} step was checked: {ops:?}"
        );
    }
}

/// A TTNN convolution of pixel matrices (as the convolutions between matmul kernels in a
/// pixel-major region run): two 10x12 images of 32 channels, stride 2, a bias and a fused ReLU.
fn pixel_conv_host_step() -> Vec<String> {
    let mut b = GraphBuilder::new();
    let x = b.input("x", TensorType::new(vec![2 * 10 * 12, 32], DType::F32));
    let weights = |shape: Vec<usize>, seed: usize| {
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|i| ((i * 7 + seed) % 13) as f32 * 0.02 - 0.1)
            .collect();
        Op::Constant(std::sync::Arc::new(TensorData::F32 { shape, values }))
    };
    let w = b.add("w", weights(vec![64, 32, 3, 3], 1), &[]).unwrap();
    let bias = b.add("bias", weights(vec![64], 5), &[]).unwrap();
    let op = Op::Conv {
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1; 4],
        dilation: [1, 1],
        groups: 1,
        relu: true,
        pixels: Some([2, 10, 12]),
    };
    let y = b.add("y", op, &[x, w, bias]).unwrap();
    let graph = b.finish(vec![("y".into(), y)]);
    let device = Device::load("wormhole_b0").unwrap();
    let lowered = compile(&graph, &device, FusionMode::Fused).unwrap();
    let ops = check_program_host_steps(&graph, &lowered, "pixel-conv");
    assert_eq!(ops, ["ttnn.conv_relu"]);
    ops
}

/// An im2col that no matmul reads (its matrix is an output) runs on the host: with two images,
/// a dilated 3x3 window and asymmetric padding.
fn im2col_host_step() -> Vec<String> {
    let mut b = GraphBuilder::new();
    let x = b.input("x", TensorType::new(vec![2 * 6 * 8, 32], DType::F32));
    let op = Op::Im2Col {
        image: [2, 6, 8],
        kernel: [3, 3],
        stride: [1, 2],
        pads: [2, 1, 1, 2],
        dilation: [2, 1],
    };
    let col = b.add("col", op, &[x]).unwrap();
    let graph = b.finish(vec![("col".into(), col)]);
    let device = Device::load("wormhole_b0").unwrap();
    let lowered = compile(&graph, &device, FusionMode::Fused).unwrap();
    check_program_host_steps(&graph, &lowered, "im2col")
}

/// The driver's `pcc` (`run.py`, numpy) judges outputs as ttfuse's own
/// ([`ttfuse::agreement::pcc`]) does, constant outputs included: a device output of one value
/// against a reference that varies by less than bf16 resolves (a saturated softmax) agrees,
/// one off by more does not. Its worst PCC over the outputs is NaN when one is NaN, as
/// [`ttfuse::agreement::Agreement::worst`]'s is, and NaN fails the exit status check.
#[test]
fn the_driver_s_pcc_is_ttfuse_s() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/mlp/model.onnx");
    let model = pipeline::load_model(Some(&model), &ImportOptions::default()).unwrap();
    let device = Device::load("wormhole_b0").unwrap();
    let compiled = pipeline::compile(&model, &device, &OptimizeOptions::default()).unwrap();
    let driver = ttfuse::bundle::driver::driver(&compiled.fused);
    let start = driver.find("def pcc(").expect("the driver defines pcc");
    let end = driver[start..]
        .find("\n\n")
        .map_or(driver.len(), |e| start + e);
    let pcc_py = &driver[start..end];
    let start = driver.find("def worse(").expect("the driver defines worse");
    let end = driver[start..]
        .find("\n\n")
        .map_or(driver.len(), |e| start + e);
    let worse_py = &driver[start..end];
    assert!(driver.contains("worst = worse(worst, p)"), "{driver}");
    assert!(
        driver.contains("return 0 if worst >= PCC_THRESHOLD else 1"),
        "{driver}"
    );

    let ramp: Vec<f32> = (0..64).map(|i| 0.001 + i as f32 * 1e-10).collect();
    let noisy: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 3.0)
        .collect();
    let shifted: Vec<f32> = noisy.iter().map(|x| x * 0.9 + 0.05).collect();
    let cases: [(&[f32], Vec<f32>); 4] = [
        (&ramp, vec![0.001; 64]),
        (&ramp, vec![0.0011; 64]),
        (&[2.0; 64], vec![2.0; 64]),
        (&noisy, shifted),
    ];
    let list = |v: &[f32]| format!("{v:?}");
    // The tolerance constants `pcc` reads, as the driver defines them.
    let tolerances: String = driver
        .lines()
        .filter(|l| l.starts_with("BF16_RELATIVE = ") || l.starts_with("EQUAL_ABSOLUTE = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut script = format!("import numpy as np\n{tolerances}{pcc_py}\n{worse_py}\n");
    for (want, got) in &cases {
        script += &format!(
            "print(pcc(np.array({}), np.array({})))\n",
            list(want),
            list(got)
        );
    }
    let nan = "float('nan')";
    for (p, q) in [("1.0", nan), (nan, "0.5"), ("0.97", "0.999")] {
        script += &format!("print(worse({p}, {q}))\n");
    }
    let out = Command::new(python_with_numpy())
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut from_driver: Vec<f64> = printed.lines().map(|l| l.parse().unwrap()).collect();
    let worse = from_driver.split_off(cases.len());
    assert!(
        worse[0].is_nan() && worse[1].is_nan() && worse[2] == 0.97,
        "{worse:?}"
    );
    let from_ttfuse: Vec<f64> = cases
        .iter()
        .map(|(want, got)| ttfuse::agreement::pcc(want, got))
        .collect();
    assert_eq!(from_ttfuse[..3], [1.0, 0.0, 1.0]);
    for (d, t) in from_driver.iter().zip(&from_ttfuse) {
        assert!(
            (d - t).abs() < 1e-9,
            "driver {from_driver:?} vs ttfuse {from_ttfuse:?}"
        );
    }
}
