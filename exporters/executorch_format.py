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

``--int8 --calib DIR`` quantizes with PT2E and XNNPACK's quantizer (``pt2e_int8``: int8 activations per
tensor, int8 weights per output channel, calibrated on the images as the metadata prescribes) before
lowering: XNNPACK takes the Q/DQ groups as int8 kernels and the rest (GroupNorm and SKA's products, kept
float for accuracy; softmax and the attention matmuls, which it has no int8 kernels for) in float inside
the same delegate, so the whole program is still one delegate call.
Modules in ``keep_float`` stay float (checked on the converted graph before lowering).

``--accelerator vulkan`` lowers to ExecuTorch's Vulkan backend instead (phones' GPUs: Adreno, Mali,
Xclipse): the model as prepared (SKA ``tap_slices`` by default, GroupNorm as is, which Vulkan has a
kernel for), through ``VulkanPartitioner``; ``--half`` asks the backend for float16 textures
(``force_fp16``), inputs and outputs stay float32. LSNet-T in that form is one Vulkan delegate call with
no operator outside it (``onehot_conv`` left its tap sums outside). ExecuTorch's Python runtime has no
Vulkan backend, so such a program is written and checked for delegation here but not run: the export
says so (``cannot_validate``).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import ExportError, UsageError, first_line, require
from ..metadata_codec import METADATA_ENTRY as METADATA_METHOD  # the constant method the map is returned by
from ..metadata_codec import encode_metadata_map
from ..quiet import silenced
from ..runtimes.executorch_runner import EXECUTORCH
from .context import ExportContext, Written
from .exporter import Exporter
from .options import ExportOptions
from .registry import register_exporter
from .calibration import BATCH_PERCENTILE_METHOD
from .half import half_precision_model
from .xnnpack_forms import BmmAttention, xnnpack_friendly
from .pt2e_int8 import quantize_checked, xnnpack_quantizer

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


#: accelerators ``--format executorch`` lowers to, and the backend id ExecuTorch's runtime registers for each
DELEGATE_BACKENDS = {"xnnpack": "XnnpackBackend", "vulkan": "VulkanBackend"}
DEFAULT_ACCELERATOR = "xnnpack"


def partitioner_for(accelerator: str, half: bool = False):
    """The ExecuTorch partitioner that lowers to ``accelerator`` (``xnnpack`` or ``vulkan``).

    Args:
        half: Vulkan only: run the delegate in float16 textures (the model stays float32).
    """
    if accelerator == "vulkan":
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

        return VulkanPartitioner({"force_fp16": True} if half else None)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


