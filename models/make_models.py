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
import onnx.numpy_helper
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


class Block(torch.nn.Module):
    """A pre-norm transformer block with 4-head attention and an erf-GELU MLP on x[1, t, 128]."""

    def __init__(self, d=128, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, 4 * d)
        self.fc2 = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)

        def split_heads(z):
            return z.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


def export(name, module, inputs, dynamic_axes=None, fold_constants=True):
    """Exports `module` to models/<name>/ with inputs and onnxruntime outputs.

    `fold_constants=False` keeps ops the exporter would fold into weights (BatchNormalization).
    """
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
        dynamic_axes=dynamic_axes,
        do_constant_folding=fold_constants,
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


ATTENTION_TTNN = """\
// Scaled dot-product attention with a residual and a ReLU, in the TTNN dialect (generic form).
#dram = #ttnn.buffer_type<dram>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
module {
  func.func @attention(%arg0: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "q"},
                       %arg1: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "k"},
                       %arg2: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "v"},
                       %arg3: tensor<1x1xbf16, #ttnn_layout1> {ttir.name = "scale"}) -> tensor<64x64xbf16, #ttnn_layout> {
    %0 = "ttnn.get_device"() <{mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.matmul"(%arg0, %arg1) <{transpose_a = false, transpose_b = true}> : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %2 = "ttnn.multiply"(%1, %arg3) : (tensor<64x64xbf16, #ttnn_layout>, tensor<1x1xbf16, #ttnn_layout1>) -> tensor<64x64xbf16, #ttnn_layout>
    "ttnn.deallocate"(%1) <{force = false}> : (tensor<64x64xbf16, #ttnn_layout>) -> ()
    %3 = "ttnn.softmax"(%2) <{dimension = -1 : si32}> : (tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %4 = "ttnn.matmul"(%3, %arg2) <{transpose_a = false, transpose_b = false}> : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %5 = "ttnn.add"(%4, %arg0) : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %6 = "ttnn.relu"(%5) : (tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout> loc(#loc1)
    return %6 : tensor<64x64xbf16, #ttnn_layout>
  }
}
"""


def attention_ttnn(rng):
    """Writes the TTNN MLIR attention function with numpy inputs and reference output."""
    out_dir = ROOT / "attention_ttnn"
    (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
    (out_dir / "outputs").mkdir(parents=True, exist_ok=True)
    (out_dir / "model.mlir").write_text(ATTENTION_TTNN)
    q, k, v = (rng.standard_normal((64, 64)).astype(np.float32) for _ in range(3))
    scale = np.full((1, 1), 1.0 / 8.0, dtype=np.float32)
    s = (q @ k.T) * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    out = np.maximum(p @ v + q, np.float32(0.0)).astype(np.float32)
    for name, value in [("q", q), ("k", k), ("v", v), ("scale", scale)]:
        np.save(out_dir / "inputs" / f"{name}.npy", value)
    np.save(out_dir / "outputs" / "out0.npy", out)
    print("attention_ttnn: model.mlir")


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


def external_models():
    """The mlp model re-saved with its weights in model.onnx.data beside it (external data)."""
    out_dir = ROOT / "external" / "mlp"
    out_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(ROOT / "mlp" / "model.onnx"))
    onnx.save(model, str(out_dir / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    print("external: mlp (model.onnx + model.onnx.data)")


def save_case(name, nodes, inputs, outputs, initializers=(), opset=17):
    """Writes models/ops/<name>/ with random inputs and onnxruntime outputs.

    `inputs` maps input name -> numpy array; `outputs` lists output names (shapes inferred).
    """
    out_dir = ROOT / "ops" / name
    for sub in ("inputs", "outputs"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / sub).glob("*.npy"):
            old.unlink()
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
        for n, v in inputs.items()
    ]
    graph = helper.make_graph(nodes, name, graph_inputs, [], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # Declare the outputs with the types ONNX shape inference gives them.
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[o] for o in outputs)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_dir / "model.onnx"))
    session = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for n, v in inputs.items():
        np.save(out_dir / "inputs" / f"{n}.npy", v)
    for n, v in zip(outputs, session.run(outputs, inputs)):
        assert v.dtype == np.float32, f"{name}: output {n} is {v.dtype}"
        np.save(out_dir / "outputs" / f"{n}.npy", v)


