//! The TTNN MLIR importer: every supported op's graph op and shape, the example programs in
//! models/ttnn_mlir/ against their numpy outputs, fused and unfused runs against the reference,
//! and errors naming the file, the line and the op.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ttfuse::graph::validate::validate;
use ttfuse::graph::{AttentionMask, DType, Graph, Op, TensorData};
use ttfuse::import::{load, load_bytes, ImportOptions};
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::{npy, pipeline, reference};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The graph's non-input ops in topological order.
fn compute_ops(g: &Graph) -> Vec<String> {
    g.topo_order()
        .into_iter()
        .map(|i| g.node(i).op.name())
        .filter(|o| o != "Input")
        .collect()
}

/// Imports `text` as `f.mlir`; an imported graph must pass the graph validator.
fn import(text: &str) -> Result<Graph, String> {
    let g = load_bytes("f.mlir", text.as_bytes(), &ImportOptions::default())
        .map_err(|e| e.to_string())?;
    if let Err(e) = validate(&g) {
        panic!("the imported graph is invalid: {e}\n{text}");
    }
    Ok(g)
}

fn import_err(text: &str) -> String {
    match import(text) {
        Ok(_) => panic!("the program imported, but should not have:\n{text}"),
        Err(e) => e,
    }
}

/// A function with arguments of the given types whose body is `stmt` (defining `%r`) then
/// `return %r`.
fn program(args: &[&str], stmt: &str, result: &str) -> String {
    let params: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, t)| format!("%arg{i}: {t}"))
        .collect();
    format!(
        "module {{\n  func.func @f({}) -> {result} {{\n    %dev = \"ttnn.get_device\"() <{{mesh_shape = #ttnn<mesh_shape 1x1>}}> : () -> !ttnn.device\n    {stmt}\n    return %r : {result}\n  }}\n}}\n",
        params.join(", ")
    )
}

/// `%r = "ttnn.<op>"(%arg0, ...) <{attrs}> : (args) -> result`.
fn op_stmt(op: &str, args: &[&str], attrs: &str, result: &str) -> String {
    let operands: Vec<String> = (0..args.len()).map(|i| format!("%arg{i}")).collect();
    let props = if attrs.is_empty() {
        String::new()
    } else {
        format!(" <{{{attrs}}}>")
    };
    format!(
        "%r = \"ttnn.{op}\"({}){props} : ({}) -> {result}",
        operands.join(", "),
        args.join(", ")
    )
}

/// One op case: (op, argument types, attributes, result type, expected graph ops, expected
/// result shape).
type Case<'a> = (
    String,
    Vec<&'a str>,
    &'a str,
    &'a str,
    Vec<&'a str>,
    Vec<usize>,
);

