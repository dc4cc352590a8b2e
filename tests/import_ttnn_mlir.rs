//! The TTNN MLIR importer: structure of the example function and errors naming the line.

use std::path::Path;

use ttfuse::graph::DType;
use ttfuse::import::{load, load_bytes, ImportOptions};

#[test]
fn attention_function_imports_with_named_inputs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/attention_ttnn/model.mlir");
    let g = load(&path, &ImportOptions::default()).unwrap();
    let inputs: Vec<(&str, &[usize])> = g
        .inputs
        .iter()
        .map(|&i| (g.node(i).name.as_str(), g.node(i).ty.shape.as_slice()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("q", &[64, 64][..]),
            ("k", &[64, 64][..]),
            ("v", &[64, 64][..]),
            ("scale", &[1, 1][..])
        ]
    );
    assert!(g.inputs.iter().all(|&i| g.node(i).ty.dtype == DType::BF16));
    let ops: Vec<String> = g
        .topo_order()
        .into_iter()
        .map(|i| g.node(i).op.name())
        .collect();
    let compute: Vec<&str> = ops
        .iter()
        .map(String::as_str)
        .filter(|o| *o != "Input")
        .collect();
    assert_eq!(
        compute,
        [
            "Transpose",
            "MatMul",
            "Mul",
            "Softmax",
            "MatMul",
            "Add",
            "Relu"
        ]
    );
    assert_eq!(g.outputs.len(), 1);
    assert_eq!(g.outputs[0].0, "out0");
}

fn func(body: &str) -> String {
    format!(
        "module {{\n  func.func @f(%arg0: tensor<32x64xf32>, %arg1: tensor<64x32xf32>) -> tensor<32x32xf32> {{\n{body}  }}\n}}\n"
    )
}

fn import_err(text: &str) -> String {
    load_bytes("f.mlir", text.as_bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_line() {
    let ty = "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x32xf32>";
    let unknown = func(&format!(
        "    %0 = \"ttnn.frob\"(%arg0, %arg1) : {ty}\n    return %0 : tensor<32x32xf32>\n"
    ));
    let msg = import_err(&unknown);
    assert!(
        msg.starts_with("`f.mlir` line 3:") && msg.contains("`ttnn.frob` is not supported"),
        "{msg}"
    );

    let wrong = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {}\n    return %0 : tensor<32x32xf32>\n",
        "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x64xf32>"
    ));
    let msg = import_err(&wrong);
    assert!(
        msg.contains("line 3") && msg.contains("declared [32, 64], shape inference gives [32, 32]"),
        "{msg}"
    );

    let undefined = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %x) : {ty}\n    return %0 : tensor<32x32xf32>\n"
    ));
    assert!(import_err(&undefined).contains("value `%x` is not defined"));

    let custom =
        func("    %0 = ttnn.empty() : tensor<32x32xf32>\n    return %0 : tensor<32x32xf32>\n");
    let msg = import_err(&custom);
    assert!(
        msg.contains("line 3") && msg.contains("generic op form"),
        "{msg}"
    );

    let no_return = func(&format!("    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {ty}\n"));
    assert!(import_err(&no_return).contains("without a `return`"));

    assert!(import_err("module {}\n").contains("no func.func"));
}

#[test]
fn input_shapes_override_argument_types() {
    let ty = "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x32xf32>";
    let text = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {ty}\n    return %0 : tensor<32x32xf32>\n"
    ));
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("arg0".into(), vec![64, 64]);
    // The declared result no longer fits the new input shape, and the importer says so.
    let msg = load_bytes("f.mlir", text.as_bytes(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("shape inference gives [64, 32]"), "{msg}");
}
