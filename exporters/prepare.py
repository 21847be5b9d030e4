"""Model preparation: the copy of the user's model an exporter gets, and the reference it is validated against.

Every export fuses (if asked), sets the SKA form, switches to eval with gradients off and fixes the
grid-dependent modules here (DESIGN.md 1-3); exporters never prepare a model themselves.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..metadata import describe_outputs
from ..models.backbone import dynamic_token_grids, freeze_token_grids
from ..models.outputs import network_of, output_list, output_names
from ..reparam import reparameterize


def prepare_model(model: torch.nn.Module, ska_form: str, fuse: bool,
                  example: torch.Tensor | None = None, dynamic_hw: bool = False) -> torch.nn.Module:
    """A copy of ``model`` ready to export: SKA form set (in every LSNet it contains), fused (if asked),
    eval, gradients off; with ``example``, grid-dependent modules (a backbone's attention bias, the SKA
    gather indices) fixed to the grids that input produces, so the graph computes none of them. With
    ``dynamic_hw`` they follow each input's grid instead (``dynamic_token_grids``: the ``matrix`` bias
    resized in the graph)."""
    prepared = reparameterize(model) if fuse else copy.deepcopy(model).eval()
    set_ska_everywhere(prepared, ska_form)
    prepared.requires_grad_(False)
    if dynamic_hw:
        dynamic_token_grids(prepared)
    elif example is not None:
        freeze_token_grids(prepared, example)
    return prepared


def set_ska_everywhere(model: torch.nn.Module, form: str) -> None:
    """Select the SKA form of every module that offers ``set_ska`` (each LSNet inside ``model``)."""
    for module in model.modules():
        if callable(getattr(module, "set_ska", None)):
            module.set_ska(form)


def reference_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model artifacts are validated against: the user's model as loaded (unfused, reference SKA), in
    eval mode, so a fusion or SKA-rewrite bug cannot pass by agreeing with itself."""
    reference = copy.deepcopy(model).eval()
    set_ska_everywhere(reference, "reference")
    return reference.requires_grad_(False)


def describe_model_outputs(model: torch.nn.Module, outputs, input_size, dynamic: bool) -> list[dict]:
    """The ``outputs`` metadata entries of a model from the outputs of one run (names, kinds, shapes, strides)."""
    tensors = output_list(outputs)
    info = getattr(model, "feature_info", None)
    reductions = info.reduction() if info is not None and len(info) == len(tensors) else None
    return describe_outputs(output_names(model, outputs), [tuple(t.shape) for t in tensors], input_size,
                            dynamic, reductions)


def default_output(model: torch.nn.Module, suffix: str) -> Path:
    """``<name><suffix>`` in the working directory: the variant, or the checkpoint's name for a custom one."""
    model = network_of(model)
    name = getattr(model, "variant", None) or "lsnet"
    source = getattr(model, "checkpoint_source", None)
    if name == "lsnet" and source:  # a custom architecture: name it after its checkpoint, not "lsnet"
        name = Path(str(source).split(":")[-1]).name.split(".")[0] or name
    return Path(f"{name}{suffix}")

