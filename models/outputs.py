"""What a model hands to an exporter: which outputs it has, and where the LSNet inside it is.

``ClassifierOutputs`` makes the class scores, the pooled (projected) embedding, or both, the outputs of a
classifier (the artist models' users want the embedding for retrieval and clustering). ``network_of`` finds the
LSNet in any module that contains one (a user's detector, a wrapper), which is what export reads its input
size, preprocessing and architecture from.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import UsageError
from .lsnet import LSNet

#: the outputs a classifier can export: class scores, and the embedding the classifier reads
CLASSIFIER_OUTPUTS = ("logits", "embedding")


def parse_outputs(names: str | Sequence[str]) -> tuple[str, ...]:
    """``"logits,embedding"`` -> ("logits", "embedding").

    Raises:
        UsageError: an unknown or repeated name, or none.
    """
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in items if n not in CLASSIFIER_OUTPUTS]
    if unknown or not items or len(set(items)) != len(items):
        raise UsageError(f"--outputs {','.join(items) or '(empty)'} is not a list of distinct outputs; "
                         f"use {', '.join(CLASSIFIER_OUTPUTS)} or both, comma-separated")
    return tuple(items)


class ClassifierOutputs(nn.Module):
    """An LSNet classifier whose forward returns the chosen outputs, in order (one tensor for one name).

    The embedding is computed once and the classifier reads it, so asking for both costs nothing extra.
    """

    def __init__(self, model: LSNet, outputs: Sequence[str] = CLASSIFIER_OUTPUTS):
        super().__init__()
        self.model = model
        self.outputs = parse_outputs(outputs)
        if "logits" in self.outputs and model.num_classes <= 0:
            raise UsageError("the model has no classifier head (num_classes 0), so it has no logits; "
                             "export --outputs embedding")

    @property
    def output_names(self) -> list[str]:
        """Artifact output names, in order."""
        return list(self.outputs)

    def forward(self, x: torch.Tensor):
        embedding = self.model.forward_embedding(self.model.forward_features(x))
        values = {"embedding": embedding}
        if "logits" in self.outputs:
            values["logits"] = self.model.forward_logits(embedding)
        selected = tuple(values[name] for name in self.outputs)
        return selected[0] if len(selected) == 1 else selected


def network_of(model: nn.Module) -> LSNet:
    """The LSNet that ``model`` is or contains (the first one, in module order).

    Raises:
        UsageError: ``model`` contains no LSNet.
    """
    if isinstance(model, LSNet):
        return model
    found = next((m for m in model.modules() if isinstance(m, LSNet)), None)
    if found is None:
        raise UsageError(f"{type(model).__name__} contains no LSNet; export an LSNet, a backbone from "
                         "create_model(..., features_only=True), or a module that holds one")
    return found


def output_list(outputs) -> list[torch.Tensor]:
    """A model's outputs as a flat list: a tensor, a tuple or list of tensors, or a dict (in key order)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        return [t for value in outputs.values() for t in output_list(value)]
    if isinstance(outputs, (tuple, list)):
        return [t for value in outputs for t in output_list(value)]
    raise TypeError(f"model outputs must be tensors, tuples, lists or dicts of tensors, got {type(outputs).__name__}")


def output_names(model: nn.Module, outputs) -> list[str]:
    """Names of a model's outputs: its ``output_names``, a dict's keys, ``logits`` for one tensor, else
    ``output0``, ``output1``, ..."""
    declared = getattr(model, "output_names", None)
    count = len(output_list(outputs))
    if declared is not None and len(declared) == count:
        return list(declared)
    if isinstance(outputs, dict) and len(outputs) == count:
        return [str(k) for k in outputs]
    if count == 1 and isinstance(model, LSNet):  # a classifier (backbones declare their names)
        return ["logits"]
    return [f"output{i}" for i in range(count)]
