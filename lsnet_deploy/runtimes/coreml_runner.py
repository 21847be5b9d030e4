"""Core ML runner for ``.mlpackage`` / ``.mlmodel`` files (macOS only: Core ML has no Linux runtime).

Like every runner it takes float32 NCHW batches normalized as the metadata says. A model with an image
input gets them back as 8-bit RGB images (de-normalized with the model's own mean and std metadata,
rounded and clipped), which is what a camera frame would be; a tensor-input model gets them as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import RuntimeUnavailableError, UsageError, require
from .base import Runner

COMPUTE_UNITS = {"all": "ALL", "cpu": "CPU_ONLY", "cpu_only": "CPU_ONLY", "gpu": "CPU_AND_GPU",
                 "cpu_and_gpu": "CPU_AND_GPU", "ne": "CPU_AND_NE", "ane": "CPU_AND_NE", "cpu_and_ne": "CPU_AND_NE"}
LOGITS = "logits"


class CoreMLRunner(Runner):
    """Runs a Core ML model with ``coremltools.models.MLModel.predict``.

    Args:
        path: the ``.mlpackage`` (or ``.mlmodel``).
        compute_units: ``all`` (default), ``cpu_only``, ``cpu_and_gpu`` or ``cpu_and_ne``
            (short forms ``cpu``, ``gpu``, ``ne``/``ane`` too).

    Raises:
        UsageError: unknown compute units.
    """

    runtime = "coreml"

    def __init__(self, path: str | Path, compute_units: str = "all"):
        super().__init__()
        self.path = Path(path)
        key = compute_units.lower()
        if key not in COMPUTE_UNITS:
            raise UsageError(f"unknown Core ML compute units {compute_units!r}; choose one of: all, cpu_only, "
                             "cpu_and_gpu, cpu_and_ne")
        self.compute_units = COMPUTE_UNITS[key]
        self.model = None
        self.input_name = None
        self.image_input = False
        self.output_name = None
        self.mean = self.std = None

    def _activate(self) -> None:
        if sys.platform != "darwin":
            raise RuntimeUnavailableError(f"Core ML runs models only on macOS, not on {sys.platform}; run "
                                          f"{self.path.name} on a Mac, or benchmark ONNX/ExecuTorch exports here")
        ct = require("coremltools", "coreml", "to run Core ML models")
        try:
            self.model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit[self.compute_units])
        except Exception as exc:  # coremltools raises RuntimeError/Exception with Core ML's message
            raise RuntimeUnavailableError(f"Core ML cannot load {self.path}: {exc}") from None
        spec = self.model.get_spec()
        first = spec.description.input[0]
        self.input_name = first.name
        self.image_input = first.type.WhichOneof("Type") == "imageType"
        outputs = [o.name for o in spec.description.output if o.type.WhichOneof("Type") == "multiArrayType"]
        self.output_name = LOGITS if LOGITS in outputs else outputs[0]
        meta = dict(spec.description.metadata.userDefined)
        if self.image_input:
            self.mean = np.asarray(json.loads(meta.get("mean", "[0.485, 0.456, 0.406]")), np.float32)
            self.std = np.asarray(json.loads(meta.get("std", "[0.229, 0.224, 0.225]")), np.float32)

    def _deactivate(self) -> None:
        self.model = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.image_input:
            out = self.model.predict({self.input_name: x})[self.output_name]
            return np.asarray(out, dtype=np.float32)
        from PIL import Image

        pixels = (x * self.std[None, :, None, None] + self.mean[None, :, None, None]) * 255.0
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        rows = [self.model.predict({self.input_name: Image.fromarray(img, "RGB")})[self.output_name]
                for img in pixels]
        return np.concatenate([np.asarray(r, dtype=np.float32).reshape(1, -1) for r in rows])

    def info(self) -> dict:
        try:
            import coremltools

            version = coremltools.__version__
        except ImportError:
            version = None
        return {"runtime": self.runtime, "runtime_version": version, "compute_units": self.compute_units.lower()}