def const(name, values, dtype=np.float32):
    """An initializer from a Python list or array."""
    return onnx.numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def op_models(rng):
    """Small graphs covering every ONNX op the importer supports, checked by onnxruntime."""

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    n = helper.make_node
    save_case(
        "shape_ops",
        [
            n("Shape", ["x"], ["s"]),
            n("Gather", ["s", "two"], ["last"], axis=0),
            n("Unsqueeze", ["last", "zero"], ["last1"]),
            n("Concat", ["minus1", "last1"], ["target"], axis=0),
            n("Reshape", ["x", "target"], ["r"]),
            n("Slice", ["r", "st", "en", "zero", "step2"], ["sl"]),
            n("Split", ["r", "sizes"], ["sp1", "sp2"], axis=1),
            n("Expand", ["sp1", "shape63"], ["e"]),
            n("Add", ["e", "sp2"], ["m"]),
            n("Unsqueeze", ["m", "zero"], ["m1"]),
            n("Squeeze", ["m1", "zero"], ["sq"]),
            n("Flatten", ["x"], ["fl"], axis=2),
            n("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
            n("Gather", ["x", "idx"], ["rows"], axis=1),
            n("Slice", ["x", "neg_st", "big_en", "ax2"], ["tail"]),
        ],
        {"x": rand(2, 3, 4)},
        ["sl", "sq", "fl", "t", "rows", "tail"],
        [
            const("two", 2, np.int64), const("zero", [0], np.int64), const("minus1", [-1], np.int64),
            const("st", [1], np.int64), const("en", [5], np.int64), const("step2", [2], np.int64),
            const("sizes", [1, 3], np.int64), const("shape63", [6, 3], np.int64),
            const("idx", [[2, 0], [1, -1]], np.int64), const("neg_st", [-3], np.int64),
            const("big_en", [2**62], np.int64), const("ax2", [2], np.int64),
        ],
    )
    unary = ["Neg", "Abs", "Erf", "Floor", "Softplus", "Sigmoid", "Tanh", "Exp", "Relu", "Identity"]
    nodes = [n(op, ["x"], [op.lower()]) for op in unary]
    nodes += [
        n("Abs", ["x"], ["ax"]),
        n("Add", ["ax", "one"], ["ax1"]),
        n("Log", ["ax1"], ["log"]),
        n("Sqrt", ["ax"], ["sqrt"]),
        n("Reciprocal", ["ax1"], ["reciprocal"]),
        n("Pow", ["ax", "p15"], ["pow"]),
        n("Min", ["x", "y"], ["min"]),
        n("Max", ["x", "y", "half"], ["max"]),
        n("Sum", ["x", "y", "x"], ["sum"]),
        n("Sub", ["x", "y"], ["sub"]),
        n("Div", ["x", "ax1"], ["div"]),
        n("Clip", ["x", "lo", "hi"], ["clip"]),
        n("HardSigmoid", ["x"], ["hardsigmoid"], alpha=0.3, beta=0.4),
        n("LeakyRelu", ["x"], ["leakyrelu"], alpha=0.1),
        n("Floor", ["y"], ["fy"]),
        n("Equal", ["floor", "fy"], ["eq"]),
        n("Where", ["eq", "x", "y"], ["where"]),
        n("Cast", ["x"], ["xi"], to=TensorProto.INT64),
        n("Cast", ["xi"], ["cast"], to=TensorProto.FLOAT),
        n("Dropout", ["x"], ["dropout"]),
    ]
    outs = [op.lower() for op in unary] + [
        "log", "sqrt", "reciprocal", "pow", "min", "max", "sum", "sub", "div", "clip",
        "hardsigmoid", "leakyrelu", "where", "cast", "dropout",
    ]
    save_case(
        "elementwise",
        nodes,
        {"x": rand(4, 32) * 2, "y": rand(4, 32) * 2},
        outs,
        [const("one", 1.0), const("p15", 1.5), const("half", [0.5]), const("lo", -0.5), const("hi", 0.5)],
    )
    save_case(
        "gelu",
        [n("Gelu", ["x"], ["exact"]), n("Gelu", ["x"], ["tanh"], approximate="tanh")],
        {"x": rand(4, 32) * 3},
        ["exact", "tanh"],
        opset=20,
    )
    save_case(
        "norms",
        [
            n("LayerNormalization", ["x", "g", "b"], ["ln"], epsilon=1e-5),
            n("LayerNormalization", ["x3", "g3"], ["ln3"], axis=1),
            n("BatchNormalization", ["img", "sc", "bi", "mu", "var"], ["bn"], epsilon=1e-3),
        ],
        {"x": rand(4, 32), "x3": rand(2, 4, 8), "img": rand(2, 3, 5, 5)},
        ["ln", "ln3", "bn"],
        [
            const("g", rand(32)), const("b", rand(32)), const("g3", rand(4, 8)),
            const("sc", rand(3)), const("bi", rand(3)), const("mu", rand(3)), const("var", np.abs(rand(3)) + 0.5),
        ],
    )
    save_case(
        "conv_pool",
        [
            n("Conv", ["img", "w", "wb"], ["conv"], pads=[1, 1, 1, 1], strides=[2, 2]),
            n("Conv", ["img", "dw"], ["dwconv"], group=3, dilations=[2, 2], pads=[2, 1, 2, 3]),
            n("Conv", ["img", "w2"], ["same_upper"], auto_pad="SAME_UPPER"),
            n("Conv", ["img", "w2"], ["same_lower"], auto_pad="SAME_LOWER", strides=[2, 2]),
            n("MaxPool", ["img"], ["maxpool"], kernel_shape=[2, 2], strides=[2, 2]),
            n("AveragePool", ["img"], ["avgpool"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            n("AveragePool", ["img"], ["avgpool_pad"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
            n("GlobalAveragePool", ["img"], ["gap"]),
            n("GlobalMaxPool", ["img"], ["gmp"]),
        ],
        {"img": rand(1, 3, 9, 9)},
        ["conv", "dwconv", "same_upper", "same_lower", "maxpool", "avgpool", "avgpool_pad", "gap", "gmp"],
        [const("w", rand(4, 3, 3, 3)), const("wb", rand(4)), const("dw", rand(3, 1, 3, 3)), const("w2", rand(4, 3, 2, 2))],
    )
    save_case(
        "reduce_opset13",
        [
            n("ReduceSum", ["x", "ax1"], ["sum"], keepdims=0),
            n("ReduceMean", ["x"], ["mean"], axes=[0, 2]),
            n("ReduceMax", ["x"], ["max"], axes=[-1], keepdims=0),
            n("ReduceMin", ["x"], ["min"]),
            n("Softmax", ["x"], ["softmax"], axis=1),
        ],
        {"x": rand(2, 3, 4)},
        ["sum", "mean", "max", "min", "softmax"],
        [const("ax1", [1], np.int64)],
        opset=13,
    )
    save_case(
        "reduce_opset18",
        [
            n("ReduceMean", ["x", "axes"], ["mean"]),
            n("ReduceMax", ["x", "axes"], ["max"], keepdims=0),
            n("ReduceSum", ["x"], ["all"]),
        ],
        {"x": rand(2, 3, 4)},
        ["mean", "max", "all"],
        [const("axes", [0, -1], np.int64)],
        opset=18,
    )
    save_case(
        "softmax_opset11",
        [n("Softmax", ["x"], ["softmax"], axis=1)],
        {"x": rand(2, 3, 4)},
        ["softmax"],
        opset=11,
    )
    save_case(
        "gemm_const",
        [
            n("Gemm", ["a", "b", "c"], ["gemm"], transA=1, alpha=0.5, beta=2.0),
            n("MatMul", ["x3", "m"], ["bmm"]),
            n("Shape", ["a"], ["sa"]),
            n("ConstantOfShape", ["sa"], ["fill"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.5])),
            n("Add", ["a", "fill"], ["filled"]),
            n("Range", ["r0", "r1", "r2"], ["rng"]),
            n("Constant", [], ["k"], value_floats=[1.0, -1.0, 2.0, 0.5]),
            n("Mul", ["rng", "k"], ["ramp"]),
        ],
        {"a": rand(8, 4), "b": rand(8, 6), "x3": rand(2, 4, 8)},
        ["gemm", "bmm", "filled", "ramp"],
        [
            const("c", rand(6)), const("m", rand(8, 3)),
            const("r0", 0.0), const("r1", 8.0), const("r2", 2.0),
        ],
    )
    # Its own generator, so adding this case leaves the other files unchanged.
    rng = np.random.default_rng(SEED + 1)
    save_case(
        "composites",
        [
            n("HardSwish", ["x"], ["hardswish"]),
            n("PRelu", ["x", "slope"], ["prelu"]),
            n("Elu", ["x"], ["elu"], alpha=0.7),
            n("Selu", ["x"], ["selu"]),
            n("Mish", ["x"], ["mish"]),
            n("Ceil", ["x"], ["ceil"]),
            n("Floor", ["x"], ["fx"]),
            n("Equal", ["fx", "zero"], ["in_unit"]),
            n("Not", ["in_unit"], ["outside"]),
            n("Where", ["outside", "x", "half"], ["not_where"]),
            n("Mean", ["x", "y", "x"], ["mean"]),
            n("ReduceSumSquare", ["x", "ax1"], ["sumsq"], keepdims=0),
            n("ReduceL2", ["x", "ax1"], ["l2"]),
            n("ReduceLogSumExp", ["x", "ax1"], ["lse"], keepdims=0),
            n("InstanceNormalization", ["img", "sc", "bi"], ["inorm"], epsilon=1e-4),
            n("Tile", ["y", "reps"], ["tile"]),
        ],
        {"x": rand(4, 32) * 3, "y": rand(4, 32), "img": rand(2, 3, 4, 5)},
        ["hardswish", "prelu", "elu", "selu", "mish", "ceil", "not_where", "mean", "sumsq", "l2", "lse", "inorm", "tile"],
        [
            const("slope", rand(32)), const("half", 0.5), const("zero", 0.0), const("ax1", [1], np.int64),
            const("sc", rand(3)), const("bi", rand(3)), const("reps", [2, 3], np.int64),
        ],
        opset=18,
    )
    print("ops: shape_ops, elementwise, gelu, norms, conv_pool, reduce_opset13/18, softmax_opset11, gemm_const, composites")


def lrn_model():
    """LRN (the onnx package's AlexNet-style CNNs use it) with two window sizes (onnxruntime takes odd ones)."""
    rng = np.random.default_rng(SEED + 2)
    n = helper.make_node
    save_case(
        "lrn",
        [
            n("LRN", ["x"], ["odd"], size=5, alpha=1e-3, beta=0.75, bias=1.0),
            n("LRN", ["x"], ["narrow"], size=3, alpha=0.5, beta=0.6, bias=2.0),
        ],
        {"x": (rng.standard_normal((2, 7, 3, 4)) * 3).astype(np.float32)},
        ["odd", "narrow"],
    )
    print("ops: lrn")


def bn_scale_shift_model():
    """A DenseNet layer as Caffe2 exports it (the onnx package's DenseNet-121 and Inception
    v2): every BatchNorm followed by a Mul and an Add by [C, 1, 1] constants, the first pair
    before the 1x1 convolution (pre-activation), the second after it."""
    rng = np.random.default_rng(SEED + 3)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def bn(prefix, c):
        return [
            const(f"{prefix}_scale", rand(c)), const(f"{prefix}_bias", rand(c)),
            const(f"{prefix}_mean", rand(c)), const(f"{prefix}_var", np.abs(rand(c)) + 0.5),
            const(f"{prefix}_s", rand(c, 1, 1)), const(f"{prefix}_t", rand(c, 1, 1)),
        ]

    n = helper.make_node
    nodes = []
    for prefix, x, y in (("bn1", "x", "a"), ("bn2", "conv1", "b")):
        nodes += [
            n("BatchNormalization", [x, f"{prefix}_scale", f"{prefix}_bias", f"{prefix}_mean", f"{prefix}_var"],
              [f"{prefix}_out"], epsilon=1e-5),
            n("Mul", [f"{prefix}_out", f"{prefix}_s"], [f"{prefix}_scaled"]),
            n("Add", [f"{prefix}_scaled", f"{prefix}_t"], [f"{prefix}_shifted"]),
            n("Relu", [f"{prefix}_shifted"], [y]),
        ]
        if prefix == "bn1":
            nodes.append(n("Conv", ["a", "w1"], ["conv1"]))
    nodes.append(n("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1]))
    save_case(
        "bn_scale_shift",
        nodes,
        {"x": rand(1, 64, 8, 8)},
        ["y"],
        bn("bn1", 64) + bn("bn2", 32) + [const("w1", rand(32, 64, 1, 1) * 0.2), const("w2", rand(32, 32, 3, 3) * 0.1)],
    )
    print("ops: bn_scale_shift")


def packed_heads_model():
    """The packed projection of PyTorch's nn.MultiheadAttention export: Q, K and V picked out of
    one product by Gather with a constant index (one of them computed by Mod, which the
    export uses in its shape arithmetic) after a reshape and transpose."""
    rng = np.random.default_rng(SEED + 4)
    n = helper.make_node
    i64 = np.int64
    nodes = [
        n("MatMul", ["x", "w"], ["qkv"]),
        n("Reshape", ["qkv", "split_shape"], ["split"]),
        n("Transpose", ["split"], ["parts"], perm=[2, 0, 1, 3]),
        n("Mod", ["four", "three"], ["k_index"]),
        n("Mod", ["five_and_a_half", "two"], ["offset"], fmod=1),
        n("Gather", ["parts", "zero"], ["q"], axis=0),
        n("Gather", ["parts", "k_index"], ["k"], axis=0),
        n("Gather", ["parts", "minus_one"], ["v"], axis=0),
        n("Mul", ["q", "k"], ["qk"]),
        n("Add", ["qk", "v"], ["sum"]),
        n("Add", ["sum", "offset"], ["y"]),
    ]
    save_case(
        "packed_heads",
        nodes,
        {"x": rng.standard_normal((1, 64, 96)).astype(np.float32)},
        ["y"],
        [
            const("w", rng.standard_normal((96, 96)) * 0.1),
            const("split_shape", [1, 64, 3, 32], i64),
            const("four", 4, i64), const("three", 3, i64), const("zero", 0, i64),
            const("minus_one", -1, i64),
            const("five_and_a_half", [5.5]), const("two", [2.0]),
        ],
    )
    print("ops: packed_heads")


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
    external_models()
    op_models(rng)
    lrn_model()
    bn_scale_shift_model()
    packed_heads_model()
    attention_ttnn(rng)
    # A PyTorch transformer block with a symbolic sequence length, whose Shape/Gather/Concat
    # subgraphs the importer folds once `seq` is bound (tests/import_dynamic.rs).
    export("dynamic/transformer_seq", Block(), {"x": rand(1, 64, 128)}, dynamic_axes={"x": {1: "seq"}, "y": {1: "seq"}})


if __name__ == "__main__":
    main()
