"""``--format ort``: ONNX Runtime's mobile format, produced by onnxruntime's own converter.

The ONNX graph is built as for ``--format onnx`` minus the x86-only rewrite (phones run ARM, where
ONNX Runtime has no blocked layout), then ``onnxruntime.tools.convert_onnx_models_to_ort`` writes the
``.ort`` file with its fixed optimizations, as ONNX Runtime Mobile expects. ``--half`` is the ONNX
exporter's float16 graph (float32 islands, float32 inputs and outputs) converted the same way: ONNX
Runtime runs its float16 operators natively on ARMv8.2+ phones and validates it here on the host's kernels.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import ExportError, require
from ..quiet import silenced
from ..runtimes.onnxruntime_runner import ORT_FORMAT
from .context import ExportContext, Written
from .registry import register_exporter
from .onnx_format import OnnxExporter, build_onnx


@register_exporter
class OrtExporter(OnnxExporter):
    """ONNX Runtime mobile (``.ort``) format."""

    spec = ORT_FORMAT
    runtime_target = "onnxruntime-mobile"
    default_for_runtime = False  # the ort runtime's models are exported as .onnx by default

    def check_environment(self, options) -> None:
        super().check_environment(options)
        require("onnxruntime", self.extra, "to convert to the ORT format")

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        converter = require("onnxruntime.tools.convert_onnx_models_to_ort", self.extra, "to write .ort files")
        import onnx

        proto, added = build_onnx(model, example, context, self.graph_target(context))
        context.progress("converting to the ORT format (onnxruntime.tools.convert_onnx_models_to_ort)")
        with tempfile.TemporaryDirectory(prefix="lsnet-ort-") as work:
            source = Path(work) / "model.onnx"
            onnx.save_model(proto, str(source))
            # the Fixed style bakes in CPU-only fused kernels (FusedConv, FusedMatMul) that NNAPI and Core ML lack
            style = (converter.OptimizationStyle.Fixed if context.accelerator is None
                     else converter.OptimizationStyle.Runtime)
            with silenced() as log:
                try:
                    converter.convert_onnx_models_to_ort(
                        source, output_dir=Path(work) / "out",
                        optimization_styles=[style])
                except Exception as exc:
                    raise ExportError(f"onnxruntime's ORT converter failed: {exc}") from exc
            produced = sorted((Path(work) / "out").glob("*.ort"))
            if not produced:
                raise ExportError(f"onnxruntime's ORT converter wrote no .ort file: {log.getvalue()[-300:]}")
            shutil.move(str(produced[0]), path)
        return Written(details={"nodes": len(proto.graph.node)}, metadata=added)
