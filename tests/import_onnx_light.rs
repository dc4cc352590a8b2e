//! The real CNN graphs shipped in the `onnx` Python package (`onnx/backend/test/data/light`:
//! AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19,
//! ZFNet-512, with constant weights made by ConstantOfShape): each imports, and the reference
//! interpreter reproduces the output stored beside it (`<model>_output_0.pb`).
//!
//! The stored outputs were computed by onnx's backend test runner on the input it generates
//! for these models, `arange(n).reshape(shape) / n` in f32, which this test rebuilds. With
//! constant weights most of them end in a uniform softmax (every class 0.001), so the value
//! before the softmax is also compared, with onnxruntime's (models/onnx_light/, made by
//! models/make_onnx_light.py).
//!
//! The models are copied from onnx 1.23.2 into models/onnx_light/package/ (see the README
//! there); `TTFUSE_ONNX_LIGHT` names another copy of that folder, e.g. a newer package's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use onnx_protobuf::{Message, ModelProto, TensorProto};
use ttfuse::graph::TensorData;
use ttfuse::import::onnx::tensor;
use ttfuse::import::{load, ImportOptions};

fn light_dir() -> PathBuf {
    std::env::var_os("TTFUSE_ONNX_LIGHT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("models/onnx_light/package"),
        PathBuf::from,
    )
}

/// onnx's generated input for a float input of `shape`: `arange(n) / n`, computed in f64 and
/// rounded to f32 as numpy does.
fn runner_input(shape: &[usize]) -> TensorData {
    let n: usize = shape.iter().product();
    let values = (0..n).map(|i| (i as f64 / n as f64) as f32).collect();
    TensorData::f32(shape.to_vec(), values)
}

fn read_tensor(path: &Path) -> TensorData {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let proto =
        TensorProto::parse_from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tensor::decode(&proto)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .0
}

/// The model's graph inputs that are neither initializers nor node outputs, with their shapes.
fn free_inputs(model: &Path) -> Vec<(String, Vec<usize>)> {
    let proto = ModelProto::parse_from_bytes(&std::fs::read(model).unwrap()).unwrap();
    let g = proto.graph.as_ref().unwrap();
    let defined: Vec<&String> = g
        .initializer
        .iter()
        .map(|t| &t.name)
        .chain(g.node.iter().flat_map(|n| &n.output))
        .collect();
    g.input
        .iter()
        .filter(|i| !defined.contains(&&i.name))
        .map(|i| {
            let tt = i.type_.tensor_type();
            let dims = tt
                .shape
                .dim
                .iter()
                .map(|d| d.dim_value() as usize)
                .collect();
            (i.name.clone(), dims)
        })
        .collect()
}

/// Largest |got - want| / (atol + rtol·|want|); ≤ 1 passes.
fn worst_error(got: &TensorData, want: &TensorData, atol: f32, rtol: f32) -> f32 {
    assert_eq!(got.shape(), want.shape());
    got.to_f32()
        .iter()
        .zip(want.to_f32())
        .map(|(g, w)| (g - w).abs() / (atol + rtol * w.abs()))
        .fold(0.0, f32::max)
}

fn check(model: &Path) -> Result<(), String> {
    let name = model.file_stem().unwrap().to_string_lossy().into_owned();
    let start = Instant::now();
    let mut graph = load(model, &ImportOptions::default()).map_err(|e| e.to_string())?;
    let imported = start.elapsed();
    let inputs: BTreeMap<String, TensorData> = free_inputs(model)
        .into_iter()
        .map(|(n, shape)| (n, runner_input(&shape)))
        .collect();
    // The value before the final Softmax, stored by models/make_onnx_light.py (onnxruntime).
    let logits_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/onnx_light");
    let logits = match std::fs::read_to_string(logits_dir.join(format!("{name}.txt"))) {
        Ok(value) => {
            let value = value.trim().to_string();
            let idx = graph
                .dag
                .node_indices()
                .find(|&i| graph.node(i).name == value)
                .ok_or(format!("no node is named after the logits value `{value}`"))?;
            graph.outputs.push(("logits".into(), idx));
            let want = ttfuse::npy::read(&logits_dir.join(format!("{name}.npy")))
                .map_err(|e| e.to_string())?;
            Some(want)
        }
        Err(_) => None,
    };
    let got = ttfuse::reference::run(&graph, &inputs).map_err(|e| e.to_string())?;
    if let Some(want) = logits {
        let err = worst_error(&got["logits"], &want, 1e-5, 1e-3);
        eprintln!("{name}: logits worst error {err:.2e} of tolerance");
        if err > 1.0 {
            return Err(format!("{name}: logits differ, {err} × the tolerance"));
        }
    }
    let (out_name, _) = graph.outputs.first().ok_or("no outputs")?;
    let want = read_tensor(&model.with_file_name(format!("{name}_output_0.pb")));
    // f32 conv/gemm chains of up to ~120 layers: the runner's own tolerance is rtol 1e-3.
    let err = worst_error(&got[out_name], &want, 1e-5, 1e-3);
    eprintln!(
        "{name}: import {:.2}s, import + reference {:.2}s, worst error {err:.2e} of tolerance",
        imported.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    if err > 1.0 {
        return Err(format!("{name}: output differs, {err} × the tolerance"));
    }
    Ok(())
}

/// Checks `light_<name>.onnx` from the light models folder.
fn check_model(name: &str) {
    let dir = light_dir();
    let model = dir.join(format!("light_{name}.onnx"));
    assert!(model.is_file(), "{} is missing", model.display());
    if let Err(e) = check(&model) {
        panic!("{}: {e}", model.display());
    }
}

/// One test per model, so that they share the cores.
macro_rules! light_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            check_model(stringify!($name));
        }
    )*};
}

light_tests!(
    bvlc_alexnet,
    densenet121,
    inception_v1,
    inception_v2,
    resnet50,
    shufflenet,
    squeezenet,
    vgg19,
    zfnet512
);

/// The folder holds exactly the models tested above (a new one would go unchecked).
#[test]
fn every_light_model_is_tested() {
    let dir = light_dir();
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".onnx"))
        .collect();
    found.sort();
    let tested = [
        "bvlc_alexnet",
        "densenet121",
        "inception_v1",
        "inception_v2",
        "resnet50",
        "shufflenet",
        "squeezenet",
        "vgg19",
        "zfnet512",
    ]
    .map(|n| format!("light_{n}.onnx"));
    assert_eq!(found, tested, "{}", dir.display());
}
