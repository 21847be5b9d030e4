"""Building blocks of LSNet whose module names are the checkpoint format.

Every class here keeps the child names of the reference implementation (THU-MIG/lsnet) so that its
state dicts load with no remapping. Classes with a re-parameterizable form implement ``fuse()``, which
returns the equivalent plain module; ``lsnet_deploy.reparameterize`` is the one driver that calls them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift), detached, such that ``bn(x) == x * scale + shift`` in eval mode."""
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    shift = (bn.bias - bn.running_mean * scale).detach()
    return scale, shift


class Conv2d_BN(nn.Sequential):
    """Bias-free convolution followed by BatchNorm (children ``c`` and ``bn``)."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, dilation: int = 1,
                 groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, dilation, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """Fold the BatchNorm into the convolution: ``W' = W * s``, ``b' = beta - mean * s``."""
        conv, bn = self.c, self.bn
        scale, shift = bn_scale_shift(bn)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True,
                          device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(shift)
        return fused


def conv_bn(a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1,
            bn_weight_init: float = 1.0, fused: bool = False) -> nn.Module:
    """A Conv2d_BN, or the plain biased Conv2d it fuses into when ``fused``."""
    if fused:
        return nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=True)
    return Conv2d_BN(a, b, ks, stride, pad, groups=groups, bn_weight_init=bn_weight_init)


class BN_Linear(nn.Sequential):
    """BatchNorm1d followed by Linear (children ``bn`` and ``l``): LSNet's classifier head."""

    def __init__(self, a: int, b: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(a))
        self.add_module("l", nn.Linear(a, b, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        """Fold the BatchNorm into the Linear: ``W' = W * s``, ``b' = W (beta - mean * s) + b``."""
        bn, lin = self.bn, self.l
        scale, shift = bn_scale_shift(bn)
        fused = nn.Linear(lin.in_features, lin.out_features, bias=True,
                          device=lin.weight.device, dtype=lin.weight.dtype)
        fused.weight.copy_(lin.weight * scale[None, :])
        bias = lin.weight @ shift
        if lin.bias is not None:
            bias = bias + lin.bias
        fused.bias.copy_(bias)
        return fused


class Residual(nn.Module):
    """``x + m(x)``, with the reference's stochastic depth during training."""

    def __init__(self, m: nn.Module, drop: float = 0.0):
        super().__init__()
        self.m = m
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.drop > 0:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device).ge_(self.drop).div(1 - self.drop)
            return x + self.m(x) * keep.detach()
        return x + self.m(x)


class FFN(nn.Module):
    """Pointwise feed-forward: Conv2d_BN, ReLU, Conv2d_BN."""

    def __init__(self, ed: int, h: int, fused: bool = False):
        super().__init__()
        self.pw1 = conv_bn(ed, h, fused=fused)
        self.act = nn.ReLU()
        self.pw2 = conv_bn(h, ed, bn_weight_init=0, fused=fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """Depthwise 3x3 + depthwise 1x1 + identity; fuses into one depthwise 3x3 convolution."""

    def __init__(self, ed: int):
        super().__init__()
        self.conv = Conv2d_BN(ed, ed, 3, 1, 1, groups=ed)
        self.conv1 = Conv2d_BN(ed, ed, 1, 1, 0, groups=ed)
        self.dim = ed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """Sum the fused 3x3, the fused 1x1 padded to 3x3, and an identity kernel."""
        conv = self.conv.fuse()
        conv1 = self.conv1.fuse()
        weight = conv.weight + F.pad(conv1.weight, [1, 1, 1, 1])
        weight[:, :, 1, 1] += 1.0
        conv.weight.copy_(weight)
        conv.bias.copy_(conv.bias + conv1.bias)
        return conv


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's channel rounding as SqueezeExcite uses it (``round_limit=0``)."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """timm's SEModule (ratio 0.25, divisor 8): children ``fc1``, ``bn``, ``act``, ``fc2``, ``gate``."""

    def __init__(self, channels: int, rd_ratio: float = 0.25, rd_divisor: int = 8):
        super().__init__()
        rd_channels = make_divisible(channels * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc2(self.act(self.bn(self.fc1(x_se))))
        return x * self.gate(x_se)