#[test]
fn every_supported_op_imports_with_its_graph_op_and_shape() {
    let m = "tensor<32x64xbf16>";
    let unary = [
        ("exp", "Exp"),
        ("log", "Log"),
        ("sqrt", "Sqrt"),
        ("rsqrt", "Rsqrt"),
        ("reciprocal", "Recip"),
        ("relu", "Relu"),
        ("gelu", "Gelu"),
        ("silu", "Silu"),
        ("sigmoid", "Sigmoid"),
        ("tanh", "Tanh"),
        ("abs", "Abs"),
        ("neg", "Neg"),
        ("floor", "Floor"),
        ("erf", "Erf"),
    ];
    let binary = [
        ("add", "Add"),
        ("multiply", "Mul"),
        ("subtract", "Sub"),
        ("divide", "Div"),
        ("maximum", "Max"),
        ("minimum", "Min"),
        ("pow", "Pow"),
    ];
    let mut cases: Vec<Case> = Vec::new();
    for (op, graph_op) in unary {
        cases.push((op.into(), vec![m], "", m, vec![graph_op], vec![32, 64]));
    }
    for (op, graph_op) in binary {
        // The second operand broadcasts along rows.
        let row = "tensor<1x64xbf16>";
        cases.push((op.into(), vec![m, row], "", m, vec![graph_op], vec![32, 64]));
    }
    let k = "tensor<64x128xbf16>";
    let out = "tensor<32x128xbf16>";
    cases.extend([
        (
            "matmul".into(),
            vec![m, k],
            "transpose_a = false, transpose_b = false",
            out,
            vec!["MatMul"],
            vec![32, 128],
        ),
        (
            "matmul".into(),
            vec![m, "tensor<128x64xbf16>"],
            "transpose_a = false, transpose_b = true",
            out,
            vec!["Transpose", "MatMul"],
            vec![32, 128],
        ),
        (
            "matmul".into(),
            vec!["tensor<64x32xbf16>", k],
            "transpose_a = true, transpose_b = false",
            out,
            vec!["Transpose", "MatMul"],
            vec![32, 128],
        ),
        (
            "linear".into(),
            vec![m, k, "tensor<1x128xbf16>"],
            "transpose_a = false, transpose_b = false",
            out,
            vec!["MatMul", "Add"],
            vec![32, 128],
        ),
        (
            "linear".into(),
            vec![m, "tensor<128x64xbf16>", "tensor<128xbf16>"],
            "transpose_a = false, transpose_b = true, activation = \"relu\"",
            out,
            vec!["Transpose", "MatMul", "Add", "Relu"],
            vec![32, 128],
        ),
        (
            "softmax".into(),
            vec![m],
            "dimension = -1 : si32",
            m,
            vec!["Softmax"],
            vec![32, 64],
        ),
        (
            "rms_norm".into(),
            vec![m, "tensor<64xbf16>"],
            "epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 1, 0>",
            m,
            vec!["RmsNorm"],
            vec![32, 64],
        ),
        (
            "layer_norm".into(),
            vec![m, "tensor<64xbf16>", "tensor<64xbf16>"],
            "epsilon = 1.000000e-05 : f32, operandSegmentSizes = array<i32: 1, 1, 1>",
            m,
            vec!["LayerNorm"],
            vec![32, 64],
        ),
        (
            "layer_norm".into(),
            vec![m],
            "epsilon = 1.000000e-05 : f32",
            m,
            vec!["Constant", "LayerNorm"],
            vec![32, 64],
        ),
        (
            "transpose".into(),
            vec![m],
            "dim0 = -2 : si32, dim1 = -1 : si32",
            "tensor<64x32xbf16>",
            vec!["Transpose"],
            vec![64, 32],
        ),
        (
            "permute".into(),
            vec!["tensor<2x32x64xbf16>"],
            "permutation = array<i64: 2, 0, 1>",
            "tensor<64x2x32xbf16>",
            vec!["Transpose"],
            vec![64, 2, 32],
        ),
        (
            "reshape".into(),
            vec![m],
            "shape = [1 : i32, 32 : i32, 2 : i32, 32 : i32]",
            "tensor<1x32x2x32xbf16>",
            vec!["Reshape"],
            vec![1, 32, 2, 32],
        ),
        (
            "concat".into(),
            vec![m, m, "tensor<32x32xbf16>"],
            "dim = 1 : si32",
            "tensor<32x160xbf16>",
            vec!["Concat"],
            vec![32, 160],
        ),
        (
            "sum".into(),
            vec![m],
            "dim_arg = [1 : i32], keep_dim = true",
            "tensor<32x1xbf16>",
            vec!["ReduceSum"],
            vec![32, 1],
        ),
        (
            "mean".into(),
            vec![m],
            "dim_arg = [0 : i32], keep_dim = false",
            "tensor<64xbf16>",
            vec!["ReduceMean"],
            vec![64],
        ),
        (
            "max".into(),
            vec![m],
            "dim_arg = [-1 : i32], keep_dim = true",
            "tensor<32x1xbf16>",
            vec!["ReduceMax"],
            vec![32, 1],
        ),
        (
            "min".into(),
            vec![m],
            "keep_dim = false",
            "tensor<bf16>",
            vec!["ReduceMin"],
            vec![],
        ),
        (
            "where".into(),
            vec!["tensor<32x64xi1>", m, "tensor<1x1xbf16>"],
            "",
            m,
            vec!["Where"],
            vec![32, 64],
        ),
        (
            "embedding".into(),
            vec!["tensor<1x32xui32>", "tensor<1000x64xbf16>"],
            "",
            "tensor<1x32x64xbf16>",
            vec!["Gather"],
            vec![1, 32, 64],
        ),
        (
            "typecast".into(),
            vec![m],
            "dtype = #ttcore.supportedDataTypes<f32>",
            "tensor<32x64xf32>",
            vec!["Cast"],
            vec![32, 64],
        ),
        (
            "conv2d".into(),
            vec![
                "tensor<1x1x200x8xbf16>",
                "tensor<16x8x3x3xbf16>",
                "tensor<1x1x1x16xbf16>",
            ],
            "batch_size = 2 : i32, dilation = array<i32: 1, 1>, groups = 1 : i32, in_channels = 8 : i32, input_height = 10 : i32, input_width = 10 : i32, kernel_size = array<i32: 3, 3>, out_channels = 16 : i32, padding = array<i32: 0, 0>, stride = array<i32: 2, 2>",
            // 10x10, 3x3 kernel, stride 2, no padding: 4x4 per image.
            "tensor<1x1x32x16xbf16>",
            vec!["Reshape", "Transpose", "Reshape", "Conv", "Transpose", "Reshape"],
            vec![1, 1, 32, 16],
        ),
        (
            "conv2d".into(),
            vec!["tensor<1x1x100x8xbf16>", "tensor<16x8x3x3xbf16>"],
            // [top, bottom, left, right]: 10 + 1 + 3 - 2 = 12 rows, 10 + 0 + 2 - 2 = 10 columns.
            "batch_size = 1 : i32, groups = 1 : i32, in_channels = 8 : i32, input_height = 10 : i32, input_width = 10 : i32, kernel_size = array<i32: 3, 3>, out_channels = 16 : i32, padding = array<i32: 1, 3, 0, 2>",
            "tensor<1x1x120x16xbf16>",
            vec!["Reshape", "Transpose", "Conv", "Transpose", "Reshape"],
            vec![1, 1, 120, 16],
        ),
        (
            // The keys are transposed for q . k^T; an explicit mask is added to the scores.
            "scaled_dot_product_attention".into(),
            vec![
                "tensor<1x2x64x32xbf16>",
                "tensor<1x2x96x32xbf16>",
                "tensor<1x2x96x32xbf16>",
                "tensor<1x1x64x96xbf16>",
            ],
            "is_causal = false, scale = 0.25 : f32",
            "tensor<1x2x64x32xbf16>",
            vec!["Transpose", "Attention"],
            vec![1, 2, 64, 32],
        ),
    ]);
    for (op, args, attrs, result, want_ops, want_shape) in &cases {
        let text = program(args, &op_stmt(op, args, attrs, result), result);
        let g = import(&text).unwrap_or_else(|e| panic!("ttnn.{op}: {e}\n{text}"));
        assert_eq!(compute_ops(&g), *want_ops, "ttnn.{op} ({attrs})");
        let out = g.node(g.outputs[0].1);
        assert_eq!(out.ty.shape, *want_shape, "ttnn.{op} ({attrs})");
    }
    // Every op in the importer's table is covered here, or (the constants) in the next test.
    let covered: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    for op in ttfuse::import::ttnn_mlir::ops::table().keys() {
        assert!(
            covered.contains(op) || ["full", "ones", "zeros"].contains(op),
            "ttnn.{op} is not covered"
        );
    }
}

