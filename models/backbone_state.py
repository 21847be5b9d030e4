"""State dicts as backbones take them: detector checkpoints unwrapped, classifier heads set aside.

mmdetection and mmsegmentation save ``{"meta": ..., "state_dict": {...}}`` with the backbone under ``backbone.``
and the neck and heads beside it; a classification checkpoint has the backbone at the top level and its head
(``head``, ``head_dist``, ``projection``) beside it. Either way the backbone keeps its own keys and the rest is
reported, counted per top-level module, in one line.
"""

from __future__ import annotations

import collections

import torch
from torch.nn import functional as F

from .lsnet import attention_bias_index

#: where mmdetection / mmsegmentation keep the backbone's weights
DETECTOR_PREFIX = "backbone."
#: the classifier's modules a backbone does not have
HEAD_MODULES = ("head", "head_dist", "projection")


def is_detector_state(state: dict[str, torch.Tensor]) -> bool:
    """True for a detector or segmenter state dict: LSNet weights under ``backbone.``."""
    return f"{DETECTOR_PREFIX}patch_embed.0.c.weight" in state or f"{DETECTOR_PREFIX}patch_embed.0.weight" in state


def _count(keys) -> dict[str, int]:
    return dict(collections.Counter(key.split(".", 1)[0] for key in keys))


def backbone_of_detector(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(the ``backbone.`` weights with the prefix stripped, the other keys counted by top-level module)."""
    backbone = {k[len(DETECTOR_PREFIX):]: v for k, v in state.items() if k.startswith(DETECTOR_PREFIX)}
    return backbone, _count(k for k in state if not k.startswith(DETECTOR_PREFIX))


def without_head(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(``state`` without the classifier's head and projection, the dropped keys counted by module)."""
    dropped = [k for k in state if k.split(".", 1)[0] in HEAD_MODULES]
    return {k: v for k, v in state.items() if k not in dropped}, _count(dropped)


def ignored_note(counts: dict[str, int], where: str) -> str | None:
    """``ignored 12 keys outside the backbone (neck: 8, bbox_head: 4)``, or None when nothing was ignored."""
    if not counts:
        return None
    total = sum(counts.values())
    parts = ", ".join(f"{name}: {n}" for name, n in counts.items())
    return f"ignored {total} key{'s' if total != 1 else ''} {where} ({parts})"


def tables_at(state: dict[str, torch.Tensor], old_grid: tuple[int, int],
              new_grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Attention tables resized to ``new_grid`` the way the reference detection code's ``init_weights`` does.

    Each (heads, S1 * S1) ``attention_biases`` is viewed as (1, heads, S1, S1) and resized bicubically; the old
    ``attention_bias_idxs`` are dropped (the model builds those of its own grid). A fused state dict's gathered
    ``attention_bias`` gives its table from row 0 and is gathered again for the new grid.
    """
    out = {k: v for k, v in state.items() if not k.endswith(".attention_bias_idxs")}
    index = attention_bias_index(*new_grid)
    for key, value in state.items():
        fused = key.endswith(".attention_bias")
        if not (fused or key.endswith(".attention_biases")):
            continue
        table = value[:, 0, :] if fused else value
        heads = table.shape[0]
        resized = F.interpolate(table.reshape(1, heads, *old_grid).float(), size=tuple(new_grid), mode="bicubic",
                                align_corners=False).reshape(heads, -1).to(value.dtype)
        out[key] = resized[:, index] if fused else resized
    return out
