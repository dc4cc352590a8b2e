//! Importer errors: each bad input gives an error naming the file and the node, line or value.

use std::path::{Path, PathBuf};

use ttfuse::import::{load, load_bytes, ImportError, ImportOptions};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn load_err(path: &Path) -> (ImportError, String) {
    let err = load(path, &ImportOptions::default()).expect_err("import should fail");
    let msg = err.to_string();
    (err, msg)
}

#[test]
fn malformed_bytes_are_not_onnx() {
    let err = load_bytes(
        "junk.onnx",
        b"\xff\xff\xff\xff this is not protobuf",
        &ImportOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::Malformed { .. }), "{msg}");
    assert!(
        msg.starts_with("`junk.onnx` is not a valid ONNX model"),
        "{msg}"
    );
}

#[test]
fn empty_file_has_no_graph() {
    let msg = load_bytes("empty.onnx", b"", &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`empty.onnx`") && msg.contains("no graph"),
        "{msg}"
    );
}

#[test]
fn truncated_model_is_reported() {
    let bytes = std::fs::read(models().join("mlp/model.onnx")).unwrap();
    // Cuts all through the file, and at every byte of its tail (where the opset is stored).
    let cuts = (0..bytes.len())
        .step_by(10_007)
        .chain(bytes.len() - 64..bytes.len());
    for cut in cuts {
        let Err(err) = load_bytes("mlp_cut.onnx", &bytes[..cut], &ImportOptions::default()) else {
            panic!("a model cut at byte {cut} of {} imported", bytes.len());
        };
        let msg = err.to_string();
        assert!(msg.contains("`mlp_cut.onnx`"), "{msg}");
        assert!(
            matches!(
                err,
                ImportError::Malformed { .. } | ImportError::MissingValue { .. }
            ),
            "cut at {cut}: {msg}"
        );
    }
    let msg = load_bytes(
        "mlp_cut.onnx",
        &bytes[..bytes.len() / 2],
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn unknown_op_names_op_node_and_file() {
    let (err, msg) = load_err(&models().join("errors/unknown_op.onnx"));
    assert!(matches!(err, ImportError::Unsupported { .. }), "{msg}");
    assert!(msg.contains("unknown_op.onnx"), "{msg}");
    assert!(
        msg.contains("`Hardmax`") && msg.contains("`hardmax_0`"),
        "{msg}"
    );
    assert!(msg.contains("does not support"), "{msg}");
}

#[test]
fn misspelled_path_says_so() {
    let path = models().join("mpl/model.onnx");
    let (err, msg) = load_err(&path);
    assert!(matches!(err, ImportError::Io { .. }), "{msg}");
    assert!(
        msg.contains("mpl/model.onnx") && msg.contains("check the path"),
        "{msg}"
    );
}

#[test]
fn missing_initializer_names_the_value() {
    let (err, msg) = load_err(&models().join("errors/missing_input.onnx"));
    assert!(matches!(err, ImportError::MissingValue { .. }), "{msg}");
    assert!(
        msg.contains("`add_0`") && msg.contains("`w_missing`"),
        "{msg}"
    );
}

#[test]
fn cycle_is_reported_with_its_nodes() {
    let (err, msg) = load_err(&models().join("errors/cycle.onnx"));
    assert!(matches!(err, ImportError::Cycle { .. }), "{msg}");
    assert!(msg.contains("`relu_a`") && msg.contains("`add_b`"), "{msg}");
}

#[test]
fn symbolic_dims_need_a_value() {
    let path = models().join("errors/symbolic_dim.onnx");
    let (err, msg) = load_err(&path);
    assert!(matches!(err, ImportError::SymbolicDim { .. }), "{msg}");
    assert!(
        msg.contains("input `x`") && msg.contains("`batch`"),
        "{msg}"
    );

    let mut opts = ImportOptions::default();
    opts.dims.insert("batch".into(), 4);
    let g = load(&path, &opts).unwrap();
    assert_eq!(g.node(g.inputs[0]).ty.shape, vec![4, 32]);
    assert_eq!(g.node(g.outputs[0].1).ty.shape, vec![4, 32]);

    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![64, 32]);
    let g = load(&path, &opts).unwrap();
    assert_eq!(g.node(g.outputs[0].1).ty.shape, vec![64, 32]);
}

#[test]
fn unknown_extension_lists_formats() {
    let msg = load_bytes("model.txt", b"", &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`model.txt`") && msg.contains(".onnx") && msg.contains(".py"),
        "{msg}"
    );
}

#[test]
fn ttnn_program_errors_name_the_line() {
    let opts = ImportOptions::default();
    let unknown = "import ttnn\nx = ttnn.rand((32, 32))\ny = ttnn.frobnicate(x)\n";
    let msg = load_bytes("p.py", unknown.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("`p.py` line 3:") && msg.contains("`ttnn.frobnicate` is not supported"),
        "{msg}"
    );

    let syntax = "import ttnn\nx = ttnn.rand((32, 32)\n";
    let msg = load_bytes("p.py", syntax.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`p.py` line") && msg.contains("syntax error"),
        "{msg}"
    );

    let undefined = "import ttnn\n\ny = ttnn.exp(w)\n";
    let msg = load_bytes("p.py", undefined.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("`p.py` line 3:") && msg.contains("`w` is not defined"),
        "{msg}"
    );

    let shapes =
        "import ttnn\na = ttnn.rand((32, 64))\nb = ttnn.rand((32, 64))\nc = ttnn.matmul(a, b)\n";
    let msg = load_bytes("p.py", shapes.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("`p.py` line 4: ttnn.matmul") && msg.contains("do not multiply"),
        "{msg}"
    );

    let looped = "import ttnn\nx = ttnn.rand((32, 32))\nfor i in range(3):\n    x = ttnn.exp(x)\n";
    let msg = load_bytes("p.py", looped.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("`p.py` line 3:") && msg.contains("for loop"),
        "{msg}"
    );

    let nothing = "import ttnn\nx = ttnn.rand((32, 32))\n";
    let msg = load_bytes("p.py", nothing.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("computes nothing"), "{msg}");
}
