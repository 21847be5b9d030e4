"""``--format onnx``: an ONNX model tuned for ONNX Runtime, with the app's metadata in ``metadata_props``.

Steps: ``torch.onnx.export`` (the dynamo exporter), onnxsim (constant folding, dead-code removal), the
ONNX Runtime rewrites of ``onnx_passes`` (skipped with ``--no-simplify`` along with onnxsim, and for
graphs bound for TensorRT), metadata, checker. ``--half`` writes float16 weights and activations with
float32 islands where half precision is unsafe; ``--int8`` writes explicit Q/DQ nodes calibrated on
images (see ``onnx_quantize``). Inputs and outputs stay float32 in every precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import __version__
from ..errors import ExportError, require
from ..quiet import silenced
from .base import ExportOptions, Exporter, Progress, register_exporter
from .half import half_precision_model

if TYPE_CHECKING:
    import onnx

DEFAULT_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# the first opset whose GroupNormalization and Resize behave as ONNX Runtime, TensorRT and onnxsim expect
MIN_OPSET = 17


def torch_to_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool) -> "onnx.ModelProto":
    """Export with the dynamo-based ``torch.onnx.export`` and return the in-memory ModelProto.

    Raises:
        ExportError: when torch cannot export the model (its first message line is kept).
    """
    dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic else None
    if dynamic and example.shape[0] == 1:
        example = example.repeat(2, 1, 1, 1)  # torch.export specializes size-1 dimensions to constants
    with silenced() as log:
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=dynamic_shapes, external_data=False, optimize=True,
                                        verbose=False)
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else log.getvalue()[-300:]
            raise ExportError(f"torch.onnx.export failed: {detail}") from exc
    proto = program.model_proto
    if dynamic:
        # name the symbolic batch dimension the same on input and output
        for value in (*proto.graph.input, *proto.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim: constant folding and cleanup; the original is returned if onnxsim cannot improve it."""
    onnxsim = require("onnxsim", "onnx", "to simplify ONNX graphs")
    with silenced():
        try:
            simplified, ok = onnxsim.simplify(model, check_n=0)
        except Exception:  # onnxsim gives up on some graphs; the unsimplified model is still correct
            return model
    return simplified if ok else model


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Write the metadata map into ``metadata_props`` (replacing keys that exist) and the doc string."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    model.producer_name = "lsnet-deploy"
    model.producer_version = __version__
    model.doc_string = (f"{metadata.get('model', 'lsnet')} (LSNet, CVPR 2025) exported by lsnet-deploy; "
                        "preprocessing and labels are in metadata_props (JSON values)")


def build_onnx(model: torch.nn.Module, example: torch.Tensor, options: ExportOptions,
               metadata: dict[str, str], target: str = "onnxruntime", progress: Progress | None = None) -> onnx.ModelProto:
    """Export, simplify, optimize for ``target`` and annotate: the full ONNX pipeline in memory.

    Args:
        target: ``onnxruntime`` (x86 blocked-layout rewrites), ``onnxruntime-mobile`` (portable rewrites
            only) or ``tensorrt`` (no runtime-specific rewrites; TensorRT fuses by itself).
    """
    from .onnx_passes import optimize_for_onnxruntime

    progress = progress or (lambda _: None)
    opset = options.opset or DEFAULT_OPSET
    if target.startswith("onnxruntime") and options.simplify:
        from .onnxruntime_forms import rewrite_for_onnxruntime

        model = rewrite_for_onnxruntime(model)
    if options.half:
        model = half_precision_model(model)
    proto = torch_to_onnx(model, example, opset, options.dynamic)
    if options.simplify:
        progress("simplifying (onnxsim)")
        proto = simplify(proto)
        if target.startswith("onnxruntime") and not options.half:
            optimize_for_onnxruntime(proto, blocked_layout=target == "onnxruntime")
    if options.int8:
        from .onnx_quantize import quantize_qdq

        progress(f"calibrating int8 on {options.calib}")
        proto = quantize_qdq(proto, options.calib, metadata)
    set_metadata(proto, metadata)
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported ONNX graph is invalid: {str(exc).splitlines()[0]}") from None
    return proto


@register_exporter
class OnnxExporter(Exporter):
    """ONNX for ONNX Runtime (and anything else that reads ONNX)."""

    name = "onnx"
    runtime = "ort"
    suffix = ".onnx"
    extra = "onnx"
    description = "ONNX, tuned for ONNX Runtime (CPU/GPU servers, desktops)"
    supported_options = frozenset({"dynamic", "half", "int8", "calib", "opset", "simplify"})
    # Measured here (benchmarks/bench_onnx.py, ONNX Runtime CPU): on 14x14 and larger grids the one-hot
    # depthwise convolution beats shifted slices, unfold+Gather and unfold+MatMul; on 7x7 grids one
    # banded matrix product per kernel group beats them all, because ONNX Runtime's per-operator cost
    # (thread-pool wake-ups with spinning off) outweighs the extra arithmetic. "hybrid" picks per block.
    ska_auto = "hybrid"
    runtime_target = "onnxruntime"

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        if options.opset is not None and not MIN_OPSET <= options.opset <= 23:
            from ..errors import UsageError

            raise UsageError(f"--opset {options.opset} is not supported; use {MIN_OPSET} to 23 (default {DEFAULT_OPSET})")
        if options.int8:
            from .onnx_quantize import calibration_images

            calibration_images(options.calib)  # a bad --calib fails before the model is even loaded

    def check_environment(self, options: ExportOptions) -> None:
        require("onnx", self.extra, "to write ONNX files")
        require("onnxscript", self.extra, "for torch.onnx.export")
        if options.simplify:
            require("onnxsim", self.extra, "to simplify ONNX graphs")
        if options.validate or options.int8:
            require("onnxruntime", self.extra, "to validate ONNX files")

    def write(self, model, example, path: Path, options, metadata, progress) -> dict:
        import onnx

        proto = build_onnx(model, example, options, metadata, self.runtime_target, progress)
        onnx.save_model(proto, str(path))
        return {"opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
                "nodes": len(proto.graph.node)}

    def runner(self, path: Path, options: ExportOptions):
        from ..runtimes.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, threads=2)
