"""LSNet as a backbone: the stage feature maps (timm's ``features_only``) at any input size.

Detection and segmentation code uses LSNet without its head: four maps out, strides 8, 16, 32, 64, at whatever
size the images have. The one size-dependent part is the attention bias of the last stage, a table over token
offsets learnt for one grid. Two ways of carrying it to another grid exist, and checkpoints depend on which one
they were trained with (``BIAS_MODES``):

* ``table`` (this project's, the default for classification checkpoints): the (heads, rows, cols) offset table
  is resampled bicubically to the new grid and its index rebuilt, as the reference fine-tuning code does when
  it changes the input size;
* ``matrix`` (the reference detection and segmentation code): tables are built at 14x14 whatever the input
  size, and the gathered (heads, N0, N0) bias itself is resized bicubically, as an image, to the (N, N) of the
  actual grid at every forward. Detector and segmenter checkpoints need it.

Exports freeze the bias of the exported grid into a constant (``freeze_token_grids``), so no graph resizes it;
exports with dynamic height and width (``matrix`` mode only) keep the resize in the graph instead
(``dynamic_token_grids``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from ..module_tree import replace_modules
from .lsnet import Attention, LSNet, attention_bias_index, attention_core, stage_grids, to_2tuple
from .ska import SKA

#: how an attention bias reaches a grid other than the one it was learnt on (module docstring)
BIAS_MODES = ("table", "matrix")
#: the table grid of every attention layer the reference detection code builds
DETECTION_GRID = (14, 14)
#: output stride of each stage (patch embedding 8, then one stride-2 downsampling per stage)
STAGE_REDUCTIONS = (8, 16, 32, 64)
STAGES = 4
#: SKA forms that gather a grid-specific index, so a graph with dynamic height and width cannot use them
GRID_SPECIFIC_SKA = ("banded_matmul", "hybrid", "hybrid_taps")
#: the grid-independent form ``--ska auto`` takes instead for dynamic height and width
DYNAMIC_HW_SKA = "onehot_conv"


def resample_matrix(gathered: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``matrix`` mode: the (heads, N0, N0) bias resized bicubically, as an image, to the (N, N) of ``grid``."""
    n = grid[0] * grid[1]
    if gathered.shape[-1] == n:
        return gathered
    return F.interpolate(gathered[None], size=(n, n), mode="bicubic", align_corners=False)[0]


