"""SKA (small-kernel aggregation) in interchangeable, export-friendly formulations.

Given features ``x`` of shape (B, C, H, W) and per-pixel kernels ``w`` of shape (B, C/8, 9, H, W),
SKA computes, with zero padding 1::

    out[b, c, h, v] = sum_{i, j in 0..2} xpad[b, c, h + i, v + j] * w[b, c mod (C/8), 3 i + j, h, v]

Channel ``c`` uses kernel group ``c mod G`` (G = C/8), so channels c, c + G, c + 2G, ... share one
dynamic kernel. The reference code computes this with a Triton CUDA kernel that neither runs on a CPU
nor exports. Each form below computes the same function; they differ only in which operators they use,
and therefore in how fast each runtime runs them. No form builds a tensor of rank above 5 (Core ML's
limit). ``SKA_FORMS`` lists them by name.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .triton_ska import ska_triton


def _check(x: torch.Tensor, w: torch.Tensor) -> tuple[int, int, int, int, int]:
    b, c, h, wd = x.shape
    groups = w.shape[1]
    if c % groups or w.shape[2] != 9 or w.shape[3:] != x.shape[2:]:
        raise ValueError(f"SKA expects x (B, C, H, W) and w (B, C/8, 9, H, W); got {tuple(x.shape)} "
                         f"and {tuple(w.shape)}")
    return b, c, h, wd, groups


def ska_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Straight from the definition: unfold, repeat the kernels over channels, multiply, sum the taps."""
    b, c, h, wd, groups = _check(x, w)
    patches = F.unfold(x, kernel_size=3, padding=1).view(b, c, 9, h, wd)
    kernels = w.repeat(1, c // groups, 1, 1, 1)
    return (patches * kernels).sum(dim=2)


def ska_unfold_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Unfold (im2col), then one batched matmul per pixel and kernel group: (8 x 9) @ (9 x 1)."""
    b, c, h, wd, groups = _check(x, w)
    n = h * wd
    share = c // groups
    # unfolded row c * 9 + k with c = s * G + g regroups as (B, s, G, tap, pixel)
    patches = F.unfold(x, kernel_size=3, padding=1).view(b, share, groups, 9, n)
    patches = patches.permute(0, 2, 4, 1, 3)  # (B, G, N, s, 9)
    kernels = w.reshape(b, groups, 9, n).permute(0, 1, 3, 2).unsqueeze(-1)  # (B, G, N, 9, 1)
    out = torch.matmul(patches, kernels).squeeze(-1)  # (B, G, N, s)
    return out.permute(0, 3, 1, 2).reshape(b, c, h, wd)


def _onehot_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Depthwise weights (9C, 1, 3, 3) whose output channel 9c + k copies tap k of input channel c."""
    taps = torch.eye(9, dtype=dtype, device=device).view(9, 1, 3, 3)
    return taps.repeat(channels, 1, 1, 1)


def ska_onehot_conv(x: torch.Tensor, w: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
    """Unfold as a fixed one-hot depthwise convolution (C -> 9C), then multiply and sum the taps."""
    b, c, h, wd, groups = _check(x, w)
    if onehot is None:
        onehot = _onehot_kernel(c, x.dtype, x.device)
    patches = F.conv2d(x, onehot, padding=1, groups=c)  # (B, 9C, H, W), channel 9c + k
    patches = patches.view(b, c // groups, groups * 9, h, wd)
    prod = patches * w.reshape(b, 1, groups * 9, h, wd)
    return prod.view(b, c, 9, h, wd).sum(dim=2)


def ska_shifted_slices(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Nine shifted slices of the padded input, each scaled by its tap's kernel and accumulated."""
    b, c, h, wd, groups = _check(x, w)
    xpad = F.pad(x, (1, 1, 1, 1)).view(b, c // groups, groups, h + 2, wd + 2)
    out = None
    for k in range(9):
        i, j = divmod(k, 3)
        term = xpad[:, :, :, i:i + h, j:j + wd] * w[:, :, k].unsqueeze(1)
        out = term if out is None else out + term
    return out.reshape(b, c, h, wd)


def banded_index(h: int, w: int) -> torch.Tensor:
    """(HW, HW) gather index building SKA's banded matrix from flattened kernels plus one zero slot.

    Entry [q, p] is ``k * HW + p`` when input position q is tap k of output position p, else ``9 * HW``
    (the appended zero).
    """
    hw = h * w
    index = torch.full((hw, hw), 9 * hw, dtype=torch.long)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    positions = torch.arange(hw)
    for k in range(9):
        r, c = rows + k // 3 - 1, cols + k % 3 - 1
        valid = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        index[(r * w + c)[valid], positions[valid]] = k * hw + positions[valid]
    return index


def ska_banded_matmul(x: torch.Tensor, w: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """SKA as one matrix product per kernel group: x (8 x HW) @ M_g (HW x HW), M_g banded, gathered from w.

    Few, large operators instead of a 9x unfold: fast on runtimes with a high per-operator cost, but
    M_g grows with (HW)^2, so it suits small token grids (LSNet's later stages) only.
    """
    b, c, h, wd, groups = _check(x, w)
    hw = h * wd
    if index is None or index.shape[0] != hw:
        index = banded_index(h, wd).to(x.device)
    flat = F.pad(w.reshape(b, groups, 9 * hw), (0, 1))
    banded = flat[:, :, index]  # (B, G, HW, HW)
    rows = x.reshape(b, c // groups, groups, hw).transpose(1, 2)  # (B, G, s, HW)
    return torch.matmul(rows, banded).transpose(1, 2).reshape(b, c, h, wd)


# Token grids up to this many positions use the banded form in the hybrid forms; larger ones another form.
HYBRID_MAX_POSITIONS = 64


def ska_hybrid(x: torch.Tensor, w: torch.Tensor, onehot: torch.Tensor | None = None,
               index: torch.Tensor | None = None) -> torch.Tensor:
    """banded_matmul on small grids (at most HYBRID_MAX_POSITIONS positions), onehot_conv on larger ones."""
    if x.shape[2] * x.shape[3] <= HYBRID_MAX_POSITIONS:
        return ska_banded_matmul(x, w, index)
    return ska_onehot_conv(x, w, onehot)


def ska_tap_slices(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Shifted slices with the kernels read tap-major: one transpose of ``w`` instead of a select per tap.

    Every operator is a slice, a broadcast multiply or an add, which XNNPACK delegates whole (a
    ``select`` is not); exporters that own LKP's last convolution fold the transpose into its row order.
    """
    b, c, h, wd, groups = _check(x, w)
    xpad = F.pad(x, (1, 1, 1, 1)).view(b, c // groups, groups, h + 2, wd + 2)
    taps = w.transpose(1, 2)  # (B, 9, G, H, W): tap k of every group is one contiguous slice
    out = None
    for k in range(9):
        i, j = divmod(k, 3)
        term = xpad[:, :, :, i:i + h, j:j + wd] * taps[:, k:k + 1]
        out = term if out is None else out + term
    return out.reshape(b, c, h, wd)


def ska_hybrid_taps(x: torch.Tensor, w: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """banded_matmul on small grids (at most HYBRID_MAX_POSITIONS positions), tap_slices on larger ones.

    Under ONNX Runtime int8 it skips gathering the 14x14 grid's 196 x 196 band per group and ran 4% faster
    than banded_matmul, but its chain of requantized multiply-adds costs accuracy (docs/ska_forms.md)."""
    if x.shape[2] * x.shape[3] <= HYBRID_MAX_POSITIONS:
        return ska_banded_matmul(x, w, index)
    return ska_tap_slices(x, w)


SKA_FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "reference": ska_reference,
    "unfold_matmul": ska_unfold_matmul,
    "onehot_conv": ska_onehot_conv,
    "shifted_slices": ska_shifted_slices,
    "banded_matmul": ska_banded_matmul,
    "hybrid": ska_hybrid,
    "tap_slices": ska_tap_slices,
    "hybrid_taps": ska_hybrid_taps,
    "triton": ska_triton,
}
"""Every SKA formulation by name. ``triton`` needs CUDA tensors and the triton package."""

EXPORTABLE_SKA_FORMS = ("reference", "unfold_matmul", "onehot_conv", "shifted_slices", "banded_matmul", "hybrid",
                        "tap_slices", "hybrid_taps")
"""The forms made of standard operators (everything but ``triton``)."""


def check_ska_form(name: str) -> str:
    """Return ``name`` if it is a known SKA form (or ``auto``), else raise ValueError naming them."""
    if name != "auto" and name not in SKA_FORMS:
        raise ValueError(f"unknown SKA form {name!r}; choose one of: auto, {', '.join(SKA_FORMS)}")
    return name


class SKA(nn.Module):
    """Small-kernel aggregation with a selectable formulation; it has no parameters.

    ``form`` is one of ``SKA_FORMS`` or ``auto``. ``auto`` means shifted slices, the fastest standard form
    in eager PyTorch; the Triton kernel is used only when asked for by name, because this project's CI
    has no GPU to keep it checked. Constant tensors a form needs (the one-hot kernel, the banded gather
    index for ``resolution``) are non-persistent buffers, so exporters see constants and checkpoints
    are unaffected.
    """

    def __init__(self, dim: int | None = None, form: str = "auto", resolution: tuple[int, int] | None = None):
        super().__init__()
        self.dim = dim
        self.resolution = tuple(resolution) if resolution is not None else None
        self.form = "auto"
        self.set_form(form)

    def set_form(self, form: str) -> None:
        """Switch the formulation; outputs stay the same up to float rounding."""
        self.form = check_ska_form(form)
        for name in ("onehot", "band_index"):
            self._buffers.pop(name, None)
        if form in ("onehot_conv", "hybrid") and self.dim is not None:
            self.register_buffer("onehot", _onehot_kernel(self.dim, torch.float32, torch.device("cpu")),
                                 persistent=False)
        if form in ("banded_matmul", "hybrid", "hybrid_taps") and self.resolution is not None:
            h, w = self.resolution
            if form == "banded_matmul" or h * w <= HYBRID_MAX_POSITIONS:
                self.register_buffer("band_index", banded_index(h, w), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        form = "shifted_slices" if self.form == "auto" else self.form
        onehot = self._buffers.get("onehot")
        if onehot is not None:
            onehot = onehot.to(dtype=x.dtype) if onehot.shape[0] == 9 * x.shape[1] else None
        index = self._buffers.get("band_index")
        if form == "onehot_conv":
            return ska_onehot_conv(x, w, onehot)
        if form == "banded_matmul":
            return ska_banded_matmul(x, w, index)
        if form == "hybrid":
            return ska_hybrid(x, w, onehot, index)
        if form == "hybrid_taps":
            return ska_hybrid_taps(x, w, index)
        return SKA_FORMS[form](x, w)

    def extra_repr(self) -> str:
        return f"form={self.form!r}"
