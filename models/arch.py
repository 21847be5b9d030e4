"""Inferring an LSNet architecture from a state dict, so nobody has to name the variant.

Widths come from the patch embedding and the downsampling layers, depths from the block indices, heads
and key dims from the attention layers, the class count and distillation head from the classifier,
and the training input size from the attention bias grid. Works for fused and unfused state dicts.
"""

from __future__ import annotations

import math
import re

import torch

from ..errors import CheckpointError, LsnetDeployError, first_line
from .lsnet import ARTIST_VARIANTS, VARIANTS, stage_grids

# Input sizes people train and fine-tune at. Several share one last-stage grid (224 and 256 both give
# 4x4, 160 and 192 3x3), so a grid alone names candidates, not a size: ``infer_config`` takes the first
# as its guess, ``load_model`` asks for the recorded size or refuses to guess (``size_candidates``).
COMMON_SIZES = (224, 256, 384, 512, 128, 192, 160, 288, 320, 448, 96, 64, 576, 640)


def is_fused_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """True when the state dict comes from a re-parameterized model (plain convs, no BatchNorms)."""
    return "patch_embed.0.weight" in state and "patch_embed.0.c.weight" not in state


def _conv_weight(state: dict, prefix: str, fused: bool) -> torch.Tensor:
    key = f"{prefix}.weight" if fused else f"{prefix}.c.weight"
    if key not in state:
        raise CheckpointError(f"not an LSNet state dict: key {key!r} is missing "
                              f"(it has {len(state)} keys, starting {sorted(state)[:3]})")
    return state[key]


def _block_indices(state: dict, stage: int) -> list[int]:
    pattern = re.compile(rf"^blocks{stage + 1}\.(\d+)\.(mixer|ffn|se)\.")
    return sorted({int(m.group(1)) for k in state if (m := pattern.match(k))})


def grid_from_index(idxs: torch.Tensor) -> tuple[int, int]:
    """Recover the (rows, cols) grid from an (N, N) ``|dy| * cols + |dx|`` bias index."""
    n = idxs.shape[0]
    diag = [int(idxs[p, p - 1]) for p in range(1, n)]
    cols = next((p for p, value in enumerate(diag, start=1) if value != 1), n)
    return n // cols, cols


def image_size_for_grid(rows: int, cols: int, patch_size: int = 8) -> tuple[int, int]:
    """The most common input size whose last-stage grid is (rows, cols)."""
    def side(r: int) -> int:
        for size in COMMON_SIZES:
            if stage_grids(size, patch_size)[3][0] == r:
                return size
        return 64 * r - 32
    return side(rows), side(cols)


def size_candidates(side: int, patch_size: int = 8) -> list[int]:
    """Common input sizes (ascending) whose last-stage grid has ``side`` tokens per side."""
    return sorted(s for s in COMMON_SIZES if stage_grids(s, patch_size)[3][0] == side)


def infer_config(state: dict[str, torch.Tensor]) -> dict:
    """Constructor arguments of the LSNet that produced ``state``.

    Stages without attention have no trace of their head count, so those entries get the published
    value (3); it changes no weight and no output.

    Raises:
        CheckpointError: when the state dict is not an LSNet's or is internally inconsistent.
    """
    try:
        return _infer_config(state)
    except LsnetDeployError:
        raise
    except (IndexError, ValueError, ZeroDivisionError, RuntimeError, TypeError) as exc:
        # a tensor of the right name but the wrong rank or size (damaged or foreign weights)
        raise CheckpointError(f"not an LSNet state dict: its tensors have shapes no LSNet has "
                              f"({first_line(exc)}); check that the file is an LSNet checkpoint") from None


