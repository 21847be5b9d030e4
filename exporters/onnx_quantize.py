"""int8 ONNX with explicit Q/DQ nodes, calibrated on a directory of images (ONNX Runtime static quantization).

The Q/DQ layout is the one TensorRT's explicit quantization accepts, so the same file runs on ONNX Runtime
and builds a strongly typed int8 engine on TensorRT 10 and 11 (which has no calibrators any more):

* signed int8 activations and weights, symmetric (zero point 0): TensorRT refuses non-zero zero points;
* weights per output channel, activations per tensor;
* biases stay float: TensorRT has no int32 DequantizeLinear;
* Q/DQ pairs only where a Conv, Gemm or MatMul reads a tensor, none added for their outputs as such, one
  pair per reader (ONNX Runtime's own advice for TensorRT, see its ``qdq_quantizer.py``). GroupNorm, the
  SKA product and softmax compute in float; an Add that reads the same tensor as a convolution sees its
  dequantized values.

Calibration images are preprocessed exactly as the artifact's metadata tells apps to (``preprocess.py``),
so the ranges are measured on the tensors the model will really see. Min/max calibration keeps memory
flat however many images there are (ONNX Runtime's histogram calibrators hold every activation of every
image). The quantized model is then run beside the float32 one on the calibration images, and a collapsed
top-1 agreement refuses the export.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..errors import ExportError, UsageError, ValidationError, require
from ..metadata import decode_metadata
from ..preprocess import Preprocessing, preprocess
from ..quiet import silenced
from ..verify import ComparisonReport, compare_outputs

if TYPE_CHECKING:
    import onnx

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: more images than this add little to min/max ranges and cost minutes; a deterministic spread is used
MAX_CALIBRATION_IMAGES = 512
#: images compared with the float32 model after quantization (spread over the directory)
MAX_VALIDATION_IMAGES = 64
QUANTIZED_OP_TYPES = ("Conv", "Gemm", "MatMul")


def calibration_images(directory: str | Path, limit: int = MAX_CALIBRATION_IMAGES) -> list[Path]:
    """The images under ``directory`` (recursively, sorted), spread evenly down to ``limit``.

    Raises:
        UsageError: missing, unreadable or empty directory, or a file that is not an image.
    """
    root = Path(directory)
    if not root.exists():
        raise UsageError(f"--calib {root}: no such directory; give a folder of calibration images")
    if not root.is_dir():
        raise UsageError(f"--calib {root} is not a directory; give a folder of calibration images")
    if not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(f"--calib {root} is not readable; check its permissions")
    try:
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise UsageError(f"--calib {root} cannot be listed: {exc}") from None
    if not found:
        raise UsageError(f"--calib {root} holds no images ({', '.join(IMAGE_SUFFIXES)}); put a few hundred "
                         "pictures like the ones the model will see there")
    if len(found) > limit:
        picks = np.linspace(0, len(found) - 1, limit).round().astype(int)
        found = [found[i] for i in picks]
    _check_headers(found)
    return found


def _check_headers(paths: list[Path]) -> None:
    """Open each file's header (cheap) so a non-image fails before minutes of export, not after."""
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UsageError(f"--calib: {path}: not an image Pillow can read ({exc.__class__.__name__}); "
                             "remove or replace that file") from None


def preprocessing_for(metadata: dict[str, str]) -> Preprocessing:
    """The recipe an app reads from the artifact's metadata (the one calibration must use)."""
    return Preprocessing.from_metadata(decode_metadata(metadata))


def load_images(paths: list[Path], recipe: Preprocessing) -> np.ndarray:
    """Preprocess calibration images into one (N, 3, H, W) float32 array.

    Raises:
        UsageError: a file that is not a readable image, named with the fix.
    """
    try:
        return preprocess(paths, recipe)
    except UsageError as exc:
        raise UsageError(f"--calib: {exc}; remove or replace that file") from None


