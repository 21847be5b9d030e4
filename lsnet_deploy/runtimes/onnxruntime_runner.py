"""ONNX Runtime runner for ONNX (``.onnx``) and ORT-format (``.ort``) files.

``ONNX`` and ``ORT_FORMAT`` declare those two formats once; the runner here and ``exporters/onnx_format.py``
and ``exporters/ort_format.py`` read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LsnetDeployError, RuntimeUnavailableError, first_line, require
from ..format_spec import FormatSpec, MetadataStore
from .base import InputMetadata, Runner, static_dims
from .ep_context import context_model_message, is_context_model
from .registry import register_runtime

ONNX = FormatSpec(
    name="onnx",
    aliases=(),
    suffixes=(".onnx",),
    extra="onnx",
    runtime="ort",
    runtime_aliases=("onnxruntime", "onnx"),
    description="ONNX, tuned for ONNX Runtime (CPU/GPU servers, desktops); TensorRT via trtexec",
    metadata=MetadataStore.NATIVE_MAP,
    options=frozenset({"dynamic", "dynamic_hw", "half", "int8", "calib", "opset", "simplify"}),
)
ORT_FORMAT = FormatSpec(
    name="ort",
    aliases=("onnxruntime-mobile",),
    suffixes=(".ort",),
    extra="onnx",
    runtime="ort",
    runtime_aliases=ONNX.runtime_aliases,
    description="ONNX Runtime Mobile format (Android/iOS apps with onnxruntime-mobile)",
    metadata=MetadataStore.NATIVE_MAP,
    options=frozenset({"dynamic", "dynamic_hw", "half", "int8", "calib", "opset", "simplify"}),
)
ONNX_SUFFIX = ONNX.suffix
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "coreml": "CoreMLExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
                    "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider"}
#: providers that run on a CUDA GPU (``--device cuda:N`` selects which)
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
DTYPE_NAMES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(bfloat16)": "bfloat16"}


def resolve_provider(name: str | None) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full provider names pass through."""
    if not name:
        return "CPUExecutionProvider"
    return PROVIDER_ALIASES.get(name.lower(), name)


def _session(path: Path, options=None, providers=("CPUExecutionProvider",)):
    ort = require("onnxruntime", OnnxRuntimeRunner.extra, "to run ONNX models")
    if options is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=list(providers))


def read_onnxruntime_metadata(path: Path) -> dict[str, str]:
    """The custom metadata map ONNX Runtime reports for an ONNX or ORT-format file.

    Raises:
        LsnetDeployError: ONNX Runtime cannot read the file.
    """
    try:
        session = _session(path)
    except ImportError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise LsnetDeployError(f"ONNX Runtime cannot read {path}: {first_line(exc)}") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read with ``onnx`` (external weights are not loaded), or with
    ONNX Runtime when ``onnx`` is not installed.

    Raises:
        LsnetDeployError: the file is not readable ONNX.
    """
    try:
        onnx = require("onnx", OnnxRuntimeRunner.extra)
    except ImportError:
        return read_onnxruntime_metadata(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise LsnetDeployError(f"{path} is not a readable ONNX file ({type(exc).__name__}); re-export it") from None
    return {prop.key: prop.value for prop in model.metadata_props}


class OrtSessionIO:
    """What every runner over an ``onnxruntime.InferenceSession`` (``self.session``, fed by ``self.input_name``)
    does the same way: run it, return float32 outputs, drop it."""

    session = None
    input_name: str = ""

    def _deactivate(self) -> None:
        self.session = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out, dtype=np.float32) for out in self.session.run(None, {self.input_name: x})]


@register_runtime
class OnnxRuntimeRunner(OrtSessionIO, Runner):
    """Runs an ONNX (or ORT-format) model with ONNX Runtime.

    Args:
        path: the model file.
        provider: execution provider (``cpu``, ``cuda``, ... or a full provider name); default the CPU, or
            CUDA when ``device`` is a CUDA device.
        threads: intra-op threads (None: ONNX Runtime's default).
        spinning: let idle intra-op threads spin. Off by default: sessions sharing a process (as in an
            interleaved benchmark) otherwise steal each other's cores.
        device: ``cuda:N`` selects the GPU for the CUDA and TensorRT providers.
    """

    spec = ONNX
    suffixes = (*ONNX.suffixes, *ORT_FORMAT.suffixes)  # it runs both formats' files
    title = "ONNX Runtime"
    takes_provider = True
    takes_spinning = True

    def __init__(self, path: str | Path, provider: str | None = None, threads: int | None = None,
                 spinning: bool = False, device: str | None = None):
        super().__init__()
        self.path = Path(path)
        self.device_id = int(device.split(":", 1)[1]) if device and ":" in device else 0
        if not provider and device and device.startswith("cuda"):
            provider = "cuda"  # --device cuda without --provider: the CUDA provider on that GPU
        self.provider = resolve_provider(provider)
        self.threads = threads
        self.spinning = spinning
        self.session = None
        self.input_name = None

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str]:
        """``metadata_props`` of an ONNX file; ONNX Runtime's custom metadata map of an ORT-format file."""
        if Path(path).suffix.lower() == ONNX_SUFFIX:
            return read_onnx_metadata(path)
        return read_onnxruntime_metadata(path)

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """A CUDA ``--device`` with no provider (it picks the CUDA provider) or with a GPU provider; else the CPU."""
        if requested and requested.startswith("cuda") and not provider:
            return requested
        gpu = {p.lower() for p in GPU_PROVIDERS}
        return "cuda" if provider and resolve_provider(provider).lower() in gpu else "cpu"

    def _activate(self) -> None:
        if is_context_model(self.path):  # its EPContext node runs on no EP of this runner
            raise RuntimeUnavailableError(context_model_message(self.path))
        ort = require("onnxruntime", self.extra, "to run ONNX models")
        available = ort.get_available_providers()
        if self.provider not in available:
            raise RuntimeUnavailableError(
                f"ONNX Runtime provider {self.provider} is not available here (available: {', '.join(available)})")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        if self.provider == "CPUExecutionProvider":
            providers = [self.provider]
        elif self.provider in GPU_PROVIDERS:
            providers = [(self.provider, {"device_id": self.device_id}), "CPUExecutionProvider"]
        else:
            providers = [self.provider, "CPUExecutionProvider"]
        try:
            self.session = _session(self.path, options, providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise RuntimeUnavailableError(f"ONNX Runtime cannot load {self.path}: {first_line(exc)}") from None
        self.input_name = self.session.get_inputs()[0].name

    def input_metadata(self) -> InputMetadata | None:
        """The session's first input: symbolic dimensions as None, ``tensor(float)`` as ``float32``."""
        if self.session is None:
            return None
        first = self.session.get_inputs()[0]
        return static_dims(first.shape), DTYPE_NAMES.get(first.type, "float32")

    def metadata(self) -> dict[str, str]:
        """The model's metadata_props (raw strings)."""
        if self.session is None:
            self.activate()
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def info(self) -> dict:
        import onnxruntime

        return {"runtime": self.runtime, "runtime_version": onnxruntime.__version__, "provider": self.provider,
                "threads": self.threads, "spinning": self.spinning}