def _infer_config(state: dict[str, torch.Tensor]) -> dict:
    fused = is_fused_state_dict(state)
    in_chans = _conv_weight(state, "patch_embed.0", fused).shape[1]
    embed = [_conv_weight(state, "patch_embed.4", fused).shape[0]]
    for stage in range(1, 4):
        embed.append(_conv_weight(state, f"blocks{stage + 1}.1", fused).shape[0])

    depth = []
    for stage in range(4):
        indices = _block_indices(state, stage)
        first = 0 if stage == 0 else 2
        if indices and indices != list(range(first, first + len(indices))):
            raise CheckpointError(f"not an LSNet state dict: blocks{stage + 1} has block indices {indices}")
        depth.append(len(indices))

    num_heads, key_dim = [3, 3, 3, 3], [16, 16, 16, 16]
    grid = None
    if depth[3] >= 2:
        prefix = "blocks4.3.mixer.m"
        heads_key = f"{prefix}.attention_bias" if fused else f"{prefix}.attention_biases"
        if heads_key not in state:
            raise CheckpointError(f"not an LSNet state dict: attention key {heads_key!r} is missing")
        heads = state[heads_key].shape[0]
        nh_kd = _conv_weight(state, f"{prefix}.dw", fused).shape[0]
        dh = _conv_weight(state, f"{prefix}.proj.1", fused).shape[1]
        num_heads[3], key_dim[3] = heads, nh_kd // heads
        ratio = embed[3] / (key_dim[3] * heads)
        if nh_kd % heads or int(ratio * key_dim[3]) * heads != dh:
            raise CheckpointError(f"attention in blocks4 has {heads} heads, key dims {nh_kd} and value dims "
                                  f"{dh}, which no LSNet of width {embed[3]} has")
        idx_key = f"{prefix}.attention_bias_idxs"
        if idx_key in state:
            grid = grid_from_index(state[idx_key])
        else:
            n = state[heads_key].shape[-1]
            side = math.isqrt(n)
            if side * side != n:
                raise CheckpointError(f"{idx_key} is missing and {n} bias entries are not a square grid")
            grid = (side, side)

    head_key = "head.weight" if fused else "head.l.weight"
    num_classes = state[head_key].shape[0] if head_key in state else 0
    projection_key = "projection.0.weight" if fused else "projection.0.l.weight"
    feature_dim = int(state[projection_key].shape[0]) if projection_key in state else None
    return {
        "img_size": image_size_for_grid(*grid) if grid else (224, 224),
        "patch_size": 8,
        "in_chans": in_chans,
        "num_classes": num_classes,
        "embed_dim": embed,
        "key_dim": key_dim,
        "depth": depth,
        "num_heads": num_heads,
        "distillation": "head_dist.l.weight" in state,
        "feature_dim": feature_dim,
        "fused": fused,
    }


def attention_grid(config: dict) -> tuple[int, int]:
    """Last-stage token grid of a configuration."""
    return stage_grids(config["img_size"], config.get("patch_size", 8))[3]


def closest_variant(config: dict) -> str:
    """Name of the published variant whose widths and depths are nearest to ``config``."""
    def distance(name: str) -> float:
        ref = VARIANTS[name]
        return (sum(abs(a - b) for a, b in zip(ref["embed_dim"], config["embed_dim"]))
                + 32 * sum(abs(a - b) for a, b in zip(ref["depth"], config["depth"])))
    best = min(VARIANTS, key=distance)
    return f"{best}_distill" if config.get("distillation") else best


def _same_architecture(config: dict, ref: dict) -> bool:
    return (list(config["embed_dim"]) == ref["embed_dim"] and list(config["depth"]) == ref["depth"]
            and config["num_heads"][3] == ref["num_heads"][3] and config["key_dim"][3] == 16)


def matching_variant(config: dict) -> str | None:
    """Name of the named variant with exactly this architecture (any class count), else None.

    A projection (``feature_dim``) or a width only the artist family has names an artist variant
    (``lsnet_xl_artist_448`` when its input size is 448); otherwise the published name wins.
    """
    artist = config.get("feature_dim") is not None
    if not artist:
        for name, ref in VARIANTS.items():
            if _same_architecture(config, ref):
                return f"{name}_distill" if config.get("distillation") else name
    size = tuple(config.get("img_size") or (224, 224))
    for name, ref in ARTIST_VARIANTS.items():
        if _same_architecture(config, ref) and tuple(size) == (ref.get("img_size", 224),) * 2:
            return f"{name}_distill" if config.get("distillation") else name
    for name, ref in ARTIST_VARIANTS.items():
        if _same_architecture(config, ref) and "img_size" not in ref:
            return f"{name}_distill" if config.get("distillation") else name
    return None
