"""Exports a GPT-2-small-sized model for the import benchmark (benches/import.rs).

Run from the repository root:  /work/pyenv/bin/python models/make_gpt2_small.py

12 GPT-2 blocks (d = 768, 12 heads, MLP width 3072, causal mask) over a 1024-token sequence,
with token and position embeddings, a final LayerNorm and an LM head over a small vocabulary
(256 tokens: the vocabulary size only changes the embedding and head sizes). Exported with the
legacy exporter (opset 17) into one file, weights inside: target/bench-models/gpt2_small.onnx,
about 350 MB. The file is not committed; the benchmark tells how to make it when it is absent.
"""

from pathlib import Path

import onnx
import torch
from torch import nn

from make_blocks import Gpt2Block

SEED = 20261125
D, HEADS, LAYERS, SEQ, VOCAB = 768, 12, 12, 1024, 256
OUT = Path(__file__).resolve().parent.parent / "target" / "bench-models" / "gpt2_small.onnx"


class Gpt2Small(nn.Module):
    """Token + position embeddings, 12 blocks, final LayerNorm, LM head."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(SEQ, D)
        self.blocks = nn.ModuleList(Gpt2Block(D, HEADS, SEQ) for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, ids):
        positions = torch.arange(ids.shape[0])
        x = self.wte(ids) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def main():
    torch.manual_seed(SEED)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    model = Gpt2Small().eval()
    ids = torch.randint(0, VOCAB, (SEQ,))
    torch.onnx.export(
        model,
        (ids,),
        str(OUT),
        input_names=["ids"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(OUT))
    onnx.checker.check_model(str(OUT))
    ops = sorted({node.op_type for node in proto.graph.node})
    size = OUT.stat().st_size / 1e6
    print(f"{OUT}: {size:.0f} MB, {len(proto.graph.node)} nodes, ops {ops}")


if __name__ == "__main__":
    main()
