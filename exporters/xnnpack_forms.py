"""Export-time rewrites that let XNNPACK (ExecuTorch's CPU backend on phones) take all of LSNet.

XNNPACK delegates an operator only in the forms it implements; anything else falls back to ExecuTorch's
portable kernels, and every fallback splits the program into another delegate call with copies in and
out. Lowered as is, LSNet loses the GroupNorm of each LS block, the ``select`` of each SKA tap, the
``split`` of each attention's q/k/v and the ``expand`` that a rank-4 matmul decomposes into. This module
swaps the modules that produce them for exact equivalents made of operators XNNPACK takes:

* ``GroupNormAsConv``: GroupNorm from spatial means (XNNPACK's global average pooling), a fixed 1x1
  convolution that averages within each group (and adds epsilon as its bias), ``rsqrt`` and affine ops;
* ``TapSliceLSConv``: the whole LS block with SKA in its ``tap_slices`` form; the tap-major transpose
  of the dynamic kernels is folded into the row order of LKP's last convolution, each tap is one slice
  of the flattened padded input, and the GroupNorm shift, the BatchNorm after SKA and the residual fold
  into one static depthwise convolution;
* ``BmmAttention``: q, k and v from three convolutions (no split) and rank-3 ``bmm`` (no expand).

On a small CPU the operators of LSNet's late stages work on a few thousand values each, so what an LS
block costs is mostly its operator count; these forms keep it low. Each rewrite computes the same
function as the module it replaces, to float rounding, and acts on a copy of the model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..models.layers import Conv2d_BN, bn_scale_shift
from ..models.lsnet import Attention, LSConv, attention_core
from ..module_tree import replace_modules

#: the SKA form whose LS blocks are rewritten whole (``TapSliceLSConv``)
WHOLE_BLOCK_FORM = "tap_slices"
KERNEL_SHARE = 8  # channels c, c + G, ..., c + 7G share one dynamic kernel (G = C / 8)


def _plain_conv(module: nn.Module) -> nn.Conv2d:
    """A Conv2d_BN as the biased Conv2d it fuses into; plain convolutions pass through."""
    return module.fuse() if isinstance(module, Conv2d_BN) else module


class GroupNormAsConv(nn.Module):
    """``nn.GroupNorm`` on 4-D input from operators XNNPACK delegates, computed in two passes.

    The group mean is the average of the per-channel spatial means (groups have equal sizes); a fixed
    1x1 convolution takes it and spreads it back to every channel of the group. The variance is taken
    the same way from the centred input, so no cancellation-prone ``E[x^2] - E[x]^2`` appears.

    Args:
        norm: the GroupNorm to replace.
        order: optional channel permutation: channel i of this module's input is channel ``order[i]``
            of the GroupNorm's input (the affine parameters follow it).
        shift: add the GroupNorm's bias (callers that fold it elsewhere pass False).
    """

    def __init__(self, norm: nn.GroupNorm, order: torch.Tensor | None = None, shift: bool = True):
        super().__init__()
        channels, groups = norm.num_channels, norm.num_groups
        size = channels // groups
        order = torch.arange(channels) if order is None else order
        group = (torch.arange(channels) // size)[order]
        average = (group[:, None] == group[None, :]).float() / size
        self.register_buffer("average", average.view(channels, channels, 1, 1))
        self.register_buffer("eps", torch.full((channels,), float(norm.eps)))
        weight = norm.weight.detach()[order] if norm.affine else torch.ones(channels)
        bias = norm.bias.detach()[order] if norm.affine else torch.zeros(channels)
        self.register_buffer("weight", weight.clone().view(1, channels, 1, 1))
        self.register_buffer("bias", bias.clone().view(1, channels, 1, 1) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.conv2d(x.mean((2, 3), keepdim=True), self.average)
        centred = x - mean
        var_eps = F.conv2d((centred * centred).mean((2, 3), keepdim=True), self.average, self.eps)
        out = centred * (torch.rsqrt(var_eps) * self.weight)
        return out if self.bias is None else out + self.bias


class TapSliceLSConv(nn.Module):
    """The LS block ``bn(ska(x, lkp(x))) + x`` with SKA as nine shifted slices of a tap-major kernel.

    * LKP's last convolution emits its rows tap-major (channel ``k * G + g`` instead of ``g * 9 + k``),
      so tap k of all groups is one contiguous slice: no transpose, no ``select``.
    * SKA is linear in the kernels, so the GroupNorm shift ``beta`` contributes a static depthwise 3x3
      convolution of x; with the BatchNorm's scale and shift and the residual it is one convolution:
      ``out = scale * ska(x, normalized kernels without beta) + conv_static(x)``.
    """

    def __init__(self, block: LSConv):
        super().__init__()
        lkp = block.lkp
        channels, taps = lkp.dim, lkp.sks ** 2
        groups = channels // KERNEL_SHARE
        self.groups = groups
        self.cv1, self.cv2, self.cv3 = (_plain_conv(m) for m in (lkp.cv1, lkp.cv2, lkp.cv3))
        self.act = nn.ReLU()
        order = torch.tensor([g * taps + k for k in range(taps) for g in range(groups)])
        cv4 = lkp.cv4
        self.cv4 = nn.Conv2d(cv4.in_channels, cv4.out_channels, 1).to(cv4.weight)
        with torch.no_grad():
            self.cv4.weight.copy_(cv4.weight[order])
            self.cv4.bias.copy_(cv4.bias[order])
        self.norm = GroupNormAsConv(lkp.norm, order, shift=False)

        scale, shift = bn_scale_shift(block.bn)
        self.register_buffer("scale", scale.view(1, channels, 1, 1).clone())
        beta = lkp.norm.bias.detach() if lkp.norm.affine else torch.zeros(groups * taps)
        static = beta.view(groups, taps)[torch.arange(channels) % groups]  # (C, 9): channel c uses group c mod G
        static = static * scale[:, None]
        static[:, taps // 2] += 1.0  # the residual
        self.static = nn.Conv2d(channels, channels, lkp.sks, padding=lkp.sks // 2, groups=channels).to(scale)
        with torch.no_grad():
            self.static.weight.copy_(static.view(channels, 1, lkp.sks, lkp.sks))
            self.static.bias.copy_(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        kernels = self.norm(self.cv4(self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))))
        # Work on rows of w + 2 (two junk columns, dropped at the end) so that every tap is one
        # contiguous slice of the flattened, zero-padded input: one slice op per tap instead of two.
        row = w + 2
        taps = F.pad(kernels.view(b, 9, self.groups, h, w), (0, 2)).view(b, 9, self.groups, h * row)
        flat = F.pad(x, (1, 1, 1, 2)).view(b, c // self.groups, self.groups, (h + 3) * row)
        out = None
        for k in range(9):
            start = (k // 3) * row + k % 3
            term = flat[:, :, :, start:start + h * row] * taps[:, k:k + 1]
            out = term if out is None else out + term
        out = out.view(b, c, h, row)[:, :, :, :w]
        return out * self.scale + self.static(x)


class BmmAttention(nn.Module):
    """LSNet attention with q, k, v from three convolutions and rank-3 batched matmuls.

    Built from the fused attention (the module's own ``fuse()`` when it is not fused yet): XNNPACK folds
    BatchNorms into convolutions at lowering anyway, and the bias gather must become a constant.
    """

    def __init__(self, attention: Attention):
        super().__init__()
        fused = attention if attention.fused else attention.fuse()
        sizes = [fused.nh_kd, fused.nh_kd, fused.dh]
        starts = [0, sizes[0], sizes[0] + sizes[1]]
        self.q, self.k, self.v = (self._rows(fused.qkv, s, n) for s, n in zip(starts, sizes))
        self.dw = fused.dw
        self.proj = fused.proj
        self.heads, self.key_dim, self.d, self.dh = fused.num_heads, fused.key_dim, fused.d, fused.dh
        self.register_buffer("bias", fused.attention_bias.detach().clone().unsqueeze(0))
        #: softmax in float32 whatever the body's dtype (float16 exports turn it off: a cast would leave
        #: the delegate, and XNNPACK's float16 softmax accumulates in float32 anyway)
        self.float32_softmax = True

    @staticmethod
    def _rows(conv: nn.Conv2d, start: int, size: int) -> nn.Conv2d:
        part = nn.Conv2d(conv.in_channels, size, 1).to(conv.weight)
        with torch.no_grad():
            part.weight.copy_(conv.weight[start:start + size])
            part.bias.copy_(conv.bias[start:start + size])
        return part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = attention_core(self.dw(self.q(x)), self.k(x), self.v(x), self.bias, self.heads, batched_matmul=True,
                             float32_softmax=self.float32_softmax)
        return self.proj(out)


def xnnpack_friendly(model: nn.Module, ska_form: str) -> nn.Module:
    """A copy of ``model`` made of operators XNNPACK delegates.

    Args:
        model: an LSNet in eval mode (fused or not).
        ska_form: the SKA form being exported. ``tap_slices`` rewrites LS blocks whole; any other form
            keeps SKA as asked and only replaces the GroupNorm.

    Returns:
        The rewritten copy, in eval mode (same outputs to float rounding).
    """
    def replacement(module: nn.Module) -> nn.Module | None:
        if isinstance(module, LSConv) and ska_form == WHOLE_BLOCK_FORM:
            return TapSliceLSConv(module)
        if isinstance(module, nn.GroupNorm) and module.num_channels % module.num_groups == 0:
            return GroupNormAsConv(module)
        if isinstance(module, Attention):
            return BmmAttention(module)
        return None

    return replace_modules(model.eval(), replacement).eval()
