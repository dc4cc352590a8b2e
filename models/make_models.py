"""Regenerates the example models in this folder.

Run from the repository root:  /work/pyenv/bin/python models/make_models.py

For each ONNX model it writes models/<name>/model.onnx (exported from PyTorch, opset 17, a single
file), seeded random f32 inputs in models/<name>/inputs/<input>.npy and the onnxruntime outputs in
models/<name>/outputs/<output>.npy. The TTNN program (key_use_case) gets numpy reference outputs.
models/errors/ holds small malformed models used by the importer error tests.
"""

import math
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

ROOT = pathlib.Path(__file__).resolve().parent
SEED = 20261125


class Mlp(torch.nn.Module):
    """x[128,256] -> Linear(256,512) -> ReLU -> Linear(512,256)."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(256, 512)
        self.fc2 = torch.nn.Linear(512, 256)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Attention(torch.nn.Module):
    """Single-head softmax attention with a residual connection on x[n, d]."""

    def __init__(self, d):
        super().__init__()
        self.q = torch.nn.Linear(d, d)
        self.k = torch.nn.Linear(d, d)
        self.v = torch.nn.Linear(d, d)
        self.o = torch.nn.Linear(d, d)
        self.scale = math.sqrt(d)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        s = q @ k.T / self.scale
        p = torch.softmax(s, dim=-1)
        return self.o(p @ v) + x


class AttentionMlp(torch.nn.Module):
    """Attention block, then an MLP block with a residual, ending in an elementwise chain."""

    def __init__(self, d, hidden):
        super().__init__()
        self.attn = Attention(d)
        self.fc1 = torch.nn.Linear(d, hidden)
        self.fc2 = torch.nn.Linear(hidden, d)

    def forward(self, x):
        a = self.attn(x)
        m = self.fc2(torch.relu(self.fc1(a)))
        # An elementwise chain (sigmoid, mul, add, tanh) for the fuser to merge.
        return torch.tanh(torch.sigmoid(m) * m + a)


def export(name, module, inputs):
    """Exports `module` to models/<name>/ with inputs and onnxruntime outputs."""
    out_dir = ROOT / name
    (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
    (out_dir / "outputs").mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    module.eval()
    names = list(inputs)
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=names,
        output_names=["y"],
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    onnx.save(model, str(path), save_as_external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, inputs)
    for n, v in inputs.items():
        np.save(out_dir / "inputs" / f"{n}.npy", v)
    for meta, v in zip(session.get_outputs(), results):
        np.save(out_dir / "outputs" / f"{meta.name}.npy", v)
    ops = sorted({node.op_type for node in model.graph.node})
    print(f"{name}: {len(model.graph.node)} nodes, ops {ops}")


KEY_USE_CASE = '''\
"""The TTNN program of the TT-Lang guide's key use case: exp, add, relu."""
import torch
import ttnn

device = ttnn.open_device(device_id=0)
input = ttnn.from_torch(torch.randn(64, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
bias = ttnn.from_torch(torch.randn(64, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)

x = ttnn.exp(input)
y = ttnn.add(x, bias)
z = ttnn.relu(y)

ttnn.close_device(device)
'''


def key_use_case(rng):
    """Writes the TTNN program with numpy inputs and reference output."""
    out_dir = ROOT / "key_use_case"
    (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
    (out_dir / "outputs").mkdir(parents=True, exist_ok=True)
    (out_dir / "program.py").write_text(KEY_USE_CASE)
    inp = rng.standard_normal((64, 64)).astype(np.float32)
    bias = rng.standard_normal((64, 64)).astype(np.float32)
    z = np.maximum(np.exp(inp) + bias, np.float32(0.0)).astype(np.float32)
    np.save(out_dir / "inputs" / "input.npy", inp)
    np.save(out_dir / "inputs" / "bias.npy", bias)
    np.save(out_dir / "outputs" / "z.npy", z)
    print("key_use_case: program.py")


def error_models():
    """Small invalid models for the importer's error tests."""
    out_dir = ROOT / "errors"
    out_dir.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 32])
    # A well-formed model using an op ttfuse does not support.
    node = helper.make_node("Hardmax", ["x"], ["y"], name="hardmax_0", axis=1)
    graph = helper.make_graph([node], "unknown_op", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / "unknown_op.onnx"))
    # A node reading a tensor that nothing defines.
    node = helper.make_node("Add", ["x", "w_missing"], ["y"], name="add_0")
    graph = helper.make_graph([node], "missing_input", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(out_dir / "missing_input.onnx"))
    # A symbolic batch dimension with no value given.
    xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])
    ys = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])
    node = helper.make_node("Relu", ["x"], ["y"], name="relu_0")
    graph = helper.make_graph([node], "symbolic_dim", [xs], [ys])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / "symbolic_dim.onnx"))
    # Two nodes feeding each other.
    a = helper.make_node("Relu", ["b"], ["a"], name="relu_a")
    b = helper.make_node("Add", ["x", "a"], ["b"], name="add_b")
    c = helper.make_node("Relu", ["b"], ["y"], name="relu_y")
    graph = helper.make_graph([a, b, c], "cycle", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(out_dir / "cycle.onnx"))
    print("errors: unknown_op, missing_input, symbolic_dim, cycle")


def main():
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    export("mlp", Mlp(), {"x": rand(128, 256)})
    export("attention", Attention(128), {"x": rand(128, 128)})
    export("attention_mlp", AttentionMlp(128, 256), {"x": rand(128, 128)})
    key_use_case(rng)
    error_models()


if __name__ == "__main__":
    main()