#[test]
fn constants_from_full_ones_and_zeros_have_their_values() {
    let x = "tensor<2x4xf32>";
    let text = format!(
        "func.func @f(%arg0: {x}) -> {x} {{\n  %0 = \"ttnn.get_device\"() : () -> !ttnn.device\n  %1 = \"ttnn.full\"(%0) <{{fill_value = 2.500000e-01 : f32, shape = #ttnn.shape<1x4>}}> : (!ttnn.device) -> tensor<1x4xf32>\n  %2 = \"ttnn.ones\"(%0) <{{shape = #ttnn.shape<2x1>}}> : (!ttnn.device) -> tensor<2x1xf32>\n  %3 = \"ttnn.zeros\"(%0) <{{shape = #ttnn.shape<2x4>}}> : (!ttnn.device) -> {x}\n  %4 = \"ttnn.multiply\"(%arg0, %1) : ({x}, tensor<1x4xf32>) -> {x}\n  %5 = \"ttnn.add\"(%4, %2) : ({x}, tensor<2x1xf32>) -> {x}\n  %6 = \"ttnn.maximum\"(%5, %3) : ({x}, {x}) -> {x}\n  return %6 : {x}\n}}\n"
    );
    let g = import(&text).unwrap();
    let xs = [-8.0f32, -4.0, -2.0, 0.0, 1.0, 2.0, 4.0, 8.0];
    let inputs = BTreeMap::from([("arg0".to_string(), TensorData::f32(vec![2, 4], xs.to_vec()))]);
    let got = reference::run(&g, &inputs).unwrap()["out0"].to_f32();
    let want: Vec<f32> = xs.iter().map(|v| (v * 0.25 + 1.0).max(0.0)).collect();
    assert_eq!(got, want);
}

