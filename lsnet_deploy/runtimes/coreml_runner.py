"""Core ML runner for ``.mlpackage`` / ``.mlmodel`` files (macOS only: Core ML has no Linux runtime).

Its metadata reader works everywhere (coremltools reads the spec on any OS).

Like every runner it takes float32 NCHW batches normalized as the metadata says. A model with an image
input gets them back as 8-bit RGB images (de-normalized with the model's own mean and std metadata,
rounded and clipped), which is what a camera frame would be; a tensor-input model gets them as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError, require
from dataclasses import dataclass

from ..format_spec import FormatSpec, MetadataStore
from ..option_fields import option
from .base import InputMetadata, Runner
from .registry import register_runtime


@dataclass(frozen=True)
class CoreMLOptions:
    """The options only ``--format coreml`` takes (``FormatSpec.own_options``)."""

    #: the minimum deployment target (``iOS16``...); None for the default
    deployment_target: str | None = option(None, flag="--target", help="Minimum deployment target (default iOS16).")
    image_input: bool = option(True, flag="--tensor-input", help="Plain tensor input instead of an image.")
    float32: bool = option(False, flag="--float32", help="Core ML: float32 compute (CPU and GPU only: the Neural "
                           "Engine runs float16, so float16 is Core ML's default).")


#: the format, declared once: the runner here and ``exporters/coreml_format.py`` both read it
COREML = FormatSpec(
    name="coreml",
    aliases=("mlpackage", "mlprogram"),
    suffixes=(".mlpackage",),
    extra="coreml",
    runtime="coreml",
    description="Core ML ML program (iOS, iPadOS, macOS apps; Neural Engine, GPU, CPU)",
    metadata=MetadataStore.NATIVE_MAP,
    options=frozenset({"half", "int8", "calib"}),
    own_options=CoreMLOptions,
)
COMPUTE_UNITS = {"all": "ALL", "cpu": "CPU_ONLY", "cpu_only": "CPU_ONLY", "gpu": "CPU_AND_GPU",
                 "cpu_and_gpu": "CPU_AND_GPU", "ne": "CPU_AND_NE", "ane": "CPU_AND_NE", "cpu_and_ne": "CPU_AND_NE"}
LOGITS = "logits"
# Core ML ArrayFeatureType.ArrayDataType codes
DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}


@register_runtime
class CoreMLRunner(Runner):
    """Runs a Core ML model with ``coremltools.models.MLModel.predict``.

    Args:
        path: the ``.mlpackage`` (or ``.mlmodel``).
        compute_units: ``all`` (default), ``cpu_only``, ``cpu_and_gpu`` or ``cpu_and_ne``
            (short forms ``cpu``, ``gpu``, ``ne``/``ane`` too).

    Raises:
        UsageError: unknown compute units.
    """

    spec = COREML
    suffixes = (*COREML.suffixes, ".mlmodel")  # it also runs the older single-file Core ML models
    title = "Core ML"

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

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str]:
        """Core ML user-defined metadata, read from the model spec (no macOS needed)."""
        ct = require("coremltools", cls.extra, "to read Core ML models")
        try:
            spec = ct.utils.load_spec(str(path))
        except Exception as exc:
            raise LsnetDeployError(f"coremltools cannot read {path}: {exc}") from None
        return dict(spec.description.metadata.userDefined)

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """``apple``: Core ML itself spreads the work over the Neural Engine, GPU and CPU."""
        return "apple"

    def _activate(self) -> None:
        if sys.platform != "darwin":
            raise RuntimeUnavailableError(f"Core ML runs models only on macOS, not on {sys.platform}; run "
                                          f"{self.path.name} on a Mac (examples/swift shows the app side), or "
                                          "use the ONNX or ExecuTorch export here")
        ct = require("coremltools", self.extra, "to run Core ML models")
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

    def input_metadata(self) -> InputMetadata | None:
        """The spec's first input: a multi-array's shape and type, or an image input as the float32
        (N, 3, H, W) batch this runner takes; flexible dimensions as None."""
        if self.model is None:
            return None
        first = self.model.get_spec().description.input[0]
        if self.image_input:
            image = first.type.imageType
            return [1, 3, int(image.height) or None, int(image.width) or None], "float32"
        array = first.type.multiArrayType
        shape: list[int | None] = [int(d) for d in array.shape]
        if array.HasField("shapeRange"):
            shape = [int(r.lowerBound) if r.lowerBound == r.upperBound else None for r in array.shapeRange.sizeRanges]
        return shape, DTYPES.get(int(array.dataType), "float32")

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
