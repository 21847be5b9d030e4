"""Half precision that lives in the graph itself (what strongly typed TensorRT 11 and ONNX Runtime need).

The body runs in float16; GroupNorm (its statistics over 9*H*W values lose digits in float16) runs in
a float32 island, and LSNet's attention already computes its softmax in float32. Inputs and outputs
stay float32, so apps feed the same tensors at every precision.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..module_tree import replace_modules

# modules whose computation must stay float32 in a float16 graph
FLOAT32_MODULES = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


class Float32Island(nn.Module):
    """Runs a module in float32 and casts its output back to the input's dtype."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.float()).to(x.dtype)


class HalfPrecisionModel(nn.Module):
    """float32 in, float16 body, float32 out: the one float16 wrapper every format uses."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x.half())
        if isinstance(out, (tuple, list)):  # multi-output models (backbones, logits and embedding)
            return type(out)(o.float() for o in out)
        return out.float()


def half_precision_model(model: nn.Module, float32_islands: bool = True) -> HalfPrecisionModel:
    """A float16 copy of ``model`` behind float32 inputs and outputs.

    Args:
        model: the model (not modified).
        float32_islands: keep normalization statistics (``FLOAT32_MODULES``) in float32. XNNPACK programs
            turn it off: each cast would split the delegate, and its float16 kernels accumulate in float32.
    """
    body = copy.deepcopy(model).half()
    if float32_islands:
        replace_modules(body, lambda m: Float32Island(m) if isinstance(m, FLOAT32_MODULES) else None, inplace=True)
    return HalfPrecisionModel(body).eval()