/// Imports `models/ttnn_mlir/<name>.mlir`, runs the reference interpreter on the stored inputs
/// and checks it against the stored numpy outputs.
fn check_against_numpy(name: &str) -> Graph {
    let dir = models_dir().join("ttnn_mlir");
    let g = load(&dir.join(format!("{name}.mlir")), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    check_graph_against_numpy(name, g)
}

/// Checks graph `g` against the stored numpy outputs of `models/ttnn_mlir/<name>`.
fn check_graph_against_numpy(name: &str, g: Graph) -> Graph {
    let dir = models_dir().join("ttnn_mlir");
    validate(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inputs = npy::read_dir(&dir.join(name).join("inputs")).unwrap();
    let want = npy::read_dir(&dir.join(name).join("outputs")).unwrap();
    let got = reference::run(&g, &inputs).unwrap();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (out, w) in &want {
        let (g_vals, w_vals) = (got[out].to_f32(), w.to_f32());
        assert_eq!(got[out].shape(), w.shape(), "{name}: {out}");
        let scale = w_vals.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = g_vals
            .iter()
            .zip(&w_vals)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-4 * scale.max(1.0),
            "{name}: {out} differs from numpy by {err} (scale {scale})"
        );
    }
    g
}

#[test]
fn mlp_program_matches_numpy() {
    let g = check_against_numpy("mlp");
    let names: Vec<&str> = g.inputs.iter().map(|&i| g.node(i).name.as_str()).collect();
    assert_eq!(names, ["x", "w1", "b1", "w2", "b2"]);
    assert!(g.inputs.iter().all(|&i| g.node(i).ty.dtype == DType::BF16));
    // Layout, device and deallocate ops leave no trace; linear is matmul + bias.
    assert_eq!(
        compute_ops(&g),
        ["MatMul", "Add", "Relu", "Transpose", "MatMul", "Add"]
    );
    assert_eq!(g.node(g.outputs[0].1).ty.shape, [64, 128]);
}

fn op_counts(g: &Graph) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for op in compute_ops(g) {
        *counts.entry(op).or_insert(0) += 1;
    }
    counts
}

#[test]
fn attention_program_matches_numpy() {
    let g = check_against_numpy("attention");
    let counts = op_counts(&g);
    // Three projections, q.k^T (k transposed), p.v and the output projection; the input
    // norm and the QK-norms; the `ttnn.full` scale and the QK-norms' unit weights are constants.
    let want = [
        ("Add", 1),
        ("Constant", 3),
        ("MatMul", 6),
        ("Mul", 1),
        ("RmsNorm", 3),
        ("Softmax", 1),
        ("Transpose", 1),
    ];
    assert_eq!(
        counts,
        want.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    );
}

#[test]
fn two_head_attention_program_matches_numpy() {
    let g = check_against_numpy("mha");
    let counts = op_counts(&g);
    assert_eq!(counts["MatMul"], 6);
    // Three head splits (reshape + permute), k transposed, one head merge.
    assert_eq!(counts["Reshape"], 4);
    assert_eq!(counts["Transpose"], 5);
    let softmax = g
        .dag
        .node_weights()
        .find(|n| n.op.name() == "Softmax")
        .expect("a Softmax node");
    assert_eq!(softmax.ty.shape, [2, 64, 64]);
    assert_eq!(softmax.op, Op::Softmax { axis: 2 });
}

#[test]
fn conv_program_matches_numpy() {
    let g = check_against_numpy("conv");
    let conv = g
        .dag
        .node_weights()
        .find(|n| matches!(n.op, Op::Conv { .. }))
        .expect("a Conv node");
    assert_eq!(conv.ty.shape, [2, 32, 8, 8]);
    assert_eq!(
        conv.op,
        Op::Conv {
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1, 1, 1, 1],
            dilation: [1, 1],
            groups: 1,
            relu: false,
            pixels: None,
        }
    );
}

/// The conv example with its ReLU fused by `conv2d_config`'s `activation`, written as `spelling`
/// (the separate `ttnn.relu` removed).
fn conv_with_fused_relu(spelling: &str) -> String {
    let text = std::fs::read_to_string(models_dir().join("ttnn_mlir/conv.mlir")).unwrap();
    let config = format!(
        "conv2d_config = #ttnn.conv2d_config<weights_dtype = bf16, activation = {spelling}, deallocate_activation = false>,\n          dtype"
    );
    let relu =
        "    %2 = \"ttnn.relu\"(%1) : (tensor<1x1x128x32xbf16>) -> tensor<1x1x128x32xbf16>\n";
    assert!(text.contains(relu), "conv.mlir ends in its ReLU");
    text.replacen("dtype", &config, 1)
        .replace(relu, "")
        .replace("return %2", "return %1")
}

