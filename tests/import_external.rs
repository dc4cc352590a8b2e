//! ONNX initializers in an external data file (`model.onnx.data` beside the model): the model
//! imports to the same graph as its single-file original and computes the same outputs; a
//! missing, short or out-of-directory data file is a clear error naming the file and tensor.

use std::path::{Path, PathBuf};

use onnx_protobuf::{Message, ModelProto};
use ttfuse::graph::{Graph, Op};
use ttfuse::import::{load, ImportError, ImportOptions};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn import(path: &Path) -> Graph {
    load(path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ttfuse-external-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// The external mlp model with every `location` entry set to `location`, written to `dir`.
fn with_location(dir: &Path, location: &str) -> PathBuf {
    let bytes = std::fs::read(models().join("external/mlp/model.onnx")).unwrap();
    let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
    for init in &mut model.graph.as_mut().unwrap().initializer {
        for kv in &mut init.external_data {
            if kv.key == "location" {
                kv.value = location.to_string();
            }
        }
    }
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    path
}

fn external_err(path: &Path) -> (String, String) {
    let err = load(path, &ImportOptions::default()).expect_err("import should fail");
    let msg = err.to_string();
    match err {
        ImportError::ExternalData {
            tensor, data_file, ..
        } => (format!("{tensor} {data_file}"), msg),
        other => panic!("expected an external-data error, got: {other}"),
    }
}

#[test]
fn external_weights_import_like_the_single_file_model() {
    let inline = import(&models().join("mlp/model.onnx"));
    let external = import(&models().join("external/mlp/model.onnx"));
    let summary = |g: &Graph| -> Vec<(String, String, Vec<usize>)> {
        g.topo_order()
            .iter()
            .map(|&i| {
                let n = g.node(i);
                (n.name.clone(), n.op.name(), n.ty.shape.clone())
            })
            .collect()
    };
    assert_eq!(summary(&inline), summary(&external));
    let constants = |g: &Graph| -> Vec<Op> {
        g.topo_order()
            .iter()
            .map(|&i| g.node(i).op.clone())
            .filter(|op| matches!(op, Op::Constant(_)))
            .collect()
    };
    let weights = constants(&external);
    assert_eq!(weights.len(), 4, "two weights and two biases");
    assert_eq!(constants(&inline), weights);

    let inputs = ttfuse::npy::read_dir(&models().join("mlp/inputs")).unwrap();
    let want = ttfuse::reference::run(&inline, &inputs).unwrap();
    let got = ttfuse::reference::run(&external, &inputs).unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_missing_data_file_is_named() {
    let dir = scratch("missing");
    std::fs::copy(
        models().join("external/mlp/model.onnx"),
        dir.join("model.onnx"),
    )
    .unwrap();
    let (what, msg) = external_err(&dir.join("model.onnx"));
    assert!(
        what.starts_with("fc1.weight ") && what.ends_with("model.onnx.data"),
        "{what}"
    );
    assert!(msg.contains("cannot open"), "{msg}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_short_data_file_is_reported_with_the_byte_range() {
    let dir = scratch("short");
    let src = models().join("external/mlp");
    std::fs::copy(src.join("model.onnx"), dir.join("model.onnx")).unwrap();
    let data = std::fs::read(src.join("model.onnx.data")).unwrap();
    // Cut inside fc2.weight (bytes 526336..1050624): fc1's tensors still read.
    std::fs::write(dir.join("model.onnx.data"), &data[..600_000]).unwrap();
    let (what, msg) = external_err(&dir.join("model.onnx"));
    assert!(what.starts_with("fc2.weight "), "{what}");
    assert!(
        msg.contains("526336..1050624") && msg.contains("600000 bytes"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_location_outside_the_model_directory_is_refused() {
    let dir = scratch("escape");
    let inner = dir.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    // The data exists outside, so only the location check can stop the import.
    std::fs::copy(
        models().join("external/mlp/model.onnx.data"),
        dir.join("model.onnx.data"),
    )
    .unwrap();
    for location in [
        "../model.onnx.data",
        dir.join("model.onnx.data").to_str().unwrap(),
    ] {
        let path = with_location(&inner, location);
        let (what, msg) = external_err(&path);
        assert!(what.starts_with("fc1.weight "), "{what}");
        assert!(
            msg.contains("leaves the model's directory"),
            "{location}: {msg}"
        );
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("model.onnx.data"), inner.join("link.data")).unwrap();
        let path = with_location(&inner, "link.data");
        let (_, msg) = external_err(&path);
        assert!(msg.contains("outside the model's directory"), "{msg}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