def resample_table(table: torch.Tensor, native: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """``table`` mode: the (heads, rows * cols) offset table learnt on ``native`` resampled bicubically to
    ``grid``, then gathered into the (heads, N, N) bias of that grid."""
    heads = table.shape[0]
    if tuple(native) != tuple(grid):
        table = F.interpolate(table.reshape(1, heads, *native), size=grid, mode="bicubic",
                              align_corners=False).reshape(heads, grid[0] * grid[1])
    return table[:, attention_bias_index(*grid).to(table.device)]


class GridAttention(Attention):
    """LSNet attention whose bias follows the token grid of each input (``bias_mode`` says how).

    Its parameters and buffers are those of ``Attention`` for its own ``resolution``, so checkpoints load
    unchanged; ``for_grid`` gives the plain fused ``Attention`` of one grid, which exporters take.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: int | Sequence[int] = 14, bias_mode: str = "table", fused: bool = False):
        super().__init__(dim, key_dim, num_heads, attn_ratio, resolution, fused=fused)
        self.bias_mode = check_bias_mode(bias_mode)

    def bias_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The (heads, N, N) bias of a (rows, cols) token grid."""
        grid = tuple(grid)
        if grid == self.resolution:
            return self.bias()
        if self.bias_mode == "matrix":
            return resample_matrix(self.bias(), grid)
        # row 0 of the gathered bias is the offset table itself (offset q of point 0 is point q)
        table = self.bias()[:, 0, :] if self.fused else self.attention_biases
        return resample_table(table, self.resolution, grid)

    @torch.no_grad()
    def fuse(self) -> "GridAttention":
        """Fused copy (see ``Attention.fuse``) that still follows the grid of each input."""
        if self.fused:
            return self
        plain = super().fuse()
        fused = GridAttention(self.dim, self.key_dim, self.num_heads, self.attn_ratio, self.resolution,
                              self.bias_mode, fused=True).to(plain.attention_bias)
        fused.load_state_dict(plain.state_dict())
        return fused

    @torch.no_grad()
    def for_grid(self, grid: tuple[int, int]) -> Attention:
        """The plain fused ``Attention`` of one token grid: its bias computed here, once.

        Fused even for ``--no-fuse`` exports: the ``matrix`` mode's resized (N, N) bias has no offset-table
        form, so the gathered bias buffer of a fused attention is the only place it fits.
        """
        source = self.fuse()
        fixed = Attention(self.dim, self.key_dim, self.num_heads, self.attn_ratio, grid,
                          fused=True).to(source.attention_bias)
        for name in ("qkv", "dw", "proj"):
            setattr(fixed, name, getattr(source, name))
        fixed.attention_bias.copy_(source.bias_for(grid))
        return fixed

    def extra_repr(self) -> str:
        return f"bias_mode={self.bias_mode!r}, resolution={self.resolution}"


def check_bias_mode(mode: str) -> str:
    """Return ``mode`` if it is one of ``BIAS_MODES``, else raise UsageError naming them."""
    if mode not in BIAS_MODES:
        raise UsageError(f"unknown attention bias mode {mode!r}; choose {' or '.join(BIAS_MODES)}")
    return mode


def normalize_out_indices(out_indices: Sequence[int]) -> tuple[int, ...]:
    """Stage indices as sorted non-negative ints (timm allows negatives: -1 is the last stage).

    Raises:
        UsageError: an empty, repeated or out-of-range index.
    """
    try:
        indices = [int(i) for i in out_indices]
    except (TypeError, ValueError):
        raise UsageError(f"out_indices {out_indices!r} must be stage numbers 0..3, e.g. (0, 1, 2, 3)") from None
    bad = [i for i in indices if not -STAGES <= i < STAGES]
    if bad or not indices:
        what = f"names stage {bad[0]}" if bad else "is empty"
        raise UsageError(f"out_indices {tuple(indices)} {what}, but LSNet has stages 0 to 3 (strides "
                         f"{', '.join(map(str, STAGE_REDUCTIONS))}); pick from 0, 1, 2, 3")
    normalized = [i % STAGES for i in indices]
    if len(set(normalized)) != len(normalized):
        raise UsageError(f"out_indices {tuple(indices)} names a stage twice; list each stage once")
    return tuple(sorted(normalized))


class FeatureInfo(list):
    """timm's ``feature_info`` of a features_only model: one dict per returned stage, with accessors.

    Each entry has ``num_chs``, ``reduction``, ``module`` and ``index`` (the stage number); ``channels()``,
    ``reduction()`` and ``module_name()`` give one field for every returned stage (or stage ``idx``).
    """

    def __init__(self, entries: Sequence[dict]):
        super().__init__(dict(e) for e in entries)

    @property
    def out_indices(self) -> tuple[int, ...]:
        """The stage numbers returned."""
        return tuple(e["index"] for e in self)

    def get(self, key: str, idx: int | None = None):
        """Field ``key`` of every entry, or of entry ``idx``."""
        return [e[key] for e in self] if idx is None else self[idx][key]

    def channels(self, idx: int | None = None):
        """Channel count of each returned stage (or of entry ``idx``)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | None = None):
        """Output stride of each returned stage (or of entry ``idx``)."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | None = None):
        """Module producing each returned stage (``blocks1``..``blocks4``), or of entry ``idx``."""
        return self.get("module", idx)

    def get_dicts(self) -> list[dict]:
        """The entries as plain dicts."""
        return [dict(e) for e in self]


class LSNetBackbone(LSNet):
    """LSNet without its head, returning the maps of ``out_indices`` (timm's ``features_only``).

    Module and parameter names are the classifier's minus the head, so the reference detection code's
    backbone checkpoints, and classification checkpoints without their head, load unchanged.

    Args:
        out_indices: stages to return (0..3; strides 8, 16, 32, 64), in stage order.
        bias_mode: how the attention bias reaches each input's grid (``BIAS_MODES``).
        attention_grid: the grid the attention tables are defined on; default the last-stage grid of
            ``img_size`` (``DETECTION_GRID`` for reference detection checkpoints).
        **kwargs: ``LSNet`` arguments (``img_size`` is the default export size; any input size runs).
    """

    def __init__(self, *, out_indices: Sequence[int] = (0, 1, 2, 3), bias_mode: str = "table",
                 attention_grid: Sequence[int] | None = None, **kwargs):
        self.out_indices = normalize_out_indices(out_indices)
        self.bias_mode = check_bias_mode(bias_mode)
        for key in ("num_classes", "distillation", "feature_dim"):
            kwargs.pop(key, None)
        super().__init__(num_classes=0, **kwargs)
        grid = to_2tuple(attention_grid) if attention_grid is not None else stage_grids(self.img_size, self.patch_size)[3]
        self.attention_grid = grid
        replace_modules(self, lambda m: _grid_attention(m, grid, self.bias_mode), inplace=True)
        self.set_ska(kwargs.get("ska", "auto"))
        self.feature_info = FeatureInfo(
            {"num_chs": self.embed_dim[i], "reduction": STAGE_REDUCTIONS[i], "module": f"blocks{i + 1}", "index": i}
            for i in self.out_indices)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this backbone (``ska`` excluded)."""
        config = {k: v for k, v in super().config.items() if k not in ("num_classes", "distillation", "feature_dim")}
        return {**config, "out_indices": list(self.out_indices), "bias_mode": self.bias_mode,
                "attention_grid": list(self.attention_grid)}

    @property
    def output_names(self) -> list[str]:
        """Artifact output names: ``stage1``..``stage4`` for the returned stages."""
        return [f"stage{i + 1}" for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps of ``out_indices``, in stage order; later stages are not computed."""
        x = self.patch_embed(x)
        outputs = []
        for index, stage in enumerate((self.blocks1, self.blocks2, self.blocks3, self.blocks4)):
            if index > self.out_indices[-1]:
                break
            x = stage(x)
            if index in self.out_indices:
                outputs.append(x)
        return outputs


def _grid_attention(module: nn.Module, grid: tuple[int, int], mode: str) -> nn.Module | None:
    """The GridAttention replacing an attention layer; None for every other module."""
    if isinstance(module, Attention) and not isinstance(module, GridAttention):
        return GridAttention(module.dim, module.key_dim, module.num_heads, module.attn_ratio, grid, mode,
                             fused=module.fused)
    return None


@torch.no_grad()
def freeze_token_grids(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Fix every grid-dependent module of ``model`` (in place) to the grids ``example`` produces.

    Runs ``model`` once, then replaces each ``GridAttention`` by the plain fused ``Attention`` of the grid
    it saw (its bias a constant computed here, so no exported graph resizes it) and gives each ``SKA`` the
    grid it saw (the banded forms precompute their gather index for it). Modules that did not run are kept.

    Returns:
        ``model``.
    """
    seen: dict[nn.Module, tuple[int, int]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault(module, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, (GridAttention, SKA))]
    try:
        model(example)
    finally:
        for hook in hooks:
            hook.remove()
    for module, grid in seen.items():
        if isinstance(module, SKA) and module.resolution != grid:
            module.resolution = grid
            module.set_form(module.form)
    replace_modules(model, lambda m: m.for_grid(seen[m]) if isinstance(m, GridAttention) and m in seen else None,
                    inplace=True)
    return model


class DynamicGridAttention(nn.Module):
    """A fused ``matrix``-mode attention whose bias is resized in the graph at every forward.

    What exports with dynamic height and width carry: the gathered (heads, N0, N0) bias of the table grid is
    a constant, and ``F.interpolate(mode="bicubic", align_corners=False)`` (ONNX: Resize, cubic, a = -0.75,
    half_pixel, no antialias) brings it to the (N, N) of each input's grid, as the reference detection code
    does. At N = N0 that resize is the identity.
    """

    def __init__(self, attention: GridAttention):
        super().__init__()
        source = attention.fuse()
        self.num_heads, self.nh_kd, self.dh = source.num_heads, source.nh_kd, source.dh
        self.qkv, self.dw, self.proj = source.qkv, source.dw, source.proj
        self.register_buffer("attention_bias", source.bias().detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        n = x.shape[-2] * x.shape[-1]
        bias = F.interpolate(self.attention_bias[None], size=(n, n), mode="bicubic", align_corners=False)[0]
        return self.proj(attention_core(self.dw(q), k, v, bias, self.num_heads))


def dynamic_token_grids(model: nn.Module) -> nn.Module:
    """Make every grid-dependent module of ``model`` (in place) follow the grid of each input in a graph
    with dynamic height and width: ``matrix``-mode attention becomes ``DynamicGridAttention`` and SKA drops
    its grid (the forms allowed here need none).

    Raises:
        UsageError: ``table``-mode attention or a plain (classifier) attention, whose bias is tied to one grid,
            or an SKA form that gathers a grid-specific index.
    """
    for module in model.modules():
        if isinstance(module, GridAttention) and module.bias_mode != "matrix":
            raise UsageError("--dynamic-hw needs --bias-mode matrix: the table mode resamples the offset table "
                             "for one grid at build time; export with --bias-mode matrix or a fixed --imgsz")
        if isinstance(module, Attention) and not isinstance(module, GridAttention):
            raise UsageError("--dynamic-hw exports backbones only (--task features --bias-mode matrix): a "
                             "classifier's attention bias table is tied to one token grid")
        if isinstance(module, SKA) and module.form in GRID_SPECIFIC_SKA:
            raise UsageError(f"--dynamic-hw cannot take --ska {module.form} (it gathers a grid-specific index); "
                             f"use --ska auto, onehot_conv, shifted_slices or tap_slices")
    for module in model.modules():
        if isinstance(module, SKA):
            module.resolution = None
            module.set_form(module.form)
    replace_modules(model, lambda m: DynamicGridAttention(m) if isinstance(m, GridAttention) else None,
                    inplace=True)
    return model
