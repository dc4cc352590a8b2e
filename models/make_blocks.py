"""Exports the transformer and CNN blocks of issues 5 and 6 from PyTorch.

Run from the repository root:  /work/pyenv/bin/python models/make_blocks.py

Each block is written as models/<name>/model.onnx with seeded inputs and onnxruntime outputs,
by make_models.export (legacy exporter, opset 17, one file). The blocks are written the way
their reference implementations write them, so the ONNX graphs have the exporters' real forms
(LayerNormalization, Erf-based GELU, Pow/ReduceMean/Sqrt/Div RMSNorm, x * sigmoid(x) SiLU,
rotary embeddings with Slice/Neg/Concat, a causal mask through Where, Conv/BatchNormalization).
"""

import math

import numpy as np
import torch
from torch import nn

from make_models import SEED, export


class CausalSelfAttention(nn.Module):
    """GPT-2 attention: fused QKV projection, heads, causal mask, output projection."""

    def __init__(self, d, heads, seq):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.register_buffer("mask", torch.tril(torch.ones(seq, seq, dtype=torch.bool)))

    def forward(self, x):
        seq, d = x.shape
        hd = d // self.heads
        q, k, v = self.c_attn(x).split(d, dim=1)
        q = q.view(seq, self.heads, hd).transpose(0, 1)
        k = k.view(seq, self.heads, hd).transpose(0, 1)
        v = v.view(seq, self.heads, hd).transpose(0, 1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~self.mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(0, 1).reshape(seq, d)
        return self.c_proj(y)


class Gpt2Block(nn.Module):
    """x + attn(ln_1(x)); then + mlp(ln_2(.)) with a GELU (erf) MLP of width 4d."""

    def __init__(self, d, heads, seq):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads, seq)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class RmsNorm(nn.Module):
    """LLaMA's RMSNorm as its reference code writes it."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d) + 0.1 * torch.randn(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    """RMSNorm, rotary-embedded causal attention, RMSNorm, SiLU-gated MLP, two residuals."""

    def __init__(self, d, heads, hidden, seq):
        super().__init__()
        self.heads = heads
        self.attention_norm = RmsNorm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RmsNorm(d)
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)
        hd = d // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        angles = torch.outer(torch.arange(seq).float(), inv)
        emb = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.full((seq, seq), float("-inf")).triu(1))

    def forward(self, x):
        seq, d = x.shape
        hd = d // self.heads
        h = self.attention_norm(x)
        q = self.wq(h).view(seq, self.heads, hd).transpose(0, 1)
        k = self.wk(h).view(seq, self.heads, hd).transpose(0, 1)
        v = self.wv(h).view(seq, self.heads, hd).transpose(0, 1)
        q = q * self.cos + rotate_half(q) * self.sin
        k = k * self.cos + rotate_half(k) * self.sin
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + self.mask
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(0, 1).reshape(seq, d)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.w2(nn.functional.silu(self.w1(h)) * self.w3(h))


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU, conv-BN, identity residual, ReLU."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.normal_(0.0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.normal_(0.0, 0.1)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + x)


def main():
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 1)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    export("gpt2_block", Gpt2Block(128, 2, 64), {"x": rand(64, 128)})
    export("llama_block", LlamaBlock(128, 2, 256, 64), {"x": rand(64, 128)})
    # Without the exporter's constant folding the graph keeps BatchNormalization: folding it into
    # the conv weights is the optimizer's job.
    export("resnet_block", BasicBlock(32), {"x": rand(1, 32, 16, 16)}, fold_constants=False)


if __name__ == "__main__":
    main()
