"""``--format qnn``: the model compiled for a Snapdragon NPU (Hexagon HTP), as ONNX Runtime's EPContext model.

The ONNX graph is built for the HTP (``build_onnx``'s ``qnn`` target: no ONNX Runtime CPU rewrites; under
``--int8`` the Q/DQ layout of ONNX Runtime's QNN helpers), then Qualcomm's HTP compiler, reached through
ONNX Runtime's QNN execution provider (``onnxruntime-qnn``), compiles it for one SoC with CPU fallback
disabled and writes the EPContext model: one ``.onnx`` file whose single ``EPContext`` node embeds the
context binary, with the lsnet metadata in ``metadata_props``. An app loads it with ONNX Runtime and the
QNN EP on the device and skips the on-device compile.

Float models run in float16 on the HTP, so they are validated with float16 tolerances; everything is
validated on Qualcomm's x86 HTP emulator (the ``qnn`` runtime), the same pipeline as every format.

The default suffix is ``.qnn.onnx``: the file is ONNX, but only the QNN EP of the SoC it was compiled for
runs it, and the name says so (``lsnet-bench``/``lsnet-predict`` pick the ``qnn`` runtime from it; an
EPContext model saved as plain ``.onnx`` is recognised by its content).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from ..errors import ExportError, UsageError, first_line, require
from ..gates import ACCELERATOR_DRIFT_HINT
from ..accelerators.qnn_socs import QnnOptions, get_soc
from ..runtimes.qnn_runner import QNN, compile_context_model
from .context import ExportContext, Written
from .options import ExportOptions
from .registry import register_exporter
from .onnx_format import OnnxExporter, build_onnx, int8_layout, set_metadata
from ..accelerators.qnn_probe import probe_qnn_htp
from ..accelerators.targets import get_target

#: the accelerator ``--format qnn`` always targets (``lsnet_deploy.accelerators.targets``)
ACCELERATOR = "htp"


@register_exporter
class QnnExporter(OnnxExporter):
    """ONNX Runtime EPContext model for the Snapdragon HTP (QNN)."""

    spec = QNN
    #: it also writes (and validates) an EPContext model named plain ``.onnx``; the runner sniffs those
    suffixes = (*QNN.suffixes, ".onnx")
    #: hybrid, banded_matmul and hybrid_taps gather on small grids and measured garbage on the HTP (fp16);
    #: reference and unfold_matmul leave Gather/Transpose to the CPU; tap_slices is whole and within 0.7%
    ska_auto = "tap_slices"
    ska_auto_int8 = None
    runtime_target = "qnn"
    no_dynamic_reason = "a compiled HTP context has fixed shapes"

    def check_options(self, options: ExportOptions) -> None:
        if options.accelerator is not None:
            if get_target(options.accelerator).name != ACCELERATOR:
                raise UsageError(f"--format qnn targets the Snapdragon HTP only; drop --accelerator "
                                 f"{options.accelerator}, or pick the format that reaches it")
        if options.allow_fallback:
            raise UsageError("--format qnn writes one compiled HTP context, which cannot hold CPU operators; "
                             "for a plain ONNX the QNN EP partitions at load time, use --format onnx "
                             "--accelerator htp --allow-fallback")
        super().check_options(options)

    def drift_hint(self, options: ExportOptions) -> str:
        if options.int8:
            return super().drift_hint(options)
        return ACCELERATOR_DRIFT_HINT.format(name="the HTP", ska=self.ska_auto)

    def check_environment(self, options: ExportOptions) -> None:
        super().check_environment(options)
        require("onnxruntime_qnn", self.extra, "Qualcomm's QNN execution provider and HTP compiler")

    def effective_options(self, options: ExportOptions) -> ExportOptions:
        # the HTP computes float models in float16: made explicit where metadata and validation read it;
        # the SoC is named even when defaulted, so the metadata says what the binary was compiled for
        soc = get_soc(options.own(QnnOptions).soc).name
        return dataclasses.replace(options, half=not options.int8, accelerator=ACCELERATOR,
                                   format_options=QnnOptions(soc=soc))

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        import onnx
        import onnxruntime_qnn

        soc = get_soc(context.options.own(QnnOptions).soc)
        # the graph stays float32: the HTP compiler lowers it to float16 itself (half_precision_model's
        # float16 graph would add casts the HTP runs as operators)
        graph_options = dataclasses.replace(context.options, half=False)
        proto, added = build_onnx(model, example, dataclasses.replace(context, options=graph_options),
                                  self.runtime_target)
        added["qnn"] = json.dumps({"soc": soc.name, "soc_model": soc.soc_model, "htp_arch": soc.htp_arch,
                                   "onnxruntime_qnn": onnxruntime_qnn.__version__, "context_embedded": True})
        set_metadata(proto, {**context.metadata, **added})
        context.progress(f"compiling for the {soc.name} HTP ({soc.arch}) with onnxruntime-qnn "
                         f"{onnxruntime_qnn.__version__}")
        with tempfile.TemporaryDirectory(prefix="lsnet-qnn-") as work:
            source, compiled = Path(work) / "model.onnx", Path(work) / "model_ctx.onnx"
            onnx.save_model(proto, str(source))
            placement = probe_qnn_htp(source, soc.name)
            if not placement.whole:
                raise ExportError(f"the {soc.name} HTP ({soc.arch}) cannot take the whole model "
                                  f"({placement.partitions} partition(s)); these operators fall back to the CPU: "
                                  f"{placement.fallback_summary()}; nothing was written. Use --ska tap_slices")
            try:
                compile_context_model(source, compiled, soc)
            except Exception as exc:  # onnxruntime's own Fail/EPFail types
                raise ExportError(f"the QNN HTP compiler failed for {soc.name} ({soc.arch}): "
                                  f"{first_line(exc)}") from exc
            compiled.replace(path)

        return Written(details={"soc": soc.name, "htp_arch": soc.arch, "nodes": len(proto.graph.node),
                                **int8_layout(context, self.runtime_target)}, metadata=added, placement=placement)
