"""``--format executorch``: an ExecuTorch program (``.pte``) lowered to the XNNPACK delegate.

This is the runtime PyTorch ships for phones (Android and iOS apps, embedded Linux). Steps: the model is
rewritten into forms XNNPACK delegates whole (``xnnpack_forms``), exported with ``torch.export``,
lowered with ``to_edge_transform_and_lower`` and XNNPACK's partitioner, and serialized. The metadata map
rides in the program as a constant method ``lsnet_metadata`` that returns it as one JSON string (apps
call it like ``forward``, with no inputs).

``--half`` runs the body in float16 (XNNPACK's fp16 kernels, native on ARMv8.2+ phones); inputs and
outputs stay float32, so the two casts at the edges are the only operators outside the delegate.
The export reports how many operators XNNPACK took and which ones it left to ExecuTorch's portable
kernels: for the default form that is none of the compute.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import ExportError, first_line, require
from ..quiet import silenced
from .base import ExportContext, ExportOptions, Exporter, Written, register_exporter
from .half import half_precision_model
from .xnnpack_forms import BmmAttention, xnnpack_friendly

METADATA_METHOD = "lsnet_metadata"
# graph nodes that are bookkeeping, not operators: the delegate calls themselves and tuple indexing
_BOOKKEEPING = ("executorch_call_delegate", "getitem")


def _op_name(node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    return name.split("::")[-1]


def delegation_report(edge_program) -> dict:
    """Count the operators inside XNNPACK delegates and those left to ExecuTorch's portable kernels.

    Args:
        edge_program: the result of ``to_edge_transform_and_lower``.

    Returns:
        ``delegated_ops``, ``ops_outside_delegate``, ``outside_ops`` (name -> count) and
        ``delegate_calls`` (how many delegate segments the program runs).
    """
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    graph_module = edge_program.exported_program().graph_module
    outside = collections.Counter()
    calls = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node)
        if "executorch_call_delegate" in str(node.target):
            calls += 1
        elif not any(word in name for word in _BOOKKEEPING):
            outside[name] += 1
    delegated = 0
    for module in graph_module.modules():
        if isinstance(module, LoweredBackendModule):
            delegated += sum(1 for n in module.original_module.graph.nodes
                             if n.op == "call_function" and "getitem" not in _op_name(n))
    return {"delegated_ops": delegated, "ops_outside_delegate": sum(outside.values()),
            "outside_ops": dict(outside), "delegate_calls": calls}


def lower_to_executorch(model: nn.Module, example: torch.Tensor, metadata: Mapping[str, str] | None = None):
    """``torch.export`` + XNNPACK lowering; returns the edge program manager (not yet serialized).

    Raises:
        ExportError: torch.export or the lowering failed (first line of the cause kept).
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    constant_methods = {METADATA_METHOD: json.dumps(dict(metadata))} if metadata is not None else None
    with silenced() as log:
        try:
            program = torch.export.export(model, (example,))
        except Exception as exc:
            raise ExportError(f"torch.export failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc
        try:
            return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                               constant_methods=constant_methods)
        except Exception as exc:
            raise ExportError(f"lowering to XNNPACK failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc


@register_exporter
class ExecuTorchExporter(Exporter):
    """ExecuTorch ``.pte`` with the XNNPACK delegate."""

    name = "executorch"
    runtime = "executorch"
    aliases = ("pte", "et", "xnnpack")
    suffix = ".pte"
    extra = "executorch"
    description = "ExecuTorch program lowered to XNNPACK (Android and iOS apps, embedded Linux)"
    supported_options = frozenset({"half"})
    ska_auto = "tap_slices"
    no_dynamic_reason = "XNNPACK plans a fixed batch; export one .pte per batch size with --batch N"

    def check_environment(self, options: ExportOptions) -> None:
        require("executorch.exir", self.extra, "to write ExecuTorch programs")
        require("executorch.backends.xnnpack.partition.xnnpack_partitioner", self.extra, "for the XNNPACK delegate")
        if options.validate:
            require("executorch.runtime", self.extra, "to validate ExecuTorch programs")

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        context.progress(f"rewriting for XNNPACK (SKA {context.ska_form})")
        lowered_model = xnnpack_friendly(model, context.ska_form)
        if context.options.half:
            lowered_model = half_precision_model(lowered_model, float32_islands=False)
            for module in lowered_model.modules():
                if isinstance(module, BmmAttention):
                    module.float32_softmax = False  # a cast inside the graph would split the delegate
        context.progress("lowering to XNNPACK (torch.export, to_edge_transform_and_lower)")
        edge = lower_to_executorch(lowered_model, example, context.metadata)
        details = delegation_report(edge)
        with silenced():
            try:
                buffer = edge.to_executorch().buffer
            except Exception as exc:
                raise ExportError(f"ExecuTorch serialization failed: {first_line(exc)}") from exc
        path.write_bytes(buffer)
        return Written(details={**details, "backend": "xnnpack", "metadata_method": METADATA_METHOD})
