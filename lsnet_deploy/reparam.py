"""Re-parameterization: one driver that replaces every fusable module with its fused equivalent.

A module is fusable when it has a ``fuse()`` method; it is then responsible for its own children.
Modules without a rule (LKP's GroupNorm, LSConv's BatchNorm after SKA) are left exactly as they are:
replacing a BatchNorm that has no rule with Identity silently changes predictions.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fuse_tree(module: nn.Module) -> nn.Module:
    """Fuse ``module`` in place and return the result (possibly a different module object).

    If the module has ``fuse()`` its result is returned; otherwise each child is fused recursively.
    """
    fuse = getattr(module, "fuse", None)
    if callable(fuse):
        return fuse()
    for name, child in module.named_children():
        fused = fuse_tree(child)
        if fused is not child:
            setattr(module, name, fused)
    return module


@torch.no_grad()
def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return the fused (inference) form of ``model``, in eval mode.

    Args:
        model: any module; LSNet's Conv2d_BN, RepVGGDW, BN_Linear, distillation head and attention
            bias are fused, everything else is kept.
        inplace: fuse ``model`` itself instead of a deep copy.

    Returns:
        The fused model. Unless ``inplace``, the original is left untouched.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    fused = fuse_tree(model)
    fused.eval()
    return fused
