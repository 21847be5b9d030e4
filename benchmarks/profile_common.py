"""What the profile scripts share: LSNet's stages, FLOP counts, and table printing.

A stage is one top-level part of the network: ``patch_embed``, ``blocks1`` .. ``blocks4`` (empty ones are
skipped) and ``head`` (pooling, projection, classifier). MobileNetV3's stages (timm names) are ``stem``
(conv_stem, bn1), ``blocks.0`` .. ``blocks.6`` and ``head`` (pooling, conv_head, classifier).

FLOPs count multiply-adds of convolutions and matrix products as two operations (torch's
``FlopCounterMode`` convention); elementwise operations are not counted, so GFLOP/s says how fast the
arithmetic that matters ran, and a stage dominated by elementwise work shows a low figure.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

LSNET_STAGES = ("patch_embed", "blocks1", "blocks2", "blocks3", "blocks4", "head")


class LSNetHead(nn.Module):
    """Global pooling, projection and classifier of an LSNet, as one module (the ``head`` stage)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(x)


def lsnet_stages(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, example input) for each non-empty stage of ``model``, inputs from a forward of ``x``."""
    stages = []
    with torch.no_grad():
        for name in LSNET_STAGES:
            module = LSNetHead(model) if name == "head" else getattr(model, name)
            if isinstance(module, nn.Sequential) and len(module) == 0:
                continue
            stages.append((name, module.eval(), x))
            x = module(x)
    return stages


def flops(module: nn.Module, x: torch.Tensor) -> int:
    """Convolution and matmul FLOPs (2 per multiply-add) of one forward of ``module`` on ``x``."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return counter.get_total_flops()


def print_table(headers: Sequence[str], rows: Iterable[Sequence], title: str = "") -> None:
    """A plain aligned table; floats get 3 significant decimals' worth of formatting by magnitude."""
    def fmt(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    body = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in body:
        print("  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
