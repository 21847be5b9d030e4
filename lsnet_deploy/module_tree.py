"""Replacing modules inside a model: the one walk every export-time rewrite uses.

Rewrites for a runtime (ONNX Runtime's attention, XNNPACK's GroupNorm and LS blocks, float16's float32
islands) each name which modules they replace and with what; this module does the walking, on a copy
unless told otherwise, so no rewrite touches the user's model.
"""

from __future__ import annotations

import copy
from typing import Callable

from torch import nn

#: returns the replacement of a module, or None to keep it (and look inside it)
Replacement = Callable[[nn.Module], "nn.Module | None"]


def replace_modules(model: nn.Module, replace: Replacement, *, inplace: bool = False) -> nn.Module:
    """Swap every module for which ``replace`` returns a module; the others are searched recursively.

    A replaced module's children are not visited (the replacement owns them). The model itself is never
    replaced, only modules below it.

    Args:
        model: the model to rewrite.
        replace: maps a module to its replacement, or None to keep it.
        inplace: rewrite ``model`` itself instead of a deep copy.

    Returns:
        The rewritten model (a copy unless ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    _walk(model, replace)
    return model


def _walk(parent: nn.Module, replace: Replacement) -> None:
    for name, child in list(parent.named_children()):
        substitute = replace(child)
        if substitute is None:
            _walk(child, replace)
        else:
            setattr(parent, name, substitute)
