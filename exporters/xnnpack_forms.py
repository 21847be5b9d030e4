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
* ``BmmAttention``: q, k and v from three convolutions (no split) and rank-3 ``bmm`` (no expand);
* ``DilatedRowsDepthwise``: LKP's 7x7 depthwise convolution as three depthwise convolutions of at most
  25 taps. XNNPACK's depthwise microkernels take at most 25 taps; a larger kernel falls to its grouped
  IGEMM path (one channel per group), measured 10-20x slower (docs/profiles.md).

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
#: the most taps XNNPACK's depthwise-convolution microkernels take (its largest unipass tile is 5x5)
XNNPACK_DWCONV_MAX_TAPS = 25


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

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """GroupNorm of ``x``; ``weight`` (broadcastable to x) replaces the affine scale if given."""
        mean = F.conv2d(x.mean((2, 3), keepdim=True), self.average)
        centred = x - mean
        var_eps = F.conv2d((centred * centred).mean((2, 3), keepdim=True), self.average, self.eps)
        out = centred * (torch.rsqrt(var_eps) * (self.weight if weight is None else weight))
        return out if self.bias is None else out + self.bias


class DilatedRowsDepthwise(nn.Module):
    """A depthwise k x k convolution (k odd, stride 1, "same" padding) as depthwise convolutions of few rows.

    Kernel row r sits at row offset ``r - k // 2``. The rows are grouped by offset: {0, -m, +m} (m = k // 2)
    is one convolution of dilation m, and each pair {-j, +j} (0 < j < m) one of dilation 2j; all are
    symmetric, so each keeps plain padding and no pad or slice is needed. The parts sum to the original
    convolution (to float rounding), with exactly its k * k taps; for k = 7 they have 21, 14 and 14 taps,
    each within XNNPACK's depthwise microkernels.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k = conv.kernel_size[0]
        half = k // 2
        weight = conv.weight.detach()
        channels = conv.out_channels
        groups = [([0, half, k - 1], half)] + [([half - j, half + j], 2 * j) for j in range(1, half)]
        self.parts = nn.ModuleList()
        for rows, dilation in groups:
            row_pad = dilation * (len(rows) - 1) // 2  # = the offset of the part's outermost row
            part = nn.Conv2d(channels, channels, (len(rows), k), padding=(row_pad, half), dilation=(dilation, 1),
                             groups=channels, bias=not self.parts and conv.bias is not None).to(weight)
            with torch.no_grad():
                part.weight.copy_(weight[:, :, rows])
                if part.bias is not None:
                    part.bias.copy_(conv.bias)
            self.parts.append(part)

    @staticmethod
    def applies_to(conv: nn.Module) -> bool:
        """A depthwise convolution whose k x k kernel is beyond XNNPACK's depthwise microkernels and whose
        row groups (at most 3 rows each) are within them."""
        if type(conv) is not nn.Conv2d:
            return False
        kh, kw = conv.kernel_size
        return (conv.groups == conv.in_channels == conv.out_channels and kh == kw and kh % 2 == 1
                and kh * kw > XNNPACK_DWCONV_MAX_TAPS and 3 * kw <= XNNPACK_DWCONV_MAX_TAPS
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding == (kh // 2, kw // 2)
                and conv.padding_mode == "zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.parts[0](x)
        for part in self.parts[1:]:
            out = out + part(x)
        return out


def _xnnpack_depthwise(conv: nn.Conv2d) -> nn.Module:
    """``conv`` as ``DilatedRowsDepthwise`` where XNNPACK would run it on its slow path, else itself."""
    return DilatedRowsDepthwise(conv) if DilatedRowsDepthwise.applies_to(conv) else conv


class TapSliceLSConv(nn.Module):
    """The LS block ``bn(ska(x, lkp(x))) + x`` with SKA as nine shifted slices of a tap-major kernel.

    * LKP's last convolution emits its rows tap-major (channel ``k * G + g`` instead of ``g * 9 + k``),
      so tap k of all groups is one contiguous slice: no transpose, no ``select``.
    * SKA is linear in the kernels, so the GroupNorm shift ``beta`` contributes a static depthwise 3x3
      convolution of x; with the BatchNorm's scale and shift and the residual it is one convolution:
      ``out = scale * ska(x, normalized kernels without beta) + conv_static(x)``.
    * On the token grid the block was built for (``ska.resolution``), x is flattened with only its top
      and bottom rows padded, so each tap is a slice of exactly H*W values; the slices that wrap
      around a row edge meet kernel taps zeroed by a constant mask, folded into the GroupNorm's scale.
      That drops the kernels' padding and the final crop (two copies and two operators per block).
      On another grid the block pads every row with two junk columns instead (the same function).
    """

    def __init__(self, block: LSConv):
        super().__init__()
        lkp = block.lkp
        channels, taps = lkp.dim, lkp.sks ** 2
        groups = channels // KERNEL_SHARE
        self.groups = groups
        self.cv1, self.cv2, self.cv3 = (_plain_conv(m) for m in (lkp.cv1, lkp.cv2, lkp.cv3))
        self.cv2 = _xnnpack_depthwise(self.cv2)
        self.act = nn.ReLU()
        order = torch.tensor([g * taps + k for k in range(taps) for g in range(groups)])
        cv4 = lkp.cv4
        self.cv4 = nn.Conv2d(cv4.in_channels, cv4.out_channels, 1).to(cv4.weight)
        with torch.no_grad():
            self.cv4.weight.copy_(cv4.weight[order])
            self.cv4.bias.copy_(cv4.bias[order])
        self.norm = GroupNormAsConv(lkp.norm, order, shift=False)
        self.grid = tuple(block.ska.resolution) if block.ska.resolution is not None else None
        self.register_buffer("masked_weight", None if self.grid is None else
                             self.norm.weight * _edge_tap_mask(groups, *self.grid).to(self.norm.weight))

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
        hidden = self.cv4(self.act(self.cv3(self.cv2(self.act(self.cv1(x))))))
        if (h, w) == self.grid:
            return self._masked_rows(x, self.norm(hidden, self.masked_weight))
        kernels = self.norm(hidden)
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

    def _masked_rows(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        # flat[q + w + 1] = x[q] over the row-major flattened grid, zeros before and after: tap (i, j) of
        # output p reads flat[p + i * w + j]; a read that wraps around a row edge has its tap masked
        b, c, h, w = x.shape
        n = h * w
        taps = kernels.view(b, 9, self.groups, n)
        flat = F.pad(x.view(b, c // self.groups, self.groups, n), (w + 1, w + 1))
        out = None
        for k in range(9):
            start = (k // 3) * w + k % 3
            term = flat[:, :, :, start:start + n] * taps[:, k:k + 1]
            out = term if out is None else out + term
        return out.view(b, c, h, w) * self.scale + self.static(x)


def _edge_tap_mask(groups: int, h: int, w: int) -> torch.Tensor:
    """(1, 9 * groups, h, w) of ones, zero where tap (i, j) (channel ``(3 i + j) * groups + g``) would read
    across the left (j = 0, column 0) or right (j = 2, column w - 1) edge of the grid."""
    mask = torch.ones(9, groups, h, w)
    mask[[0, 3, 6], :, :, 0] = 0.0
    mask[[2, 5, 8], :, :, w - 1] = 0.0
    return mask.view(1, 9 * groups, h, w)


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
        if DilatedRowsDepthwise.applies_to(module):
            return DilatedRowsDepthwise(module)
        return None

    return replace_modules(model.eval(), replacement).eval()