def lower_to_executorch(model: nn.Module, example: torch.Tensor, metadata: Mapping[str, str] | None = None,
                        partitioner=None):
    """``torch.export`` + lowering (XNNPACK unless ``partitioner`` says otherwise); returns the edge program
    manager (not yet serialized).

    ``model`` may be a PT2E-converted graph module (int8 Q/DQ nodes): XNNPACK lowers those groups to int8.

    Raises:
        ExportError: torch.export or the lowering failed (first line of the cause kept).
    """
    from executorch.exir import to_edge_transform_and_lower

    partitioner = partitioner or partitioner_for(DEFAULT_ACCELERATOR)
    backend = "Vulkan" if type(partitioner).__name__.startswith("Vulkan") else "XNNPACK"
    constant_methods = {METADATA_METHOD: encode_metadata_map(metadata)} if metadata is not None else None
    with silenced() as log:
        try:
            program = torch.export.export(model, (example,))
        except Exception as exc:
            raise ExportError(f"torch.export failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc
        try:
            return to_edge_transform_and_lower(program, partitioner=[partitioner],
                                               constant_methods=constant_methods)
        except Exception as exc:
            raise ExportError(f"lowering to {backend} failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc


@register_exporter
class ExecuTorchExporter(Exporter):
    """ExecuTorch ``.pte`` with the XNNPACK delegate."""

    spec = EXECUTORCH
    no_dynamic_hw_reason = "XNNPACK plans are built for one input size"
    ska_auto = "tap_slices"
    int8_keep_float = True
    no_dynamic_reason = "XNNPACK plans a fixed batch; export one .pte per batch size with --batch N"

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        accelerator = accelerator_of(options)
        if accelerator not in DELEGATE_BACKENDS:
            raise UsageError(f"--format executorch lowers to {' or '.join(DELEGATE_BACKENDS)}, not --accelerator "
                             f"{accelerator}")
        if accelerator == "vulkan" and options.int8:
            raise UsageError("--accelerator vulkan takes float32 or --half; ExecuTorch's Vulkan backend has no "
                             "int8 path for this model (use --accelerator xnnpack for --int8)")

    def check_environment(self, options: ExportOptions) -> None:
        require("executorch.exir", self.extra, "to write ExecuTorch programs")
        if accelerator_of(options) == "vulkan":
            require("executorch.backends.vulkan.partitioner.vulkan_partitioner", self.extra,
                    "for the Vulkan delegate")
        else:
            require("executorch.backends.xnnpack.partition.xnnpack_partitioner", self.extra,
                    "for the XNNPACK delegate")
        if options.int8:
            require("torchao.quantization.pt2e.quantize_pt2e", self.extra, "for int8 (PT2E quantization)")
        if options.validate:
            require("executorch.runtime", self.extra, "to validate ExecuTorch programs")

    def cannot_validate(self, context: ExportContext) -> str | None:
        backend = DELEGATE_BACKENDS[accelerator_of(context.options)]
        registered = registered_backends()
        if backend in registered:
            return None
        return (f"ExecuTorch's runtime here has no {backend} (it has {', '.join(sorted(registered)) or 'none'}): "
                "the program was lowered and its delegation checked, not run; validate it on a phone")

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        if accelerator_of(context.options) == "vulkan":
            return self.write_vulkan(model, example, path, context)
        context.progress(f"rewriting for XNNPACK (SKA {context.ska_form})")
        lowered_model = xnnpack_friendly(model, context.ska_form)
        if context.options.half:
            lowered_model = half_precision_model(lowered_model, float32_islands=False)
            for module in lowered_model.modules():
                if isinstance(module, BmmAttention):
                    module.float32_softmax = False  # a cast inside the graph would split the delegate
        metadata, added, int8_details = dict(context.metadata), {}, {}
        if context.options.int8:
            lowered_model, int8_details = quantize_for_xnnpack(lowered_model, example, context)
            added["int8_calibration"] = json.dumps(context.int8_record(BATCH_PERCENTILE_METHOD, **INT8_SCHEME))
            metadata.update(added)
        context.progress("lowering to XNNPACK (torch.export, to_edge_transform_and_lower)")
        edge = lower_to_executorch(lowered_model, example, metadata)
        details = {**delegation_report(edge), **int8_details}
        write_program(edge, path)
        return Written(details={**details, "backend": "xnnpack", "metadata_method": METADATA_METHOD},
                       metadata=added)

    def write_vulkan(self, model, example, path: Path, context: ExportContext) -> Written:
        """The model as prepared, lowered whole to ExecuTorch's Vulkan backend (``--half``: fp16 textures)."""
        context.progress("lowering to Vulkan (torch.export, to_edge_transform_and_lower, VulkanPartitioner)")
        edge = lower_to_executorch(model, example, dict(context.metadata),
                                   partitioner_for("vulkan", half=context.options.half))
        details = delegation_report(edge)
        write_program(edge, path)
        return Written(details={**details, "backend": "vulkan", "metadata_method": METADATA_METHOD,
                                "vulkan_float16": context.options.half})


def write_program(edge, path: Path) -> None:
    """Serialize a lowered program (``lower_to_executorch``'s result) to ``path``.

    Raises:
        ExportError: ExecuTorch cannot serialize it.
    """
    with silenced():
        try:
            buffer = edge.to_executorch().buffer
        except Exception as exc:
            raise ExportError(f"ExecuTorch serialization failed: {first_line(exc)}") from exc
    path.write_bytes(buffer)


def accelerator_of(options: ExportOptions) -> str:
    """The delegate ``options`` ask for (``--accelerator``; XNNPACK when not given)."""
    return getattr(options, "accelerator", None) or DEFAULT_ACCELERATOR


def registered_backends() -> set[str]:
    """Backend ids ExecuTorch's Python runtime can run here (empty when the runtime is not installed)."""
    try:
        from executorch.runtime import Runtime
    except ImportError:
        return set()
    return set(Runtime.get().backend_registry.registered_backend_names)


#: what the ``int8_calibration`` metadata says about the quantization (``pt2e_int8.xnnpack_quantizer``)
INT8_SCHEME = {"quantizer": "XNNPACKQuantizer (PT2E)", "activations": "int8 affine per tensor",
               "weights": "int8 symmetric per channel",
               "float_ops": "GroupNorm and SKA's products and tap sum (accuracy), softmax and attention matmuls "
                             "(no int8 kernels in XNNPACK)"}


def quantize_for_xnnpack(model: nn.Module, example: torch.Tensor, context: ExportContext):
    """PT2E int8 of ``model`` calibrated on the export's images, ``keep_float`` left float.

    Returns:
        The converted graph module and details (int8 operator count).

    Raises:
        ExportError: quantization failed, or an operator of a kept-float module came out int8.
    """
    images = context.calibration.images(dict(context.metadata))
    context.progress(f"calibrating int8 on {len(images)} images (PT2E, XNNPACKQuantizer)")
    converted, int8_ops = quantize_checked(model, example, images, xnnpack_quantizer(context.keep_float),
                                           context.keeps_float)
    return converted, {"int8_ops": int8_ops}
