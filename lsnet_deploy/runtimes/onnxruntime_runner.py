"""ONNX Runtime runner for ``.onnx`` and ``.ort`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RuntimeUnavailableError, require
from .base import Runner

PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "coreml": "CoreMLExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
                    "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider"}


def resolve_provider(name: str | None) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full provider names pass through."""
    if not name:
        return "CPUExecutionProvider"
    return PROVIDER_ALIASES.get(name.lower(), name)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX (or ORT-format) model with ONNX Runtime.

    Args:
        path: the model file.
        provider: execution provider (``cpu``, ``cuda``, ... or a full provider name).
        threads: intra-op threads (None: ONNX Runtime's default).
        spinning: let idle intra-op threads spin. Off by default: sessions sharing a process (as in an
            interleaved benchmark) otherwise steal each other's cores.
        device: ``cuda:N`` selects the GPU for the CUDA and TensorRT providers.
    """

    runtime = "ort"

    def __init__(self, path: str | Path, provider: str | None = None, threads: int | None = None,
                 spinning: bool = False, device: str | None = None):
        super().__init__()
        self.path = Path(path)
        self.device_id = int(device.split(":", 1)[1]) if device and ":" in device else 0
        self.provider = resolve_provider(provider)
        self.threads = threads
        self.spinning = spinning
        self.session = None
        self.input_name = None

    def _activate(self) -> None:
        ort = require("onnxruntime", "onnx", "to run ONNX models")
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
        elif self.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            providers = [(self.provider, {"device_id": self.device_id}), "CPUExecutionProvider"]
        else:
            providers = [self.provider, "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise RuntimeUnavailableError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def _deactivate(self) -> None:
        self.session = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)

    def metadata(self) -> dict[str, str]:
        """The model's metadata_props (raw strings)."""
        if self.session is None:
            self.activate()
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def info(self) -> dict:
        import onnxruntime

        return {"runtime": self.runtime, "runtime_version": onnxruntime.__version__, "provider": self.provider,
                "threads": self.threads, "spinning": self.spinning}
