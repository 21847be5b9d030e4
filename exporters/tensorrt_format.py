"""``--format tensorrt`` (``trt``, ``engine``): a serialized TensorRT engine, built from the exported ONNX.

Steps: the ONNX pipeline for TensorRT (``build_onnx(target="tensorrt")``: no ONNX Runtime rewrites;
float16 or int8 Q/DQ precision is in the graph itself), a check of that exact graph against TensorRT's ONNX
operator list (``tensorrt_ops``), the float16/int8 ONNX validated on ONNX Runtime against PyTorch before any
minutes are spent building, then a strongly typed engine built with TensorRT's Python API
(``tensorrt_build``, TensorRT 10 and 11). Written beside the engine, all moved into place together:

* ``<engine>.onnx``: the exact ONNX the engine was built from, to rebuild on another GPU or TensorRT
  release (engines are tied to both) with the printed ``trtexec`` command;
* ``<engine>.json``: the metadata engines cannot carry, the build settings and that ``trtexec`` command.

Building needs ``tensorrt`` and an NVIDIA GPU with CUDA; without them the export stops before any work,
saying what is missing and how to build on the device instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ExportError, MissingDependencyError, RuntimeUnavailableError, UsageError, require
from ..metadata import output_names_of
from ..metadata_codec import SIDECAR_SUFFIX, sidecar_path
from ..runtimes.tensorrt_runner import TENSORRT, TensorRTOptions, cuda_device_count
from .context import ExportContext, Written, output_entries
from .exporter import Exporter
from .options import ExportOptions
from .registry import register_exporter
from .validation import accuracy_gate, validate_file
from .onnx_format import INPUT_NAME, MIN_OPSET, OnnxExporter, build_onnx
from .tensorrt_build import SUPPORTED_MAJORS, EngineSettings, build_engine, tensorrt_major, trtexec_command
from .tensorrt_ops import TENSORRT_OPSETS, check_tensorrt_support

#: the runtime that validates the ONNX an engine is built from
ONNX_RUNTIME = "ort"
#: the largest batch of a ``--dynamic`` profile when ``--max-batch`` is not given
DEFAULT_MAX_BATCH = 32
ELSEWHERE_HINT = "or export --format onnx here and build the engine on the device with trtexec"
# normalization statistics and softmax must stay float32 inside a float16 graph (half.py puts them there)
FLOAT32_OPS = ("InstanceNormalization", "GroupNormalization", "LayerNormalization", "Softmax", "LogSoftmax")


def float32_islands_missing(model) -> list[str]:
    """Nodes of a float16 graph that would compute normalization statistics or softmax in float16."""
    from onnx import TensorProto, shape_inference

    graph = shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input)}
    return [f"{n.op_type} {n.name}" for n in graph.node
            if n.op_type in FLOAT32_OPS and types.get(n.input[0]) == TensorProto.FLOAT16]


@register_exporter
class TensorRTExporter(Exporter):
    """TensorRT engine (NVIDIA GPUs, Jetson), strongly typed, TensorRT 10 and 11."""

    spec = TENSORRT
    no_dynamic_hw_reason = "a TensorRT engine would need an optimization profile over height and width, not offered yet"
    ska_auto = "shifted_slices"
    #: its ONNX is quantized by ``onnx_quantize``, which keeps ``keep_float`` modules float
    int8_keep_float = True
    side_files = (SIDECAR_SUFFIX, OnnxExporter.suffix)  # the metadata sidecar, the ONNX it was built from

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        low, high = max(MIN_OPSET, TENSORRT_OPSETS[0]), TENSORRT_OPSETS[1]
        if options.opset is not None and not low <= options.opset <= high:
            raise UsageError(f"--opset {options.opset} is not read by every TensorRT 10; use {low} to {high}")
        own = options.own(TensorRTOptions)
        if own.max_batch is not None:
            if not options.dynamic:
                raise UsageError("--max-batch sets the largest batch of a --dynamic engine; add --dynamic")
            if own.max_batch < options.batch:
                raise UsageError(f"--max-batch {own.max_batch} is below --batch {options.batch} (the smallest "
                                 "batch of the profile)")
        if own.workspace is not None and not own.workspace > 0:
            raise UsageError(f"--workspace is in GiB and must be positive, got {own.workspace}")
        if own.dla_core is not None:
            if own.dla_core < 0:
                raise UsageError(f"--dla-core must be 0 or more, got {own.dla_core}")
            if not (options.half or options.int8):
                raise UsageError("DLA runs only float16 and int8 layers: add --half or --int8 to --dla-core")
        if own.timing_cache is not None:
            cache = Path(own.timing_cache)
            parent = cache.parent if str(cache.parent) else Path(".")
            if cache.is_dir():
                raise UsageError(f"--timing-cache {cache} is a directory; give a file (created if missing)")
            if not parent.is_dir():
                raise UsageError(f"--timing-cache {cache}: directory {parent} does not exist")
            if not os.access(parent, os.W_OK) or (cache.exists() and not os.access(cache, os.R_OK | os.W_OK)):
                raise UsageError(f"--timing-cache {cache} cannot be read and rewritten; check its permissions")

    def check_environment(self, options: ExportOptions) -> None:
        try:
            require("tensorrt", self.extra)
        except MissingDependencyError:
            purpose = f"needed, with an NVIDIA GPU and CUDA, to build TensorRT engines; {ELSEWHERE_HINT}"
            raise MissingDependencyError("tensorrt", self.extra, purpose) from None
        import tensorrt


        if tensorrt_major(tensorrt.__version__) not in SUPPORTED_MAJORS:
            raise RuntimeUnavailableError(f"TensorRT {tensorrt.__version__} is installed; lsnet-deploy builds "
                                          "strongly typed engines with TensorRT 10 or 11: pip install "
                                          "\"lsnet-deploy[tensorrt]\"")
        if cuda_device_count() == 0:
            raise RuntimeUnavailableError(f"--format tensorrt builds on an NVIDIA GPU with CUDA and none was found "
                                          f"here (TensorRT {tensorrt.__version__} is installed); build on a machine "
                                          f"with one, {ELSEWHERE_HINT}")
        for module, purpose in (("onnx", "to write ONNX files"), ("onnxscript", "for torch.onnx.export"),
                                ("onnxruntime", "to check the ONNX before the engine is built")):
            require(module, "onnx", purpose)
        if options.simplify:
            require("onnxsim", "onnx", "to simplify ONNX graphs")

    def engine_settings(self, model, options: ExportOptions):
        """The TensorRT build settings these options ask for."""

        own = options.own(TensorRTOptions)
        max_batch = None
        if options.dynamic:
            max_batch = own.max_batch or max(DEFAULT_MAX_BATCH, options.batch)
        return EngineSettings(input_name=INPUT_NAME, input_shape=(model.in_chans, *model.img_size),
                              batch=options.batch, max_batch=max_batch, workspace_gib=own.workspace,
                              timing_cache=Path(own.timing_cache) if own.timing_cache else None,
                              dla_core=own.dla_core)

    def write_onnx(self, model, example, onnx_path: Path, context: ExportContext) -> tuple[dict, dict[str, str]]:
        """Write the exact ONNX the engine is built from, after checking and validating it (no TensorRT needed).

        Returns:
            Details to report (the operator-list check, the ONNX Runtime validation), and the metadata
            keys the ONNX pipeline added (int8: its calibration).

        Raises:
            ExportError: an operator, type or shape TensorRT would reject, or float16 normalization/softmax.
            ValidationError: the float16/int8 ONNX drifts from PyTorch (int8: its top-1 agreement collapsed).
        """
        import onnx

        options = context.options
        settings = self.engine_settings(model, options)
        proto, added = build_onnx(model, example, context, "tensorrt")
        context.progress("checking the graph against TensorRT's ONNX operator list")
        support = check_tensorrt_support(proto, settings.batch_sizes())
        if not support.ok:
            raise ExportError(f"the ONNX graph is not ready for TensorRT: {support.summary()}; "
                              "try another --ska form")
        if options.half and (unsafe := float32_islands_missing(proto)):
            raise ExportError(f"the float16 graph computes {', '.join(unsafe[:3])} in float16; they must stay "
                              "float32 (report a bug)")
        onnx.save_model(proto, str(onnx_path))
        details: dict = {"onnx_check": support.summary()}
        if options.validate:
            # the engine itself is validated where it runs; its ONNX is validated here, before minutes of build
            context.progress(f"validating the {options.precision} ONNX on ONNX Runtime before building")
            report = validate_file(onnx_path, ONNX_RUNTIME, context, f"the {options.precision} ONNX for TensorRT")
            details["onnx_validation"] = report.summary()
            if options.int8:
                details["int8_top1_agreement"] = f"{report.top1_agreement:.1%} on {report.samples} held-out calibration images"
            if options.data is not None:
                # the engine cannot run here; the int8 (or float16) ONNX it is built from is gated instead
                details["onnx_accuracy"] = accuracy_gate(onnx_path, ONNX_RUNTIME, f"the {options.precision} ONNX "
                                                         "for TensorRT", context)
        return details, added

    def write(self, model, example, path: Path, context: ExportContext) -> Written:

        options = context.options
        settings = self.engine_settings(model, options)
        details, added = self.write_onnx(model, example, Path(f"{path}.onnx"), context)
        info = build_engine(Path(f"{path}.onnx"), path, settings, context.progress)
        name = context.target.name
        command = trtexec_command(f"{name}.onnx", name, settings)
        sidecar = engine_sidecar(name, options.precision, settings, info, command, details,
                                 {**context.metadata, **added})
        sidecar_path(path).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        return Written(details={"trtexec": command, "sidecar": sidecar_path(name).name,
                                "tensorrt_version": info["tensorrt_version"], "device": info["device"],
                                "build_seconds": info["build_seconds"], **details}, metadata=added)

    def cannot_validate(self, context: ExportContext) -> str | None:
        import torch

        if not torch.cuda.is_available():
            return ("the engine runs on CUDA through PyTorch, and this PyTorch has no CUDA (the ONNX it was built "
                    "from was validated on ONNX Runtime)")
        return None


def engine_sidecar(name: str, precision: str, settings, info: dict, command: str, details: dict,
                   metadata: dict) -> dict:
    """The ``<engine>.json`` written beside an engine: how it was built (``info``, the trtexec command), its
    input binding and every output binding in order, and the artifact metadata (raw strings)."""
    profile = settings.profile()
    shapes = {entry["name"]: entry["shape"] for entry in output_entries(metadata) or []}
    return {
        "format": "tensorrt", "engine": name, "onnx": f"{name}.onnx", "precision": precision,
        **info,
        "input": {"name": settings.input_name, "dtype": "float32", "layout": "NCHW",
                  "shape": [-1 if settings.dynamic else settings.batch, *settings.input_shape],
                  "profile": None if profile is None else dict(zip(("min", "opt", "max"), map(list, profile)))},
        "outputs": [{"name": name, "dtype": "float32", "shape": shapes.get(name)} for name in output_names_of(metadata)],
        "workspace_gib": settings.workspace_gib, "trtexec": command, **details,
        "metadata": metadata,
    }
