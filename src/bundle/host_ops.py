"""TTNN fallback ops of a ttfuse bundle, run on the host with numpy.

Graph ops without a TT-Lang kernel run between kernels the way ttfuse's runtime runs them: the
device tensors are read back, the op is applied to the graph-shaped values in float32, and the
result is written back in the device layout. `apply(op, arrays, out_shape)` takes the op as program.json
stores it (the graph op in its JSON form) and numpy arrays in graph shape.
"""

import math

import numpy as np

TILE = 32


def flat2d(shape):
    if not shape:
        return 1, 1
    return int(np.prod(shape[:-1])), shape[-1]


def padded(n):
    """`n` rounded up to whole tiles (the device zero-pads every dimension to them)."""
    return -(-n // TILE) * TILE


def layout_of(shape):
    r, c = flat2d(shape)
    if r == 1 and c == 1:
        return "Scalar"
    if r == 1:
        return "Row"
    if c == 1:
        return "Col"
    return "Full"


def to_graph(array, shape):
    """The graph tensor of `shape` held by the 2-D device array."""
    count = int(np.prod(shape)) if shape else 1
    layout = layout_of(shape)
    r, c = flat2d(shape)
    if layout == "Full":
        values = array[:r, :c].ravel()
    elif layout == "Row":
        values = array[0, :c]
    elif layout == "Col":
        values = array[:r, 0]
    else:
        values = array[0, :1]
    return np.asarray(values[:count], dtype=np.float32).reshape(shape)


def to_device_layout(values, shape):
    """The 2-D device array holding graph tensor `values` of `shape`."""
    values = np.asarray(values, dtype=np.float32).ravel()
    r, c = flat2d(shape)
    layout = layout_of(shape)
    if layout == "Full":
        out = np.zeros((padded(r), padded(c)), dtype=np.float32)
        out[:r, :c] = values.reshape(r, c)
        return out
    if layout == "Row":
        out = np.zeros((TILE, padded(c)), dtype=np.float32)
        out[0, :c] = values
        return out
    if layout == "Col":
        out = np.zeros((padded(r), TILE), dtype=np.float32)
        out[:r, 0] = values
        return out
    return np.full((TILE, TILE), values[0], dtype=np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[np.float32])

UNARY = {
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Rsqrt": lambda x: 1.0 / np.sqrt(x),
    "Recip": lambda x: 1.0 / x,
    "Tanh": np.tanh,
    "Sigmoid": _sigmoid,
    "Relu": lambda x: np.maximum(x, 0.0),
    "Abs": np.abs,
    "Neg": np.negative,
    "Floor": np.floor,
    "Erf": _erf,
    "Gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "GeluTanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
    "Silu": lambda x: x * _sigmoid(x),
    "Softplus": lambda x: np.log1p(np.exp(x)),
    "Identity": lambda x: x,
}

BINARY = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Max": np.maximum,
    "Min": np.minimum,
    "Pow": np.power,
}

REDUCE = {"Sum": np.sum, "Mean": np.mean, "Max": np.max, "Min": np.min}


def _cast(x, to):
    if to in ("F32", "F16", "BF16"):
        return x
    if to == "Bool":
        return (x != 0).astype(np.float32)
    return np.trunc(x)


