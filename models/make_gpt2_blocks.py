"""Exports the float-input GPT-2 models for the compile-time and roofline benchmarks.

Run from the repository root:  /work/pyenv/bin/python models/make_gpt2_blocks.py

Writes two files (not committed; the benchmark tells how to make them when absent):

- target/bench-models/gpt2_small_blocks.onnx: 12 GPT-2 blocks (d = 768, 12 heads, MLP width
  3072, causal mask, LayerNorm parameters drawn away from ones and zeros) and a final LayerNorm
  over a float input x [1024, 768]. This is the
  GPT-2-small-sized graph without the token embedding (whose I64 ids cannot live on a bf16
  device), for `cargo bench --bench compile` (group gpt2_small_blocks).
- target/bench-models/gpt2_block_1024.onnx: one such block at seq 1024, d 768, for
  `ttfuse compare FILE --json` (fused time against the roofline bound).
"""

from pathlib import Path

import onnx
import torch
from torch import nn

from make_blocks import Gpt2Block

SEED = 20261125
D, HEADS, LAYERS, SEQ = 768, 12, 12, 1024
DIR = Path(__file__).resolve().parent.parent / "target" / "bench-models"


class Gpt2Blocks(nn.Module):
    """`layers` GPT-2 blocks, then a final LayerNorm when `final_norm`."""

    def __init__(self, layers, final_norm):
        super().__init__()
        self.blocks = nn.ModuleList(Gpt2Block(D, HEADS, SEQ) for _ in range(layers))
        self.ln_f = nn.LayerNorm(D) if final_norm else nn.Identity()

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)


def train_like_norms(model):
    """Gives every LayerNorm a gamma and beta away from PyTorch's initial ones and zeros, as a
    trained model has (a gamma of ones needs no multiply, which would flatter the unfused
    baseline)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    return model


def export(model, out):
    """Exports `model` on a [SEQ, D] float input to `out` and checks the file."""
    x = torch.randn(SEQ, D)
    torch.onnx.export(
        model.eval(),
        (x,),
        str(out),
        input_names=["x"],
        output_names=["y"],
        opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(str(out))
    proto = onnx.load(str(out))
    size = out.stat().st_size / 1e6
    print(f"{out}: {size:.0f} MB, {len(proto.graph.node)} nodes")


def main():
    torch.manual_seed(SEED)
    DIR.mkdir(parents=True, exist_ok=True)
    export(train_like_norms(Gpt2Blocks(LAYERS, True)), DIR / "gpt2_small_blocks.onnx")
    export(train_like_norms(Gpt2Blocks(1, False)), DIR / "gpt2_block_1024.onnx")


if __name__ == "__main__":
    main()