def batches(images: np.ndarray, batch: int | None) -> Iterator[np.ndarray]:
    """Split into batches of ``batch`` images (None: dynamic batch, chunks of up to 8).

    With a fixed batch the remainder is dropped, unless there are fewer images than one batch, in which
    case they are repeated to fill it.
    """
    if batch is None:
        for start in range(0, len(images), 8):
            yield images[start:start + 8]
        return
    if len(images) < batch:
        images = np.concatenate([images] * (batch // len(images) + 1))[:batch]
    for start in range(0, len(images) - batch + 1, batch):
        yield images[start:start + batch]


def _fixed_batch(model: "onnx.ModelProto") -> tuple[str, int | None]:
    graph_input = model.graph.input[0]
    first = graph_input.type.tensor_type.shape.dim[0]
    return graph_input.name, (first.dim_value if first.HasField("dim_value") and first.dim_value > 0 else None)


class ImageCalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol (``get_next``) over preprocessed images."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int | None):
        self._feeds = iter([{input_name: chunk} for chunk in batches(images, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as an input feed, or None when done."""
        return next(self._feeds, None)


def quantize_qdq(model: "onnx.ModelProto", calib: str | Path, metadata: dict[str, str]) -> "onnx.ModelProto":
    """Calibrate ``model`` on the images in ``calib``, insert explicit int8 Q/DQ nodes, and check the result.

    The quantized model is compared with the float32 one on ONNX Runtime over the calibration images;
    a top-1 agreement below ``verify.MIN_TOP1["int8"]`` means the calibration collapsed and is refused,
    with or without ``--no-validate``. What was done is recorded in ``metadata["int8_calibration"]``.

    Args:
        model: a float32 ONNX model (not modified).
        calib: directory of calibration images.
        metadata: the artifact metadata (its preprocessing is applied to the images); updated in place.

    Returns:
        The quantized model (same inputs and outputs, float32).

    Raises:
        UsageError: bad calibration directory or image.
        ExportError: ONNX Runtime's quantizer failed.
        ValidationError: top-1 agreement with float32 collapsed.
    """
    ort = require("onnxruntime", "onnx", "to calibrate int8 models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    import onnx

    paths = calibration_images(calib)
    recipe = preprocessing_for(metadata)
    images = load_images(paths, recipe)
    input_name, batch = _fixed_batch(model)
    reader = ImageCalibrationReader(input_name, images, batch)
    # the quantizer's own sessions log from C++ (unused initializers and the like) straight to stderr
    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory(prefix="lsnet-int8-") as work:
        source, target = Path(work) / "float.onnx", Path(work) / "int8.onnx"
        onnx.save_model(model, str(source))
        with silenced() as log:
            try:
                quantize_static(
                    str(source), str(target), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OP_TYPES), per_channel=True, reduce_range=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "DedicatedQDQPair": True,
                                   "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES)})
            except Exception as exc:
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else log.getvalue()[-300:]
                raise ExportError(f"int8 calibration failed (onnxruntime.quantization): {detail}") from exc
        report = _agreement(source, target, input_name, validation_images(calib, metadata, batch or 1, None))
        quantized = onnx.load_model(str(target))
    if not report.passed:
        raise ValidationError(
            f"int8 calibration collapsed: top-1 agreement with float32 is {report.top1_agreement:.0%} on "
            f"{report.samples} calibration images (at least {report.min_top1:.0%} needed); nothing was written. "
            "Calibrate on more pictures like the ones the model will see, or use --half")
    metadata["int8_calibration"] = json.dumps({
        "images": len(paths), "method": "minmax", "activations": "int8 symmetric per tensor",
        "weights": "int8 symmetric per channel", "quantized_ops": list(QUANTIZED_OP_TYPES),
        "top1_agreement_float32": round(report.top1_agreement, 4), "agreement_samples": report.samples,
        "cosine_float32": round(report.cosine, 6)})
    return quantized


def _agreement(float_path: Path, int8_path: Path, input_name: str, inputs: list[np.ndarray]) -> ComparisonReport:
    """Float32 and int8 ONNX models run side by side on ONNX Runtime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    outputs = []
    for path in (float_path, int8_path):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        outputs.append(np.concatenate([session.run(None, {input_name: x})[0] for x in inputs]))
    return compare_outputs(outputs[0], outputs[1], "int8")


def validation_images(calib: str | Path, metadata: dict[str, str], batch: int,
                      extra_batch: int | None = None) -> list[np.ndarray]:
    """Batches of preprocessed calibration images to compare an int8 artifact with float32 on.

    Args:
        calib: the calibration directory.
        metadata: artifact metadata (preprocessing).
        batch: images per batch (a fixed-batch artifact takes only that).
        extra_batch: one more batch of this size (dynamic exports), or None.

    Uses up to ``MAX_VALIDATION_IMAGES`` images spread over the directory.
    """
    paths = calibration_images(calib, limit=MAX_VALIDATION_IMAGES)
    images = load_images(paths, preprocessing_for(metadata))
    out = list(batches(images, batch))
    if extra_batch is not None:
        out.append(next(batches(images, extra_batch)))
    return out