def _slice(x, axes, starts, ends, steps):
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(x, gamma, beta=None, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * gamma
    return y if beta is None else y + beta


def _conv(x, w, bias, kernel, stride, pads, dilation, groups):
    """NCHW convolution, summed window offset by window offset in float64."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + pads[0] + pads[2], wd + pads[1] + pads[3]))
    xp[:, :, pads[0] : pads[0] + h, pads[1] : pads[1] + wd] = x
    oh = (h + pads[0] + pads[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            window = xp[:, :, y0 : y0 + stride[0] * oh : stride[0], x0 : x0 + stride[1] * ow : stride[1]]
            for g in range(groups):
                wg = w[g * og : (g + 1) * og, :, ky, kx].astype(np.float64)
                xg = window[:, g * cg : (g + 1) * cg]
                out[:, g * og : (g + 1) * og] += np.einsum("oc,nchw->nohw", wg, xg)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def _im2col(x, image, kernel, stride, pads, dilation, out_shape):
    """The im2col matrix of pixel-major `x` (`[n * h * w, c]`): row `(b, oy, ox)` holds at
    columns `(ky * kw + kx) * c ..` the pixel under window offset `(ky, kx)`, zero outside."""
    n, h, w = image
    c = x.shape[1]
    kh, kw = kernel
    ow = (w + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    oh = out_shape[0] // (n * ow)
    img = np.zeros((n, h + pads[0] + pads[2], w + pads[1] + pads[3], c))
    img[:, pads[0] : pads[0] + h, pads[1] : pads[1] + w] = x.reshape(n, h, w, c)
    out = np.zeros((n, oh, ow, kh * kw, c))
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            out[:, :, :, ky * kw + kx] = img[:, y0 : y0 + stride[0] * oh : stride[0], x0 : x0 + stride[1] * ow : stride[1]]
    return out.reshape(out_shape)


def _batch_norm(x, scale, bias, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    return (x - mean.reshape(shape)) * (inv * scale).reshape(shape) + bias.reshape(shape)


def _pool(x, op, kernel, stride, pads, count_include_pad, out_hw):
    """Max or average pooling of NCHW `x` into `out_hw` positions; padded positions never win
    a max."""
    n, c, h, w = x.shape
    oh, ow = out_hw
    is_max = op == "Max"
    acc = np.full((n, c, oh, ow), -np.inf if is_max else 0.0)
    count = np.zeros((oh, ow))
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            py = np.arange(oh) * stride[0] + ky - pads[0]
            px = np.arange(ow) * stride[1] + kx - pads[1]
            inside = (py[:, None] >= 0) & (py[:, None] < h) & (px[None, :] >= 0) & (px[None, :] < w)
            v = x[:, :, np.clip(py, 0, h - 1)][:, :, :, np.clip(px, 0, w - 1)]
            if is_max:
                acc = np.where(inside, np.maximum(acc, v), acc)
            else:
                acc = acc + np.where(inside, v, 0.0)
            if count_include_pad:
                in_padded = (py[:, None] + pads[0] < h + pads[0] + pads[2]) & (
                    px[None, :] + pads[1] < w + pads[1] + pads[3]
                )
                count += inside | in_padded
            else:
                count += inside
    return acc if is_max else acc / np.maximum(count, 1)


def apply(op, arrays, out_shape):
    """Applies graph op `op` (its program.json form) to graph-shaped float32 `arrays`, giving
    a tensor of `out_shape`."""
    a = [np.asarray(x, dtype=np.float32) for x in arrays]
    if isinstance(op, str):
        if op == "Where":
            return np.where(a[0] != 0, a[1], a[2])
        if op == "Equal":
            return (a[0] == a[1]).astype(np.float32)
        if op == "MatMul":
            return np.matmul(a[0], a[1])
        raise NotImplementedError(f"host op {op} is not implemented in host_ops.py")
    ((kind, p),) = op.items()
    if kind == "Unary":
        return UNARY[p](a[0])
    if kind == "Binary":
        return BINARY[p](a[0], a[1])
    if kind == "Transpose":
        return np.transpose(a[0], p["perm"])
    if kind == "Reshape":
        return a[0].reshape(p["shape"])
    if kind == "Expand":
        return np.broadcast_to(a[0], p["shape"])
    if kind == "Slice":
        return _slice(a[0], p["axes"], p["starts"], p["ends"], p["steps"])
    if kind == "Concat":
        return np.concatenate(a, axis=p["axis"])
    if kind == "Gather":
        return np.take(a[0], a[1].astype(np.int64), axis=p["axis"])
    if kind == "Cast":
        return _cast(a[0], p["to"])
    if kind == "Clip":
        return np.clip(a[0], p["min"], p["max"])
    if kind == "LeakyRelu":
        return np.where(a[0] >= 0, a[0], p["alpha"] * a[0])
    if kind == "HardSigmoid":
        return np.clip(p["alpha"] * a[0] + p["beta"], 0.0, 1.0)
    if kind == "Reduce":
        return REDUCE[p["op"]](a[0], axis=tuple(p["axes"]), keepdims=p["keep_dims"])
    if kind == "Softmax":
        return _softmax(a[0], p["axis"])
    if kind == "LayerNorm":
        return _layer_norm(a[0], a[1], a[2] if len(a) > 2 else None, p["eps"])
    if kind == "Conv":
        bias = a[2] if len(a) > 2 else None
        x = a[0]
        if p.get("pixels"):
            # Pixel-major in and out ([n * h * w, c]), as TTNN conv2d reads and writes.
            n, h, w = p["pixels"]
            x = x.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
        y = _conv(x, a[1], bias, p["kernel"], p["stride"], p["pads"], p["dilation"], p["groups"])
        # TTNN conv2d's fused activation="relu".
        y = UNARY["Relu"](y) if p.get("relu", False) else y
        if p.get("pixels"):
            y = y.transpose(0, 2, 3, 1).reshape(out_shape)
        return y
    if kind == "Im2Col":
        return _im2col(a[0], p["image"], p["kernel"], p["stride"], p["pads"], p["dilation"], out_shape)
    if kind == "BatchNorm":
        return _batch_norm(a[0], a[1], a[2], a[3], a[4], p["eps"])
    if kind == "Pool":
        return _pool(a[0], p["op"], p["kernel"], p["stride"], p["pads"], p["count_include_pad"], out_shape[2:])
    if kind == "RmsNorm":
        return a[0] / np.sqrt((a[0] ** 2).mean(axis=-1, keepdims=True) + p["eps"]) * a[1]
    raise NotImplementedError(f"host op {kind} is not implemented in host_ops.py")


def run(attrs, arrays_2d):
    """Runs one host step: `attrs` as program.json stores it, inputs as 2-D device arrays;
    returns the output as a 2-D device array."""
    inputs = [to_graph(x, s) for x, s in zip(arrays_2d, attrs["input_shapes"])]
    out = np.asarray(apply(attrs["op"], inputs, attrs["output_shape"]), dtype=np.float32)
    return to_device_layout(out.reshape(attrs["output_shape"]), attrs["output_shape"])
