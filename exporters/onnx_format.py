"""``--format onnx``: an ONNX model tuned for ONNX Runtime, with the app's metadata in ``metadata_props``.

Steps: ``torch.onnx.export`` (the dynamo exporter), onnxsim (constant folding, dead-code removal), the
ONNX Runtime rewrites of ``onnx_passes`` (skipped with ``--no-simplify`` along with onnxsim, and for
graphs bound for TensorRT), metadata, checker. ``--half`` writes float16 weights and activations with
float32 islands where half precision is unsafe; ``--int8`` writes explicit Q/DQ nodes calibrated on
images (see ``onnx_quantize``). Inputs and outputs stay float32 in every precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from ..version import __version__
from ..errors import ExportError, UsageError, first_line, require
from ..metadata import output_names_of
from ..quiet import silenced
from ..runtimes.onnxruntime_runner import ONNX
from .context import ExportContext, Written
from .exporter import Exporter
from .options import ExportOptions
from .registry import register_exporter
from .half import half_precision_model
from .onnx_quantize import QNN_WIDE_ACTIVATIONS, module_scopes, quantize_qdq
from .onnxruntime_forms import rewrite_for_onnxruntime
from .mobile_ep_passes import prepare_for

if TYPE_CHECKING:
    import onnx

DEFAULT_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# the first opset whose GroupNormalization and Resize behave as ONNX Runtime, TensorRT and onnxsim expect
MIN_OPSET = 17
#: the input heights and widths a ``--dynamic-hw`` graph accepts (a last-stage grid of at least 1x1)
MIN_DYNAMIC_SIDE, MAX_DYNAMIC_SIDE = 32, 4096


def torch_to_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool,
                  output_names: Sequence[str] = (OUTPUT_NAME,), dynamic_hw: bool = False) -> "onnx.ModelProto":
    """Export with the dynamo-based ``torch.onnx.export`` and return the in-memory ModelProto.

    ``output_names`` names the graph outputs in order (one per output of the model). ``dynamic`` makes the
    batch dimension symbolic (``batch``), ``dynamic_hw`` the input's height and width (``height``, ``width``;
    the outputs' spatial dimensions follow from them).

    Raises:
        ExportError: when torch cannot export the model (its first message line is kept).
    """
    dims = {0: torch.export.Dim("batch", min=1, max=4096)} if dynamic else {}
    if dynamic_hw:
        dims.update({2: torch.export.Dim("height", min=MIN_DYNAMIC_SIDE, max=MAX_DYNAMIC_SIDE),
                     3: torch.export.Dim("width", min=MIN_DYNAMIC_SIDE, max=MAX_DYNAMIC_SIDE)})
    dynamic_shapes = {"x": dims} if dims else None
    if dynamic and example.shape[0] == 1:
        example = example.repeat(2, 1, 1, 1)  # torch.export specializes size-1 dimensions to constants
    with silenced() as log:
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=list(output_names),
                                        dynamic_shapes=dynamic_shapes, external_data=False, optimize=True,
                                        verbose=False)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {first_line(exc, log.getvalue()[-300:])}") from exc
    proto = program.model_proto
    if dynamic:
        # name the symbolic batch dimension the same on input and output
        for value in (*proto.graph.input, *proto.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    if dynamic_hw:
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
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


def set_metadata(model: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    """Make ``metadata_props`` exactly the metadata map, and set the doc string.

    Keys other tools left there (onnxsim records the nodes it changed) are dropped: apps read this map,
    and it holds lsnet-deploy's documented keys only.
    """
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "lsnet-deploy"
    model.producer_version = __version__
    name = json.loads(metadata.get("model", json.dumps("lsnet")))
    model.doc_string = (f"{name} (LSNet, CVPR 2025) exported by lsnet-deploy; "
                        "preprocessing and labels are in metadata_props (JSON values)")


def build_onnx(model: torch.nn.Module, example: torch.Tensor, context: ExportContext,
               target: str = "onnxruntime") -> tuple[onnx.ModelProto, dict[str, str]]:
    """Export, simplify, optimize for ``target`` and annotate: the full ONNX pipeline in memory.

    Args:
        context: the export's context (options, metadata, progress; int8: calibration, ``keep_float``).
        target: ``onnxruntime`` (x86 blocked-layout rewrites), ``onnxruntime-mobile`` (portable rewrites
            only), ``tensorrt`` (no runtime-specific rewrites; TensorRT fuses by itself) or ``qnn`` (none
            either: Qualcomm's HTP compiler fuses by itself). int8 Q/DQ nodes are placed for ONNX Runtime,
            TensorRT or QNN accordingly (``onnx_quantize``).

    Returns:
        The model, and the metadata keys the pipeline added to ``metadata`` (int8: its calibration).
    """
    from .onnx_passes import optimize_for_onnxruntime

    options, progress = context.options, context.progress
    opset = options.opset or DEFAULT_OPSET
    if target.startswith("onnxruntime") and options.simplify:
        model = rewrite_for_onnxruntime(model)
    if options.half:
        model = half_precision_model(model)
    proto = torch_to_onnx(model, example, opset, options.dynamic, output_names_of(dict(context.metadata)),
                          options.dynamic_hw)
    added: dict[str, str] = {}
    if options.int8:
        scopes = module_scopes(proto)
    if options.simplify:
        progress("simplifying (onnxsim)")
        proto = simplify(proto)
        if target.startswith("onnxruntime") and not options.half:
            # int8 convolutions run in ONNX Runtime's NHWC layout, not the blocked float32 one, and the
            # blocked-layout rewrites (broadcast Mul as a Resize) measured 1.1x slower there
            optimize_for_onnxruntime(proto, blocked_layout=target == "onnxruntime" and not options.int8)
    if options.int8:
        progress(f"calibrating int8 on {options.calib}")
        placement = target if target in ("tensorrt", "qnn") else "onnxruntime"
        proto, calibration = quantize_qdq(proto, context, placement, scopes)
        added["int8_calibration"] = json.dumps(calibration)
    if context.accelerator is not None:
        proto = prepare_for(context.accelerator.name, proto)
    set_metadata(proto, {**context.metadata, **added})
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported ONNX graph is invalid: {first_line(exc)}") from None
    return proto, added


@register_exporter
class OnnxExporter(Exporter):
    """ONNX for ONNX Runtime (and anything else that reads ONNX)."""

    spec = ONNX
    ska_auto = "hybrid"
    #: int8 kernels move the balance: banded_matmul measured fastest under --int8 (docs/ska_forms.md); hybrid_taps
    #: ran 4% faster (1 thread) but its chain of nine requantized multiply-adds cost accuracy on the fixtures
    ska_auto_int8 = "banded_matmul"
    int8_keep_float = True
    #: which graph rewrites ``build_onnx`` applies
    runtime_target = "onnxruntime"

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        if options.opset is not None and not MIN_OPSET <= options.opset <= 23:
            raise UsageError(f"--opset {options.opset} is not supported; use {MIN_OPSET} to 23 (default {DEFAULT_OPSET})")

    def check_environment(self, options: ExportOptions) -> None:
        require("onnx", self.extra, "to write ONNX files")
        require("onnxscript", self.extra, "for torch.onnx.export")
        if options.simplify:
            require("onnxsim", self.extra, "to simplify ONNX graphs")
        if options.validate or options.int8:
            require("onnxruntime", self.extra, "to validate ONNX files")

    def graph_target(self, context: ExportContext) -> str:
        """The ``build_onnx`` target: the accelerator's (``--accelerator``), else this format's."""
        accelerator = context.accelerator
        return accelerator.onnx_target if accelerator is not None and accelerator.onnx_target else self.runtime_target

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        import onnx

        target = self.graph_target(context)
        proto, added = build_onnx(model, example, context, target)
        onnx.save_model(proto, str(path))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        return Written(details={"opset": opset, "nodes": len(proto.graph.node), **int8_layout(context, target)},
                       metadata=added)


def int8_layout(context: ExportContext, target: str) -> dict:
    """``{"int8_kept_as": ...}`` where the layers the int8 search keeps out of int8 are not float (QNN's
    16-bit activations), else nothing."""
    if not context.options.int8 or target != "qnn":
        return {}

    return {"int8_kept_as": QNN_WIDE_ACTIVATIONS}
