"""Writes the TTNN-dialect MLIR examples in this folder and their numpy reference values.

Run from the repository root:  /work/pyenv/bin/python models/ttnn_mlir/make_ttnn_mlir.py

Each program <name>.mlir is written in the generic op form tt-mlir prints (layout aliases,
`ttnn.get_device`, `ttnn.to_layout`/`ttnn.to_device`/`ttnn.from_device`, `ttnn.deallocate`).
Its inputs are drawn from numpy.random.default_rng(SEED) (standard normal, f32, weights scaled
by 1/sqrt(fan-in)) into <name>/inputs/<input>.npy, and numpy computes the outputs in f32 into
<name>/outputs/out<k>.npy, independently of ttfuse. Re-running reproduces every file.
"""

import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent
SEED = 20261125

HEADER = """\
#dram = #ttnn.buffer_type<dram>
#system_memory = #ttnn.buffer_type<system_memory>
"""


def layout(name, shape, tiled):
    """A `#name = #ttnn.ttnn_layout<...>` alias: DRAM tiles or row-major host memory."""
    dims = ", ".join(f"d{i}" for i in range(len(shape)))
    if tiled:
        rows = -(-int(np.prod(shape[:-1])) // 32)
        cols = -(-shape[-1] // 32)
        mem = f"memref<{rows}x{cols}x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>"
    else:
        rows = int(np.prod(shape[:-1]))
        mem = f"memref<{rows}x{shape[-1]}xbf16, #system_memory>"
    return f"#{name} = #ttnn.ttnn_layout<({dims}) -> ({dims}), <1x1>, {mem}>\n"


def ty(shape, lay=None):
    """`tensor<AxBxbf16, #lay>`."""
    dims = "x".join(str(d) for d in shape)
    return f"tensor<{dims}xbf16, #{lay}>" if lay else f"tensor<{dims}xbf16>"


def mlp():
    """x[64,128] -> linear(w1, b1) -> relu -> linear(w2 stored [out, in], b2, transpose_b)."""
    text = HEADER
    text += layout("ttnn_layout", [64, 128], False)
    text += layout("ttnn_layout1", [64, 128], True)
    text += layout("ttnn_layout2", [128, 256], True)
    text += layout("ttnn_layout3", [32, 256], True)
    text += layout("ttnn_layout4", [64, 256], True)
    text += layout("ttnn_layout5", [32, 128], True)
    x0, x1 = ty([64, 128], "ttnn_layout"), ty([64, 128], "ttnn_layout1")
    w = ty([128, 256], "ttnn_layout2")
    b1, b2 = ty([1, 256], "ttnn_layout3"), ty([1, 128], "ttnn_layout5")
    h = ty([64, 256], "ttnn_layout4")
    text += f"""\
module @mlp attributes {{ttcore.meshes = #ttcore.meshes<[<"mesh" = 1x1>]>}} {{
  func.func @forward(%arg0: {x0} {{ttir.name = "x"}}, %arg1: {w} {{ttir.name = "w1"}}, %arg2: {b1} {{ttir.name = "b1"}},
                     %arg3: {w} {{ttir.name = "w2"}}, %arg4: {b2} {{ttir.name = "b2"}}) -> {x0} {{
    %0 = "ttnn.get_device"() <{{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}}> : () -> !ttnn.device
    %1 = "ttnn.to_layout"(%arg0) <{{dtype = #ttcore.supportedDataTypes<bf16>, layout = #ttnn.layout<tile>}}> : ({x0}) -> {x1}
    %2 = "ttnn.to_device"(%1, %0) <{{memory_config = #ttnn.memory_config<#dram, <interleaved>>}}> : ({x1}, !ttnn.device) -> {x1}
    "ttnn.deallocate"(%1) <{{force = false}}> : ({x1}) -> ()
    %3 = "ttnn.linear"(%2, %arg1, %arg2) <{{transpose_a = false, transpose_b = false}}> : ({x1}, {w}, {b1}) -> {h} loc(#loc1)
    "ttnn.deallocate"(%2) <{{force = false}}> : ({x1}) -> ()
    %4 = "ttnn.relu"(%3) : ({h}) -> {h} loc(#loc2)
    "ttnn.deallocate"(%3) <{{force = false}}> : ({h}) -> ()
    %5 = "ttnn.linear"(%4, %arg3, %arg4) <{{transpose_a = false, transpose_b = true}}> : ({h}, {w}, {b2}) -> {x1} loc(#loc3)
    "ttnn.deallocate"(%4) <{{force = false}}> : ({h}) -> ()
    %6 = "ttnn.from_device"(%5) : ({x1}) -> {x1}
    %7 = "ttnn.to_layout"(%6) <{{dtype = #ttcore.supportedDataTypes<bf16>, layout = #ttnn.layout<row_major>}}> : ({x1}) -> {x0}
    return %7 : {x0}
  }}
}}
#loc1 = loc("fc1")
#loc2 = loc("relu")
#loc3 = loc("fc2")
"""

    def compute(rng):
        x = rng.standard_normal((64, 128)).astype(np.float32)
        w1 = (rng.standard_normal((128, 256)) / np.sqrt(128)).astype(np.float32)
        b1 = rng.standard_normal((1, 256)).astype(np.float32) * np.float32(0.1)
        # The second weight is stored [out, in] = [128, 256] and used transposed.
        w2 = (rng.standard_normal((128, 256)) / np.sqrt(256)).astype(np.float32)
        b2 = rng.standard_normal((1, 128)).astype(np.float32) * np.float32(0.1)
        y = np.maximum(x @ w1 + b1, np.float32(0)) @ w2.T + b2
        return {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2}, [y]

    return text, compute


def attention(heads):
    """Self-attention on x[64,128] with `heads` heads: rms_norm, q/k/v projections, QK-norm
    (rms_norm without weight), softmax(q.k^T * scale) . v (matmul transpose_b, a ttnn.full scale), output projection and
    residual. With several heads, they are split with reshape+permute and merged back."""
    hd = 128 // heads
    text = HEADER
    text += layout("ttnn_layout", [64, 128], True)
    text += layout("ttnn_layout1", [128, 128], True)
    text += layout("ttnn_layout2", [64, heads, hd], True)
    text += layout("ttnn_layout3", [heads, 64, 64], True)
    text += layout("ttnn_layout4", [1, 1, 1], True)
    text += layout("ttnn_layout5", [64, 64], True)
    text += layout("ttnn_layout6", [1, 1], True)
    x, w, g = ty([64, 128], "ttnn_layout"), ty([128, 128], "ttnn_layout1"), ty([128])
    if heads > 1:
        split, att = ty([64, heads, hd], "ttnn_layout2"), ty([heads, 64, hd], "ttnn_layout3")
        scores, one = ty([heads, 64, 64], "ttnn_layout3"), ty([1, 1, 1], "ttnn_layout4")
        full_shape = "1x1x1"
    else:
        att, scores, one = x, ty([64, 64], "ttnn_layout5"), ty([1, 1], "ttnn_layout6")
        full_shape = "1x1"
    scale = 1.0 / np.sqrt(hd)
    proj = {}
    body = ""
    n = 3
    for name, arg in [("q", "%arg2"), ("k", "%arg3"), ("v", "%arg4")]:
        body += f"""\
    %{n} = "ttnn.matmul"(%2, {arg}) <{{transpose_a = false, transpose_b = false}}> : ({x}, {w}) -> {x}
"""
        if heads > 1:
            body += f"""\
    %{n + 1} = "ttnn.reshape"(%{n}) <{{shape = [64 : i32, {heads} : i32, {hd} : i32]}}> : ({x}) -> {split}
    "ttnn.deallocate"(%{n}) <{{force = false}}> : ({x}) -> ()
    %{n + 2} = "ttnn.permute"(%{n + 1}) <{{pad_value = 0.000000e+00 : f32, permutation = array<i64: 1, 0, 2>}}> : ({split}) -> {att}
"""
            proj[name] = n + 2
            n += 3
        else:
            proj[name] = n
            n += 1
        if name != "v":
            # QK-norm: q and k are RMS-normalized (no weight) before the scores.
            body += f"""\
    %{n} = "ttnn.rms_norm"(%{proj[name]}) <{{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0>}}> : ({att}) -> {att}
"""
            proj[name] = n
            n += 1
    body += f"""\
    %{n} = "ttnn.matmul"(%{proj['q']}, %{proj['k']}) <{{transpose_a = false, transpose_b = true}}> : ({att}, {att}) -> {scores}
    %{n + 1} = "ttnn.full"(%0) <{{dtype = #ttcore.supportedDataTypes<bf16>, fill_value = {scale:.6e} : f32, layout = #ttnn.layout<tile>, shape = #ttnn.shape<{full_shape}>}}> : (!ttnn.device) -> {one}
    %{n + 2} = "ttnn.multiply"(%{n}, %{n + 1}) : ({scores}, {one}) -> {scores}
    "ttnn.deallocate"(%{n}) <{{force = false}}> : ({scores}) -> ()
    %{n + 3} = "ttnn.softmax"(%{n + 2}) <{{dimension = -1 : si32, numericStable = true}}> : ({scores}) -> {scores}
    %{n + 4} = "ttnn.matmul"(%{n + 3}, %{proj['v']}) <{{transpose_a = false, transpose_b = false}}> : ({scores}, {att}) -> {att}
"""
    n += 4
    if heads > 1:
        body += f"""\
    %{n + 1} = "ttnn.permute"(%{n}) <{{permutation = array<i64: 1, 0, 2>}}> : ({att}) -> {split}
    %{n + 2} = "ttnn.reshape"(%{n + 1}) <{{shape = [64 : i32, 128 : i32]}}> : ({split}) -> {x}
"""
        n += 2
    body += f"""\
    %{n + 1} = "ttnn.matmul"(%{n}, %arg5) <{{transpose_a = false, transpose_b = false}}> : ({x}, {w}) -> {x}
    %{n + 2} = "ttnn.add"(%{n + 1}, %arg0) : ({x}, {x}) -> {x}
    return %{n + 2} : {x}
"""
    text += f"""\
module @attention {{
  func.func @forward(%arg0: {x} {{ttir.name = "x"}}, %arg1: {g} {{ttir.name = "gamma"}},
                     %arg2: {w} {{ttir.name = "wq"}}, %arg3: {w} {{ttir.name = "wk"}},
                     %arg4: {w} {{ttir.name = "wv"}}, %arg5: {w} {{ttir.name = "wo"}}) -> {x} {{
    %0 = "ttnn.get_device"() <{{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}}> : () -> !ttnn.device
    %1 = "ttnn.to_memory_config"(%arg0) <{{memory_config = #ttnn.memory_config<#dram, <interleaved>>}}> : ({x}) -> {x}
    %2 = "ttnn.rms_norm"(%1, %arg1) <{{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 1, 0>}}> : ({x}, {g}) -> {x}
{body}  }}
}}
"""

    def compute(rng):
        x = rng.standard_normal((64, 128)).astype(np.float32)
        gamma = (1.0 + 0.1 * rng.standard_normal(128)).astype(np.float32)
        ws = [(rng.standard_normal((128, 128)) / np.sqrt(128)).astype(np.float32) for _ in range(4)]
        eps = np.float32(9.99999974e-6)
        xn = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * gamma

        def split(t):
            return t.reshape(64, heads, hd).transpose(1, 0, 2)

        def rms(t):
            return t / np.sqrt(np.mean(t * t, axis=-1, keepdims=True) + eps)

        q, k, v = (split(xn @ w) for w in ws[:3])
        q, k = rms(q), rms(k)
        s = (q @ k.transpose(0, 2, 1)) * np.float32(float(f"{scale:.6e}"))
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        o = (p @ v).transpose(1, 0, 2).reshape(64, 128)
        y = o @ ws[3] + x
        names = {"x": x, "gamma": gamma, "wq": ws[0], "wk": ws[1], "wv": ws[2], "wo": ws[3]}
        return names, [y]

    return text, compute


def conv():
    """A 3x3 same-padded conv2d (with bias) on a flattened NHWC [1,1,N*H*W,C] input, then relu;
    N=2, H=W=8, C=16 -> 32 channels."""
    n, h, wd, c, o = 2, 8, 8, 16, 32
    inp, wt = ty([1, 1, n * h * wd, c]), ty([o, c, 3, 3])
    bias, out = ty([1, 1, 1, o]), ty([1, 1, n * h * wd, o])
    text = f"""\
module @conv {{
  func.func @forward(%arg0: {inp} {{ttir.name = "x"}}, %arg1: {wt} {{ttir.name = "weight"}}, %arg2: {bias} {{ttir.name = "bias"}}) -> {out} {{
    %0 = "ttnn.get_device"() <{{mesh_shape = #ttnn<mesh_shape 1x1>}}> : () -> !ttnn.device
    %1 = "ttnn.conv2d"(%arg0, %arg1, %arg2, %0)
        <{{
          batch_size = {n} : i32,
          dilation = array<i32: 1, 1>,
          groups = 1 : i32,
          in_channels = {c} : i32,
          input_height = {h} : i32,
          input_width = {wd} : i32,
          kernel_size = array<i32: 3, 3>,
          out_channels = {o} : i32,
          padding = array<i32: 1, 1>,
          stride = array<i32: 1, 1>,
          dtype = #ttcore.supportedDataTypes<bf16>
        }}> : ({inp}, {wt}, {bias}, !ttnn.device) -> {out}
    %2 = "ttnn.relu"(%1) : ({out}) -> {out}
    return %2 : {out}
  }}
}}
"""

    def compute(rng):
        x = rng.standard_normal((1, 1, n * h * wd, c)).astype(np.float32)
        weight = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        b = (0.1 * rng.standard_normal((1, 1, 1, o))).astype(np.float32)
        img = np.pad(x.reshape(n, h, wd, c), ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = np.zeros((n, h, wd, o), dtype=np.float32)
        for dy in range(3):
            for dx in range(3):
                y += img[:, dy : dy + h, dx : dx + wd, :] @ weight[:, :, dy, dx].T
        y = np.maximum(y + b.reshape(o), np.float32(0)).reshape(1, 1, n * h * wd, o)
        return {"x": x, "weight": weight, "bias": b}, [y]

    return text, compute


def sdpa():
    """Causal two-head attention through ttnn.scaled_dot_product_attention on q, k, v
    [1, 2, 64, 32] (default scale 1/sqrt(32)), then the output times 2 (ttnn.multiply by a
    ttnn.full)."""
    qkv = ty([1, 2, 64, 32], "ttnn_layout")
    two = ty([1, 1], "ttnn_layout1")
    text = HEADER
    text += layout("ttnn_layout", [1, 2, 64, 32], True)
    text += layout("ttnn_layout1", [1, 1], True)
    text += f"""\
module @sdpa {{
  func.func @forward(%arg0: {qkv} {{ttir.name = "q"}}, %arg1: {qkv} {{ttir.name = "k"}}, %arg2: {qkv} {{ttir.name = "v"}}) -> {qkv} {{
    %0 = "ttnn.get_device"() <{{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}}> : () -> !ttnn.device
    %1 = "ttnn.scaled_dot_product_attention"(%arg0, %arg1, %arg2) <{{is_causal = true, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>}}> : ({qkv}, {qkv}, {qkv}) -> {qkv}
    %2 = "ttnn.full"(%0) <{{dtype = #ttcore.supportedDataTypes<bf16>, fill_value = 2.0 : f32, layout = #ttnn.layout<tile>, shape = #ttnn.shape<1x1>}}> : (!ttnn.device) -> {two}
    %3 = "ttnn.multiply"(%1, %2) : ({qkv}, {two}) -> {qkv}
    return %3 : {qkv}
  }}
}}
"""

    def compute(rng):
        q, k, v = (rng.standard_normal((1, 2, 64, 32)).astype(np.float32) for _ in range(3))
        s = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(32.0))
        s = np.where(np.tril(np.ones((64, 64), dtype=bool)), s, np.float32(-np.inf))
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        return {"q": q, "k": k, "v": v}, [(p @ v) * np.float32(2.0)]

    return text, compute


def main():
    rng = np.random.default_rng(SEED)
    programs = [
        ("mlp", mlp),
        ("attention", lambda: attention(1)),
        ("mha", lambda: attention(2)),
        ("conv", conv),
        ("sdpa", sdpa),
    ]
    for name, make in programs:
        text, compute = make()
        (ROOT / f"{name}.mlir").write_text(text)
        inputs, outputs = compute(rng)
        for sub in ["inputs", "outputs"]:
            (ROOT / name / sub).mkdir(parents=True, exist_ok=True)
        for key, value in inputs.items():
            np.save(ROOT / name / "inputs" / f"{key}.npy", value.astype(np.float32))
        for k, value in enumerate(outputs):
            np.save(ROOT / name / "outputs" / f"out{k}.npy", value.astype(np.float32))
        print(f"{name}.mlir: {len(inputs)} inputs, {len(outputs)} output(s)")


if __name__ == "__main__":
    main()