#[test]
fn conv2d_config_activation_relu_is_a_fused_relu() {
    for spelling in [
        "<op_type = relu>",
        "#ttnn.unary_with_param<op_type = relu>",
        "\"relu\"",
    ] {
        let g = import(&conv_with_fused_relu(spelling)).unwrap();
        assert!(!compute_ops(&g).contains(&"Relu".to_string()), "{spelling}");
        let g = check_graph_against_numpy("conv", g);
        let conv = g.dag.node_weights().find(|n| n.op.name() == "ConvRelu");
        assert!(conv.is_some(), "{spelling}: {:?}", compute_ops(&g));
    }
    // Fused and unfused, the program computes numpy's output.
    let path = std::env::temp_dir().join(format!("ttfuse-conv-relu-{}.mlir", std::process::id()));
    std::fs::write(&path, conv_with_fused_relu("<op_type = relu>")).unwrap();
    let model = pipeline::load_model(Some(&path), &ImportOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let dir = models_dir().join("ttnn_mlir/conv");
    let inputs = npy::read_dir(&dir.join("inputs")).unwrap();
    let want = npy::read_dir(&dir.join("outputs")).unwrap();
    both_programs_agree("conv with its ReLU fused", &model, &inputs, &want);
    let none = import(&conv_with_fused_relu("\"\"")).unwrap();
    assert!(compute_ops(&none).contains(&"Conv".to_string()));
    let msg = import_err(&conv_with_fused_relu("<op_type = silu>"));
    assert!(
        msg.contains("ttnn.conv2d") && msg.contains("activation `silu` is not supported"),
        "{msg}"
    );
}

#[test]
fn sdpa_program_matches_numpy() {
    let g = check_against_numpy("sdpa");
    let attention = g
        .dag
        .node_weights()
        .find(|n| matches!(n.op, Op::Attention { .. }))
        .expect("an Attention node");
    // TTNN's default scale, 1/sqrt(head dim); is_causal as an additive mask.
    assert_eq!(
        attention.op,
        Op::Attention {
            scale: 1.0 / 32f32.sqrt(),
            mask: AttentionMask::Add
        }
    );
}

#[test]
fn attention_that_ttfuse_cannot_express_is_an_error() {
    for (q, kv, want) in [
        (
            "tensor<1x4x64x32xbf16>",
            "tensor<1x2x64x32xbf16>",
            "grouped-query attention (4 query heads, 2 key heads)",
        ),
        (
            "tensor<1x2x64x32xbf16>",
            "tensor<1x2x96x32xbf16>",
            "is_causal needs as many queries as keys, got 64 and 96",
        ),
    ] {
        let args = [q, kv, kv];
        let stmt = op_stmt("scaled_dot_product_attention", &args, "is_causal = true", q);
        let err = import_err(&program(&args, &stmt, q));
        assert!(err.contains(want), "{err}");
    }
}

/// Compiles `model` and checks that its fused and unfused programs, run on `inputs`, agree with
/// `expected` (PCC >= 0.999); returns the compilation.
fn both_programs_agree(
    name: &str,
    model: &pipeline::Model,
    inputs: &BTreeMap<String, TensorData>,
    expected: &BTreeMap<String, TensorData>,
) -> pipeline::Compilation {
    let device = Device::load("wormhole_b0").unwrap();
    let compilation = pipeline::compile(model, &device, &OptimizeOptions::default()).unwrap();
    for (label, compiled) in [
        ("fused", &compilation.fused),
        ("unfused", &compilation.unfused),
    ] {
        let run =
            pipeline::execute(compiled, &device, inputs, &GraphHostOps, Dispatch::Traced).unwrap();
        let (_, overall) = pipeline::agreement(expected, &run.outputs).unwrap();
        assert!(
            overall.pcc >= 0.999,
            "{name}: {label} PCC {} < 0.999",
            overall.pcc
        );
    }
    compilation
}

#[test]
fn fused_programs_of_the_examples_match_the_reference() {
    for name in ["mlp", "attention", "sdpa"] {
        let path = models_dir().join("ttnn_mlir").join(format!("{name}.mlir"));
        let model = pipeline::load_model(Some(&path), &ImportOptions::default()).unwrap();
        let inputs = npy::read_dir(&path.with_extension("").join("inputs")).unwrap();
        let expected = pipeline::reference_outputs(&model.graph, &inputs).unwrap();
        let compilation = both_programs_agree(name, &model, &inputs, &expected);
        assert!(
            compilation.fused.program.kernels.len() < compilation.unfused.program.kernels.len(),
            "{name}: fusion should need fewer kernels"
        );
    }
}

#[test]
fn compare_command_runs_on_the_example_programs() {
    for name in ["mlp", "attention"] {
        let path = models_dir().join(format!("ttnn_mlir/{name}.mlir"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ttfuse"))
            .args(["compare", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "compare {name} failed: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let model = v["model"].as_str().unwrap_or_default();
        assert!(model.ends_with(&format!("{name}.mlir")), "model {model}");
        // The top-level agreement is the fused program's against the reference.
        let pcc = v["pcc"].as_f64().unwrap_or_else(|| panic!("no pcc in {v}"));
        assert!(pcc >= 0.999, "{name}: fused PCC {pcc}");
        let kernels = |side: &str| v[side]["kernels"].as_u64().unwrap_or(0);
        assert!(
            0 < kernels("fused") && kernels("fused") < kernels("unfused"),
            "{name}: {v}"
        );
    }
}

#[test]
fn attention_function_imports_with_named_inputs() {
    let path = models_dir().join("attention_ttnn/model.mlir");
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
    assert_eq!(
        compute_ops(&g),
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

#[test]
fn errors_name_the_file_the_line_and_the_op() {
    let ty = "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x32xf32>";
    let ret = "    return %0 : tensor<32x32xf32>\n";

    let unknown = func(&format!(
        "    %0 = \"ttnn.frob\"(%arg0, %arg1) : {ty}\n{ret}"
    ));
    let msg = import_err(&unknown);
    assert!(
        msg.starts_with("`f.mlir` line 3:")
            && msg.contains("`ttnn.frob` is not supported")
            && msg.contains("supported ops: ttnn.abs, ttnn.add")
            && msg.contains("ttnn.to_layout"),
        "{msg}"
    );

    let wrong_shape = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {}\n{ret}",
        "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x64xf32>"
    ));
    let msg = import_err(&wrong_shape);
    assert!(
        msg.contains("line 3")
            && msg.contains("ttnn.matmul")
            && msg.contains("declared [32, 64], shape inference gives [32, 32]"),
        "{msg}"
    );

    let wrong_dtype = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {}\n{ret}",
        "(tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<32x32xbf16>"
    ));
    let msg = import_err(&wrong_dtype);
    assert!(
        msg.contains("line 3") && msg.contains("declared bf16, shape inference gives f32"),
        "{msg}"
    );

    let arity = func(&format!(
        "    %0 = \"ttnn.add\"(%arg0, %arg1, %arg1) : {ty}\n{ret}"
    ));
    let msg = import_err(&arity);
    assert!(
        msg.contains("line 3") && msg.contains("`ttnn.add` takes 2 tensor operand(s), got 3"),
        "{msg}"
    );
    let arity = func(&format!("    %0 = \"ttnn.linear\"(%arg0) : {ty}\n{ret}"));
    assert!(import_err(&arity).contains("`ttnn.linear` takes 2 or 3 tensor operand(s), got 1"));

    let undefined = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %x) : {ty}\n{ret}"
    ));
    let msg = import_err(&undefined);
    assert!(
        msg.contains("line 3") && msg.contains("`ttnn.matmul` operands: value `%x` is not defined"),
        "{msg}"
    );

    let custom = func(&format!("    %0 = ttnn.empty() : tensor<32x32xf32>\n{ret}"));
    let msg = import_err(&custom);
    assert!(
        msg.contains("line 3") && msg.contains("generic op form"),
        "{msg}"
    );

    let malformed = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) -> tensor<32x32xf32>\n{ret}"
    ));
    let msg = import_err(&malformed);
    assert!(
        msg.contains("line 3") && msg.contains("`ttnn.matmul`: expected `:`"),
        "{msg}"
    );

    let twice = func(&format!(
        "    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {ty}\n    %0 = \"ttnn.relu\"(%0) : (tensor<32x32xf32>) -> tensor<32x32xf32>\n{ret}"
    ));
    let msg = import_err(&twice);
    assert!(
        msg.contains("line 4") && msg.contains("`ttnn.relu` defines `%0` a second time"),
        "{msg}"
    );

    let missing_attr = func(
        "    %0 = \"ttnn.softmax\"(%arg0) : (tensor<32x64xf32>) -> tensor<32x64xf32>\n    return %0 : tensor<32x64xf32>\n",
    );
    let msg = import_err(&missing_attr);
    assert!(
        msg.contains("line 3")
            && msg.contains("ttnn.softmax")
            && msg.contains("`dimension` is required"),
        "{msg}"
    );

    let reshaping_layout = func(
        "    %0 = \"ttnn.to_layout\"(%arg0) : (tensor<32x64xf32>) -> tensor<64x32xf32>\n    return %0 : tensor<64x32xf32>\n",
    );
    let msg = import_err(&reshaping_layout);
    assert!(
        msg.contains("line 3") && msg.contains("ttnn.to_layout changes the shape"),
        "{msg}"
    );

    let no_return = func(&format!("    %0 = \"ttnn.matmul\"(%arg0, %arg1) : {ty}\n"));
    assert!(import_err(&no_return).contains("without a `return`"));

    assert!(import_err("module {}\n").contains("no public func.func"));

    let bad_type = "func.func @f(%arg0: tensor<?x4xf32>) -> tensor<4xf32> {\n  return %arg0 : tensor<4xf32>\n}\n";
    let msg = import_err(bad_type);
    assert!(
        msg.contains("line 1") && msg.contains("dimension `?`"),
        "{msg}"
    );
}

