//! The TTNN Python importer: graph structure of the guide's key use case, and programs using
//! operators, functions and shape options, checked against values computed here by hand.

use std::collections::BTreeMap;
use std::path::Path;

use ttfuse::graph::{DType, Graph, TensorData};
use ttfuse::import::{load, load_bytes, ImportOptions};

fn op_names(g: &Graph) -> Vec<String> {
    g.topo_order()
        .into_iter()
        .map(|i| g.node(i).op.name())
        .collect()
}

#[test]
fn key_use_case_is_exp_add_relu() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/key_use_case/program.py");
    let g = load(&path, &ImportOptions::default()).unwrap();
    let inputs: Vec<(&str, &[usize], DType)> = g
        .inputs
        .iter()
        .map(|&i| {
            (
                g.node(i).name.as_str(),
                g.node(i).ty.shape.as_slice(),
                g.node(i).ty.dtype,
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [
            ("input", &[64, 64][..], DType::BF16),
            ("bias", &[64, 64][..], DType::BF16)
        ]
    );
    assert_eq!(op_names(&g), ["Input", "Input", "Exp", "Add", "Relu"]);
    assert_eq!(
        g.outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["z"]
    );
    assert_eq!(g.node(g.outputs[0].1).name, "z");
}

#[test]
fn operators_scalars_and_unused_results_become_outputs() {
    let program = "\
import ttnn, torch
n = 32
a = ttnn.from_torch(torch.randn(n, 2 * n), dtype=ttnn.float32)
b = ttnn.from_torch(torch.randn((2 * n, n)))
c = a @ b * 0.5
d = ttnn.softmax(c, dim=-1)
e = ttnn.sum(d, dim=1, keepdim=True)
t = ttnn.transpose(c, 0, 1)
";
    let g = load_bytes("ops.py", program.as_bytes(), &ImportOptions::default()).unwrap();
    // d is consumed by the sum; e and t are never used, so they are the outputs, in order.
    assert_eq!(
        g.outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["e", "t"]
    );
    assert_eq!(g.node(g.outputs[0].1).ty.shape, vec![32, 1]);
    assert_eq!(g.node(g.outputs[1].1).ty.shape, vec![32, 32]);

    // Run it: every softmax row sums to one, so e is all ones; t is c transposed.
    let a: Vec<f32> = (0..32 * 64)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
        .collect();
    let b: Vec<f32> = (0..64 * 32)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let inputs = BTreeMap::from([
        ("a".to_string(), TensorData::f32(vec![32, 64], a.clone())),
        ("b".to_string(), TensorData::f32(vec![64, 32], b.clone())),
    ]);
    let out = ttfuse::reference::run(&g, &inputs).unwrap();
    assert!(out["e"].to_f32().iter().all(|v| (v - 1.0).abs() < 1e-5));
    let t = out["t"].to_f32();
    for (i, j) in [(0, 0), (3, 17), (31, 31), (10, 2)] {
        let c_ij: f32 = (0..64).map(|k| a[i * 64 + k] * b[k * 32 + j]).sum::<f32>() * 0.5;
        assert!((t[j * 32 + i] - c_ij).abs() < 1e-4, "c[{i},{j}]");
    }
}

#[test]
fn lone_function_takes_inputs_from_options() {
    let program = "\
import ttnn

def block(x, w):
    h = ttnn.linear(x, w, activation=\"relu\")
    return ttnn.multiply(h, 2.0)
";
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![32, 64]);
    opts.input_shapes.insert("w".into(), vec![64, 32]);
    let g = load_bytes("fn.py", program.as_bytes(), &opts).unwrap();
    // The returned value has no variable name: the output is named after the function.
    assert_eq!(
        op_names(&g),
        ["Input", "Input", "MatMul", "Relu", "Constant", "Mul"]
    );
    assert_eq!(
        g.outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["block"]
    );

    let missing = load_bytes("fn.py", program.as_bytes(), &ImportOptions::default()).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("parameter `x` of `block` needs a shape"),
        "{missing}"
    );
}

#[test]
fn main_guard_and_shape_options() {
    let program = "\
import ttnn

def main():
    x = ttnn.rand((64, 64))
    y = ttnn.relu(ttnn.neg(x))
    ttnn.close_device(None)

if __name__ == \"__main__\":
    main()
";
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![32, 96]);
    let g = load_bytes("main.py", program.as_bytes(), &opts).unwrap();
    assert_eq!(g.node(g.inputs[0]).ty.shape, vec![32, 96]);
    assert_eq!(op_names(&g), ["Input", "Neg", "Relu"]);
    assert_eq!(g.outputs[0].0, "y");
}

#[test]
fn bare_guide_snippet_takes_free_names_as_inputs() {
    let program = "x = ttnn.exp(input)\ny = ttnn.add(x, bias)\nz = ttnn.relu(y)\n";
    let err = load_bytes("snippet.py", program.as_bytes(), &ImportOptions::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("`snippet.py` line 1:")
            && err.to_string().contains("`input` is not defined"),
        "{err}"
    );

    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("input".into(), vec![32, 64]);
    opts.input_shapes.insert("bias".into(), vec![1, 64]);
    let g = load_bytes("snippet.py", program.as_bytes(), &opts).unwrap();
    let names: Vec<&str> = g.inputs.iter().map(|&i| g.node(i).name.as_str()).collect();
    assert_eq!(names, ["input", "bias"]);
    assert_eq!(g.outputs[0].0, "z");
    assert_eq!(g.node(g.outputs[0].1).ty.shape, vec![32, 64]);
    // relu(exp(input) + bias), with the bias row broadcast over the rows.
    let input: Vec<f32> = (0..32 * 64).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect();
    let bias: Vec<f32> = (0..64).map(|j| -(j as f32) / 16.0).collect();
    let inputs = BTreeMap::from([
        (
            "input".to_string(),
            TensorData::f32(vec![32, 64], input.clone()),
        ),
        (
            "bias".to_string(),
            TensorData::f32(vec![1, 64], bias.clone()),
        ),
    ]);
    let z = ttfuse::reference::run(&g, &inputs).unwrap()["z"].to_f32();
    for (k, v) in z.iter().enumerate() {
        assert_eq!(*v, (input[k].exp() + bias[k % 64]).max(0.0));
    }
}

#[test]
fn transformer_attention_matches_the_numpy_values_of_the_mlir_example() {
    // The TTNN-dialect example models/ttnn_mlir/sdpa.mlir as a Python program: TTNN's
    // defaults (is_causal=True, scale 1/sqrt(head dim)), then the output times 2.
    let program = "\
import ttnn, torch
q = ttnn.from_torch(torch.randn(1, 2, 64, 32), dtype=ttnn.bfloat16)
k = ttnn.from_torch(torch.randn(1, 2, 64, 32), dtype=ttnn.bfloat16)
v = ttnn.from_torch(torch.randn(1, 2, 64, 32), dtype=ttnn.bfloat16)
o = ttnn.transformer.scaled_dot_product_attention(q, k, v)
y = ttnn.multiply(o, 2.0)
";
    let g = load_bytes("sdpa.py", program.as_bytes(), &ImportOptions::default()).unwrap();
    assert!(
        op_names(&g).contains(&"Attention".to_string()),
        "{:?}",
        op_names(&g)
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ttnn_mlir/sdpa");
    let inputs = ttfuse::npy::read_dir(&dir.join("inputs")).unwrap();
    let want = ttfuse::npy::read_dir(&dir.join("outputs")).unwrap()["out0"].to_f32();
    let got = ttfuse::reference::run(&g, &inputs).unwrap()["y"].to_f32();
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "differs from numpy by {err}");
}
