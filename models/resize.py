"""Adapting a checkpoint to another input size: resampling the attention bias tables once, at load time.

The bias of each attention layer is a (heads, rows, cols) table over |dy|, |dx|. For a new last-stage
grid it is resampled bicubically (as the reference fine-tuning code does) and its index rebuilt; the
exported graph never contains a Resize for it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .lsnet import attention_bias_index


def resample_bias_table(table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Resample a (heads, rows * cols) bias table to a new grid with bicubic interpolation."""
    heads = table.shape[0]
    grid = table.reshape(1, heads, *old_grid).float()
    resized = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    return resized.reshape(heads, new_grid[0] * new_grid[1]).to(table.dtype)


def resize_attention_state(state: dict[str, torch.Tensor], old_grid: tuple[int, int],
                           new_grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Return a copy of ``state`` whose attention biases cover ``new_grid`` instead of ``old_grid``.

    Handles both unfused tables (``attention_biases`` + ``attention_bias_idxs``) and fused gathered
    biases (``attention_bias``, whose first row is the table itself).
    """
    if tuple(old_grid) == tuple(new_grid):
        return dict(state)
    new_index = attention_bias_index(*new_grid)
    out = dict(state)
    for key, value in state.items():
        prefix = key.rsplit(".", 1)[0]
        if key.endswith(".attention_biases"):
            out[key] = resample_bias_table(value, old_grid, new_grid)
            out[f"{prefix}.attention_bias_idxs"] = new_index.clone()
        elif key.endswith(".attention_bias"):
            table = resample_bias_table(value[:, 0, :], old_grid, new_grid)
            out[key] = table[:, new_index]
            out[f"{prefix}.attention_bias_idxs"] = new_index.clone()
    return out