#[test]
fn conv2d_errors_explain_the_expected_layout() {
    let conv = |input: &str| {
        let args = [input, "tensor<16x8x3x3xbf16>"];
        let attrs = "batch_size = 1 : i32, groups = 1 : i32, in_channels = 8 : i32, input_height = 10 : i32, input_width = 10 : i32, kernel_size = array<i32: 3, 3>, out_channels = 16 : i32, padding = array<i32: 1, 1>, stride = array<i32: 1, 1>, dilation = array<i32: 1, 1>";
        let result = "tensor<1x1x100x16xbf16>";
        program(&args, &op_stmt("conv2d", &args, attrs, result), result)
    };
    assert!(import(&conv("tensor<1x1x100x8xbf16>")).is_ok());
    let msg = import_err(&conv("tensor<1x8x10x10xbf16>"));
    assert!(
        msg.contains("line 4")
            && msg.contains("ttnn.conv2d")
            && msg.contains("not flattened NHWC [1, 1, N*H*W, C] = [1, 1, 100, 8]"),
        "{msg}"
    );
}

#[test]
fn multi_line_ops_layouts_and_private_helpers_are_read() {
    let layout = "#ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x2x!ttcore.tile<32x32, f32>, #dram>, <interleaved>>";
    let text = format!(
        r#"#dram = #ttnn.buffer_type<dram>
module attributes {{ttcore.system_desc = #system_desc}} {{
  func.func private @forward_const_eval_0(%arg0: tensor<32x64xf32>) -> tensor<32x64xf32> {{
    return %arg0 : tensor<32x64xf32>
  }}
  func.func @forward(%arg0: tensor<32x64xf32, {layout}>,
                     %arg1: tensor<64x32xf32, {layout}>, %device: !ttnn.device) -> tensor<32x32xf32> {{
    %0 = "ttnn.matmul"(%arg0, %arg1)
        <{{
          transpose_a = false,
          transpose_b = false
        }}> : (tensor<32x64xf32, {layout}>, tensor<64x32xf32, {layout}>)
        -> tensor<32x32xf32> loc("mm")
    %1 = "ttnn.to_layout"(%0) <{{dtype = #ttcore.supportedDataTypes<bf16>, layout = #ttnn.layout<tile>}}> : (tensor<32x32xf32>) -> tensor<32x32xbf16>
    %2 = "ttnn.frob"(%1) : (tensor<32x32xbf16>) -> tensor<32x32xbf16>
    return %1 : tensor<32x32xbf16>
  }}
}}
"#
    );
    // The unsupported op on line 15 is reported with the statement's first line.
    let msg = import_err(&text);
    assert!(msg.starts_with("`f.mlir` line 15:"), "{msg}");
    let g = import(&text.replace(
        "    %2 = \"ttnn.frob\"(%1) : (tensor<32x32xbf16>) -> tensor<32x32xbf16>\n",
        "",
    ))
    .unwrap();
    // The entry is @forward, not the private helper; a device argument is no graph input; the
    // dtype-changing to_layout is a Cast.
    assert_eq!(compute_ops(&g), ["MatMul", "Cast"]);
    assert_eq!(g.node(g.outputs[0].1).ty.dtype, DType::BF16);
    assert_eq!(g.inputs.len(), 2);
    assert_eq!(g.node(g.inputs[1]).name, "arg1");
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

    // A dynamic dimension needs the input's shape.
    let dynamic = "func.func @f(%arg0: tensor<?x4xf32>) -> tensor<?x4xf32> {\n  %0 = \"ttnn.relu\"(%arg0) : (tensor<?x4xf32>) -> tensor<8x4xf32>\n  return %0 : tensor<8x4xf32>\n}\n";
    let msg = import_err(dynamic);
    assert!(
        msg.contains("line 1") && msg.contains("give the input's shape"),
        "{msg}"
    );
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("arg0".into(), vec![8, 4]);
    let g = load_bytes("f.mlir", dynamic.as_bytes(), &opts).unwrap();
    assert_eq!(g.node(g.outputs[0].1).ty.shape, [8, 4]);
}

proptest::proptest! {
    /// Truncated, spliced or garbled programs give an error or a graph, never a panic.
    #[test]
    fn garbled_programs_never_panic(cut in 0usize..4000, splice in "[%\"<>(){}\\[\\]:,=x0-9a-z# \n-]{0,40}") {
        let text = std::fs::read_to_string(models_dir().join("ttnn_mlir/attention.mlir")).unwrap();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let garbled = format!("{}{splice}{}", &text[..at], &text[at..]);
        let _ = import(&garbled);
        let _ = import(&text[..at]);
    }
}

#[test]
fn tt_mlir_module_wrappers_system_desc_and_locations_are_skipped() {
    let text = r##"#dram = #ttnn.buffer_type<dram>
#loc = loc("model.py":3:0)
#system_desc = #ttcore.system_desc<[{role = host, target_triple = "x86_64-pc-linux"}], [{arch = <wormhole_b0>, grid = 8x8, coord_translation_offsets = 18x18, l1_size = 1499136, num_dram_channels = 12, supported_data_types = [<f32>, <bf16>], supported_tile_sizes = [ 4x16,  32x32], num_cbs = 32}], [0], [3 : i32], [ 0x0x0x0]>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x1x!ttcore.tile<32x32, f32>, #dram>, <interleaved>>
module @SyncTensorsGraph.5 attributes {ttcore.system_desc = #system_desc} {
  ttcore.device_module {
    builtin.module @SyncTensorsGraph.5 attributes {ttcore.system_desc = #system_desc} {
      ttcore.device @default_device = <workerGrid = #ttcore.grid<8x8, (d0, d1) -> (0, d0, d1)>, l1Map = (d0, d1, d2)[s0] -> (0, d0 floordiv s0, d1 floordiv s0, d2), meshShape = 1x1, chipIds = [0]>
      func.func @main(%arg0: tensor<32x32xf32, #ttnn_layout> {ttcore.argument_type = #ttcore.argument_type<input>, ttir.name = "a"} loc("a"), %arg1: tensor<32x32xf32, #ttnn_layout> {ttcore.argument_type = #ttcore.argument_type<parameter>, ttir.name = "b"} loc("b")) -> (tensor<32x32xf32, #ttnn_layout> {ttcore.shard_status = #ttcore.shard_status<unsharded>}) attributes {tt.function_type = "forward_device"} {
        %0 = "ttnn.get_device"() <{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device loc(#loc)
        %1 = "ttnn.subtract"(%arg0, %arg1) <{dtype = #ttcore.supportedDataTypes<f32>}> : (tensor<32x32xf32, #ttnn_layout>, tensor<32x32xf32, #ttnn_layout>) -> tensor<32x32xf32, #ttnn_layout> loc(#loc2)
        "ttnn.deallocate"(%arg1) <{force = false}> : (tensor<32x32xf32, #ttnn_layout>) -> () loc(#loc2)
        return %1 : tensor<32x32xf32, #ttnn_layout> loc(#loc)
      } loc(#loc)
    } loc(#loc)
  } loc(#loc)
} loc(#loc)
#loc2 = loc("sub")
"##;
    let g = import(text).unwrap();
    let names: Vec<&str> = g.inputs.iter().map(|&i| g.node(i).name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(compute_ops(&g), ["Sub"]);
    let a: Vec<f32> = (0..1024).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..1024).map(|i| (i % 7) as f32).collect();
    let inputs = BTreeMap::from([
        ("a".to_string(), TensorData::f32(vec![32, 32], a.clone())),
        ("b".to_string(), TensorData::f32(vec![32, 32], b.clone())),
    ]);
    let got = reference::run(&g, &inputs).unwrap()["out0"].to_f32();
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert_eq!(got, want);
}
