//! A PyTorch export with a symbolic sequence length: its shape subgraphs (Shape, Gather,
//! Unsqueeze, Concat, Cast) fold away once `seq` is bound, and the result matches onnxruntime.

use std::path::{Path, PathBuf};

use ttfuse::import::{load, ImportError, ImportOptions};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dynamic/transformer_seq")
}

fn with_seq(seq: usize) -> ImportOptions {
    let mut opts = ImportOptions::default();
    opts.dims.insert("seq".into(), seq);
    opts
}

#[test]
fn symbolic_sequence_needs_a_value() {
    let err = load(&dir().join("model.onnx"), &ImportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ImportError::SymbolicDim { dim, .. } if dim == "seq"),
        "{err}"
    );
}

#[test]
fn bound_sequence_folds_shape_ops_and_matches_onnxruntime() {
    let g = load(&dir().join("model.onnx"), &with_seq(64)).unwrap();
    ttfuse::graph::validate::validate(&g).unwrap();
    let ops: Vec<String> = g.dag.node_weights().map(|n| n.op.name()).collect();
    for folded in ["Shape", "Gather", "Concat", "Cast"] {
        assert!(!ops.iter().any(|o| o == folded), "{folded} left in {ops:?}");
    }
    let inputs = ttfuse::npy::read_dir(&dir().join("inputs")).unwrap();
    let want = ttfuse::npy::read_dir(&dir().join("outputs")).unwrap();
    let got = ttfuse::reference::run(&g, &inputs).unwrap();
    let (g_y, w_y) = (got["y"].to_f32(), want["y"].to_f32());
    assert_eq!(got["y"].shape(), want["y"].shape());
    let worst = g_y
        .iter()
        .zip(&w_y)
        .map(|(a, b)| (a - b).abs() / (1e-5 + 1e-4 * b.abs()))
        .fold(0.0, f32::max);
    assert!(worst <= 1.0, "off by {worst} tolerances");
}

#[test]
fn another_sequence_length_gives_other_shapes() {
    let g = load(&dir().join("model.onnx"), &with_seq(32)).unwrap();
    ttfuse::graph::validate::validate(&g).unwrap();
    assert_eq!(g.node(g.outputs[0].1).ty.shape, vec![1, 32, 128]);
    // The attention scores are [batch, heads, seq, seq].
    assert!(g
        .dag
        .node_weights()
        .any(|n| n.op.name() == "Softmax" && n.ty.shape == [1, 4, 32, 32]));
}
