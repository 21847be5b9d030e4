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

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ExportError, first_line, require
from ..quiet import silenced
from .calibration import batches, calibration_images, load_images, preprocessing_for

if TYPE_CHECKING:
    import onnx

QUANTIZED_OP_TYPES = ("Conv", "Gemm", "MatMul")


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


def quantize_qdq(model: "onnx.ModelProto", calib: str | Path, metadata: dict[str, str]
                 ) -> tuple["onnx.ModelProto", dict]:
    """Calibrate ``model`` on the images in ``calib`` and insert explicit int8 Q/DQ nodes.

    The result is validated once, like every artifact, by the shared export path (on calibration
    images, where a collapsed top-1 agreement refuses the export).

    Args:
        model: a float32 ONNX model (not modified).
        calib: directory of calibration images.
        metadata: the artifact metadata (its preprocessing is applied to the images).

    Returns:
        The quantized model (same inputs and outputs, float32) and the calibration record for the
        metadata (``int8_calibration``: image count, method, what was quantized).

    Raises:
        UsageError: bad calibration directory or image.
        ExportError: ONNX Runtime's quantizer failed.
    """
    ort = require("onnxruntime", "onnx", "to calibrate int8 models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    import onnx

    paths = calibration_images(calib)
    images = load_images(paths, preprocessing_for(metadata))
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
                raise ExportError("int8 calibration failed (onnxruntime.quantization): "
                                  f"{first_line(exc, log.getvalue()[-300:])}") from exc
        quantized = onnx.load_model(str(target))
    record = {"images": len(paths), "method": "minmax", "activations": "int8 symmetric per tensor",
              "weights": "int8 symmetric per channel", "quantized_ops": list(QUANTIZED_OP_TYPES)}
    return quantized, record
