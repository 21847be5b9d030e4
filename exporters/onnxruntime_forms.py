"""Module rewrites applied before exporting for ONNX Runtime; each computes exactly what it replaces.

ONNX Runtime's CPU provider pays per operator (a thread-pool wake-up when spinning is off) and per layout
change around operators it cannot run blocked. LSNet's attention splits q, k, v and runs a depthwise
convolution on q alone, which costs a split, two layout reorders and a small convolution per block. Running
one depthwise convolution over all of q, k and v (identity kernels on k and v) keeps the chain
convolution -> convolution in the blocked layout and drops those operators (about 4% of LSNet-T's latency,
measured with benchmarks/bench_onnx.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.lsnet import Attention, attention_core
from ..module_tree import replace_modules


class SingleDepthwiseAttention(nn.Module):
    """A fused LSNet Attention whose depthwise convolution covers q, k and v together."""

    def __init__(self, attention: Attention):
        super().__init__()
        if not attention.fused:
            raise ValueError("SingleDepthwiseAttention rewrites fused attention only")
        self.num_heads, self.key_dim, self.d = attention.num_heads, attention.key_dim, attention.d
        self.nh_kd, self.dh = attention.nh_kd, attention.dh
        self.qkv = attention.qkv
        self.proj = attention.proj
        channels = self.qkv.out_channels
        dw = attention.dw
        self.qkv_dw = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=True).to(dw.weight)
        with torch.no_grad():
            weight = torch.zeros_like(self.qkv_dw.weight)
            weight[:, 0, 1, 1] = 1.0
            weight[: self.nh_kd] = dw.weight
            bias = torch.zeros_like(self.qkv_dw.bias)
            bias[: self.nh_kd] = dw.bias
            self.qkv_dw.weight.copy_(weight)
            self.qkv_dw.bias.copy_(bias)
        self.register_buffer("attention_bias", attention.attention_bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_dw(self.qkv(x)).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        return self.proj(attention_core(q, k, v, self.attention_bias, self.num_heads))


def rewrite_for_onnxruntime(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every fused Attention replaced by SingleDepthwiseAttention."""
    return replace_modules(model, lambda m: SingleDepthwiseAttention(m)
                           if isinstance(m, Attention) and m.fused else None)
