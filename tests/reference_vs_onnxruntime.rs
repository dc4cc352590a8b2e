//! Every example model in models/: import it, run the reference interpreter on the stored
//! inputs and compare with the stored outputs (onnxruntime for ONNX models, numpy for the TTNN
//! program), in f32 with a tight tolerance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ttfuse::graph::{Op, TensorData};
use ttfuse::import::{load, ImportOptions};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The model file of each example (a directory with inputs/ and outputs/), in models/ and
/// models/ops/.
fn examples() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in [models_dir(), models_dir().join("ops")] {
        for entry in std::fs::read_dir(root).expect("models/ exists") {
            let dir = entry.expect("readable models/ entry").path();
            if !dir.join("outputs").is_dir() {
                continue;
            }
            for file in ["model.onnx", "program.py", "model.mlir"] {
                if dir.join(file).is_file() {
                    found.push(dir.join(file));
                }
            }
        }
    }
    found.sort();
    found
}

/// Largest |got - want| / (atol + rtol·|want|) over all elements; ≤ 1 passes.
fn worst_error(got: &TensorData, want: &TensorData, atol: f32, rtol: f32) -> f32 {
    assert_eq!(got.shape(), want.shape());
    got.to_f32()
        .iter()
        .zip(want.to_f32())
        .map(|(g, w)| (g - w).abs() / (atol + rtol * w.abs()))
        .fold(0.0, f32::max)
}

fn check(model: &Path) -> Vec<String> {
    let dir = model.parent().expect("model has a directory");
    let graph = load(model, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    ttfuse::graph::validate::validate(&graph)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let inputs = ttfuse::npy::read_dir(&dir.join("inputs")).expect("inputs readable");
    let want = ttfuse::npy::read_dir(&dir.join("outputs")).expect("outputs readable");
    let got = ttfuse::reference::run(&graph, &inputs)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{}",
        model.display()
    );
    for (name, w) in &want {
        let err = worst_error(&got[name], w, 1e-5, 1e-4);
        assert!(
            err <= 1.0,
            "{}: output {name} off by {err} tolerances",
            model.display()
        );
    }
    let mut ops: Vec<String> = graph.dag.node_weights().map(|n| n.op.name()).collect();
    ops.sort();
    ops.dedup();
    ops
}

#[test]
fn every_example_model_matches_its_stored_outputs() {
    let models = examples();
    let names: Vec<String> = models
        .iter()
        .map(|m| {
            m.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    for expected in [
        "attention",
        "attention_mlp",
        "attention_ttnn",
        "key_use_case",
        "mlp",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "model {expected} missing from models/: {names:?}"
        );
    }
    assert!(
        models.len() >= 14,
        "expected the 5 examples and the op models, found {models:?}"
    );
    for m in &models {
        check(m);
    }
}

#[test]
fn attention_imports_as_primitives_with_folded_weights() {
    let graph = load(
        &models_dir().join("attention/model.onnx"),
        &ImportOptions::default(),
    )
    .unwrap();
    let count = |name: &str| {
        graph
            .dag
            .node_weights()
            .filter(|n| n.op.name() == name)
            .count()
    };
    // Four Linear layers and two attention products.
    assert_eq!(count("MatMul"), 6);
    assert_eq!(count("Softmax"), 1);
    // Only k.T remains as a Transpose: the Gemm weight transposes fold into constants.
    assert_eq!(count("Transpose"), 1);
    assert_eq!(graph.inputs.len(), 1);
    assert_eq!(graph.node(graph.inputs[0]).name, "x");
    assert_eq!(
        graph
            .outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["y"]
    );
    for n in graph.dag.node_weights() {
        if let Op::Constant(_) = n.op {
            continue;
        }
        assert!(
            n.ty.shape.iter().all(|&d| d % 32 == 0 || d == 1),
            "{} has shape {:?}",
            n.name,
            n.ty.shape
        );
    }
}

#[test]
fn reference_detects_a_perturbed_input() {
    // The comparison above is meaningful: a small change of the input moves the outputs.
    let model = models_dir().join("mlp/model.onnx");
    let graph = load(&model, &ImportOptions::default()).unwrap();
    let mut inputs: BTreeMap<String, TensorData> =
        ttfuse::npy::read_dir(&models_dir().join("mlp/inputs")).unwrap();
    let want = ttfuse::npy::read_dir(&models_dir().join("mlp/outputs")).unwrap();
    if let Some(TensorData::F32 { values, .. }) = inputs.get_mut("x") {
        values[0] += 0.01;
    }
    let got = ttfuse::reference::run(&graph, &inputs).unwrap();
    assert!(worst_error(&got["y"], &want["y"], 1e-5, 1e-4) > 1.0);
}

#[test]
fn every_supported_onnx_op_is_checked_against_onnxruntime() {
    use onnx_protobuf::{Message, ModelProto};
    let mut used = std::collections::BTreeSet::new();
    for m in examples()
        .iter()
        .filter(|m| m.extension().is_some_and(|e| e == "onnx"))
    {
        let model = ModelProto::parse_from_bytes(&std::fs::read(m).unwrap()).unwrap();
        used.extend(model.graph.node.iter().map(|n| n.op_type.clone()));
    }
    let missing: Vec<&str> = ttfuse::import::onnx::ops::supported()
        .into_iter()
        .filter(|op| !used.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "ops without an onnxruntime-checked model: {missing:?}"
    );
}
