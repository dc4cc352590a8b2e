"""Pre-softmax logits of the onnx package's light CNN models, for tests/import_onnx_light.rs.

Run from the repository root:  /work/pyenv/bin/python models/make_onnx_light.py

The light models' weights are constants, so their softmax outputs (the `*_output_0.pb` files
shipped with onnx) are nearly uniform and say little about the numbers before them. For each
model ending in Softmax this writes the Softmax's input, computed by onnxruntime (CPU) on the
input onnx's backend runner uses (`arange(n).reshape(shape) / n`, f32), to
models/onnx_light/<model>.npy, named after the ONNX value in models/onnx_light/<model>.txt.
"""

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

LIGHT = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"
OUT = Path(__file__).resolve().parent / "onnx_light"


def runner_input(value_info):
    shape = tuple(d.dim_value for d in value_info.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    for path in sorted(LIGHT.glob("*.onnx")):
        model = onnx.load(str(path))
        graph = model.graph
        softmax = [n for n in graph.node if n.op_type == "Softmax" and n.output[0] == graph.output[0].name]
        if not softmax:
            print(f"{path.stem}: no final Softmax, its stored output is checked as is")
            continue
        logits = softmax[0].input[0]
        defined = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
        feeds = {i.name: runner_input(i) for i in graph.input if i.name not in defined}
        graph.output.append(onnx.helper.make_empty_tensor_value_info(logits))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (value,) = session.run([logits], feeds)
        np.save(OUT / f"{path.stem}.npy", value.astype(np.float32))
        (OUT / f"{path.stem}.txt").write_text(logits + "\n")
        print(f"{path.stem}: {logits} {value.shape}, range [{value.min():.4g}, {value.max():.4g}]")


if __name__ == "__main__":
    main()
