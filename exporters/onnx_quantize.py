"""int8 ONNX with explicit Q/DQ nodes, calibrated on a directory of images (ONNX Runtime static quantization).

Where the Q/DQ pairs go depends on who runs the file (``PLACEMENTS``):

* ``onnxruntime`` (``--format onnx`` / ``ort``): every operator ONNX Runtime has an int8 kernel for reads
  *and* writes int8 (DQ -> op -> Q), so its QDQ fusion turns them into QLinearConv, QLinearMatMul,
  QLinearAdd... Activations are uint8 with a zero point, weights int8 per output channel: the u8 x s8
  product is what x86 VNNI (and ARM's dot-product units) compute natively; s8 activations ran 1.3x
  slower here. Q/DQ pairs on a convolution's input only (TensorRT's layout) leave ONNX Runtime a float
  convolution between a DequantizeLinear and the next op: slower than float32 (measured 2.1x).
* ``tensorrt``: the layout TensorRT's explicit quantization accepts, for strongly typed int8 engines on
  TensorRT 10 and 11 (which has no calibrators): signed int8 symmetric activations and weights (zero point
  0), weights per output channel, biases float, Q/DQ pairs only where a Conv, Gemm or MatMul reads a tensor,
  one pair per reader. TensorRT places int8 outputs itself.
* ``qnn`` (``--format qnn``, ``--accelerator htp``): the layout Qualcomm's HTP takes, from ONNX Runtime's
  QNN helpers (``qnn_preprocess_model``, ``get_qnn_qdq_config``): every operator reads and writes Q/DQ
  tensors, activations uint8 asymmetric, weights int8 symmetric per channel. On the HTP a layer that 8
  bits cannot carry is better in 16-bit activations than in float (fp16 next to int8 costs conversions, and
  v69 has no fp16 at all), so ``keep_float`` there means uint16 activations (A16W8), not float.

In the first two, GroupNorm and the SKA product's normalisation compute in float. ``keep_float`` leaves whole
modules (named as in the PyTorch model) in float: the mixed-precision search uses it. Calibration images
are preprocessed exactly as the artifact's metadata tells apps to. Activation ranges are percentiles of
ONNX Runtime's histograms (``calibration.ACTIVATION_PERCENTILE``), collected a chunk of images at a time: its histogram
calibrator otherwise holds every activation of every image at once (2.3 GB for 200 pictures at 128 px).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ExportError, first_line, require
from ..quiet import silenced
from .calibration import ACTIVATION_PERCENTILE, batches

if TYPE_CHECKING:
    import onnx

    from .context import ExportContext

#: operators whose inputs TensorRT's layout quantizes
TENSORRT_QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
#: operators ONNX Runtime runs in int8 when they read and write Q/DQ tensors (its QDQ fusions); the
#: rest (GroupNorm, Resize, Reshape's neighbours...) stay float between a DequantizeLinear and a QuantizeLinear
ONNXRUNTIME_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm", "Add", "Mul", "GlobalAveragePool", "Sigmoid", "Softmax",
                             "Concat", "Reshape", "Transpose", "Resize", "Slice", "Split", "Relu")
PLACEMENTS = ("onnxruntime", "tensorrt", "qnn")
#: what ``keep_float`` layers become in the ``qnn`` layout (``int8_kept_as`` in the export details)
QNN_WIDE_ACTIVATIONS = "uint16 activations"
#: calibration batches per histogram pass (each holds every intermediate tensor of its batches in memory)
CALIBRATION_CHUNK = 40
#: what the ``int8_calibration`` metadata's ``method`` says
CALIBRATION_METHOD = f"percentile {ACTIVATION_PERCENTILE:g}"
#: node metadata the dynamo exporter writes: the module path of the PyTorch module that made the node
NAME_SCOPES = "pkg.torch.onnx.name_scopes"


def _fixed_batch(model: "onnx.ModelProto") -> tuple[str, int | None]:
    graph_input = model.graph.input[0]
    first = graph_input.type.tensor_type.shape.dim[0]
    return graph_input.name, (first.dim_value if first.HasField("dim_value") and first.dim_value > 0 else None)


class ImageCalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over preprocessed images: ``get_next``, and ``__len__``
    with ``set_range`` so that the quantizer can calibrate chunk by chunk (``CalibStridedMinMax``)."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int | None):
        self._feeds = [{input_name: chunk} for chunk in batches(images, batch)]
        self._pending = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Feed batches ``start_index`` to ``end_index`` (exclusive) next."""
        self._pending = iter(self._feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as an input feed, or None when done."""
        return next(self._pending, None)


def chunk_size(batches_count: int, largest: int) -> int:
    """The largest divisor of ``batches_count`` not above ``largest`` (the quantizer's strided calibration
    takes only chunks that divide the data evenly)."""
    return max(d for d in range(1, min(largest, batches_count) + 1) if batches_count % d == 0)


def module_scopes(model: "onnx.ModelProto") -> dict[str, str]:
    """Node name -> name of the PyTorch module that produced it, read from the exporter's node metadata
    (call before onnxsim, which drops that metadata but keeps the node names)."""
    import ast

    scopes = {}
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == NAME_SCOPES:
                path = ast.literal_eval(prop.value)
                scopes[node.name] = path[-2] if len(path) > 1 else ""
    return scopes


def float_nodes(model: "onnx.ModelProto", scopes: dict[str, str], context: "ExportContext") -> list[str]:
    """Names of the nodes made by modules in ``context.keep_float`` (rewritten nodes, named
    ``<original>/<suffix>`` by this project's passes, count as their original's)."""
    return [node.name for node in model.graph.node
            if context.keeps_float(scopes.get(node.name, scopes.get(node.name.split("/")[0], "")))]


@contextlib.contextmanager
def near_constant_histograms():
    """Let ONNX Runtime's histogram calibrator take tensors whose values barely vary.

    Its first histogram of a tensor spans the tensor's own |min|..|max| in float32; for a tensor such as
    a softmax over near-uniform scores (every value 0.0625 +- 3e-6, seen in LSNet-T) that span is too
    narrow for 2048 float32 bins and numpy refuses ("Too many bins for data range"), failing the whole
    calibration. For those tensors only, the first histogram spans 0..|max| instead, which numpy can bin
    and which gives the same percentile; every other tensor is collected by ONNX Runtime unchanged.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    collect = HistogramCollector.collect_absolute_value

    def collect_each(self, name_to_arr):
        for name, data in name_to_arr.items():
            try:
                collect(self, {name: data})
            except ValueError:
                if name in self.histogram_dict or not isinstance(data, (np.ndarray, list)):
                    raise
                values = np.asarray(data).ravel()
                magnitudes = np.absolute(values)
                hist, edges = np.histogram(magnitudes, bins=self.num_bins, range=(0, float(np.nanmax(magnitudes))))
                self.histogram_dict[name] = (hist, edges.astype(values.dtype), np.nanmin(values), np.nanmax(values))

    HistogramCollector.collect_absolute_value = collect_each
    try:
        yield
    finally:
        HistogramCollector.collect_absolute_value = collect


def _quantizer_settings(placement: str) -> dict:
    from onnxruntime.quantization import QuantType

    if placement == "tensorrt":
        return dict(op_types_to_quantize=list(TENSORRT_QUANTIZED_OPS), activation_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "DedicatedQDQPair": True,
                                   "OpTypesToExcludeOutputQuantization": list(TENSORRT_QUANTIZED_OPS)})
    return dict(op_types_to_quantize=list(ONNXRUNTIME_QUANTIZED_OPS), activation_type=QuantType.QUInt8,
                extra_options={"WeightSymmetric": True})


def describe(placement: str) -> dict:
    """What the ``int8_calibration`` metadata says about a placement."""
    if placement == "qnn":
        return {"placement": "qnn", "activations": "uint8 asymmetric per tensor (uint16 in float_layers)",
                "weights": "int8 symmetric per channel", "quantized_ops": "all (QNN HTP)"}
    if placement == "tensorrt":
        return {"placement": "tensorrt", "activations": "int8 symmetric per tensor",
                "weights": "int8 symmetric per channel", "quantized_ops": list(TENSORRT_QUANTIZED_OPS)}
    return {"placement": "onnxruntime", "activations": "uint8 asymmetric per tensor",
            "weights": "int8 symmetric per channel", "quantized_ops": list(ONNXRUNTIME_QUANTIZED_OPS)}


def quantize_qdq(model: "onnx.ModelProto", context: "ExportContext", placement: str,
                 scopes: dict[str, str]) -> tuple["onnx.ModelProto", dict]:
    """Calibrate ``model`` on the export's calibration images and insert explicit int8 Q/DQ nodes.

    The result is gated once, like every int8 artifact, by the shared export path (on the images held out
    of calibration, or on ``--data``).

    Args:
        model: a float32 ONNX model (not modified).
        context: the export's context (calibration set, metadata, ``keep_float``).
        placement: ``onnxruntime`` or ``tensorrt`` (see the module docstring).
        scopes: node name -> PyTorch module name (``module_scopes``), to keep ``keep_float`` in float.

    Returns:
        The quantized model (same inputs and outputs, float32) and the ``int8_calibration`` record.

    Raises:
        ExportError: ONNX Runtime's quantizer failed.
    """
    ort = require("onnxruntime", "onnx", "to calibrate int8 models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    import onnx

    if placement not in PLACEMENTS:
        raise ValueError(f"unknown Q/DQ placement {placement!r}; one of {PLACEMENTS}")
    if placement == "qnn":
        return quantize_for_qnn(model, context, scopes)
    images = context.calibration.images(dict(context.metadata))
    input_name, batch = _fixed_batch(model)
    reader = ImageCalibrationReader(input_name, images, batch)
    excluded = float_nodes(model, scopes, context)
    # the quantizer's own sessions log from C++ (unused initializers and the like) straight to stderr
    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory(prefix="lsnet-int8-") as work:
        source, target = Path(work) / "float.onnx", Path(work) / "int8.onnx"
        onnx.save_model(model, str(source))
        with silenced() as log, near_constant_histograms():
            try:
                settings = _quantizer_settings(placement)
                settings["extra_options"] = {**settings["extra_options"], "CalibPercentile": ACTIVATION_PERCENTILE,
                                             "CalibStridedMinMax": chunk_size(len(reader), CALIBRATION_CHUNK)}
                quantize_static(
                    str(source), str(target), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=False, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=excluded, **settings)
            except Exception as exc:
                raise ExportError("int8 calibration failed (onnxruntime.quantization): "
                                  f"{first_line(exc, log.getvalue()[-300:])}") from exc
        quantized = onnx.load_model(str(target))
    return quantized, context.int8_record(CALIBRATION_METHOD, **describe(placement), float_nodes=len(excluded))


def _per_channel_constant(initializers: dict, name: str, channels: int | None = None):
    """The values of initializer ``name`` if it is shaped ([1,] C, 1, 1) (one value per channel of an NCHW
    tensor), else None."""
    from onnx import numpy_helper

    if name not in initializers:
        return None
    values = numpy_helper.to_array(initializers[name])
    shape = tuple(values.shape)
    if len(shape) not in (3, 4) or shape[-2:] != (1, 1) or (len(shape) == 4 and shape[0] != 1):
        return None
    if channels is not None and shape[-3] != channels:
        return None
    return values.reshape(-1)


def group_norm_affine_as_conv(model: "onnx.ModelProto") -> int:
    """Rewrite, in place, the per-channel scale and shift of each exported ``nn.GroupNorm`` (``Reshape ->
    InstanceNormalization -> Reshape -> Mul(gamma) -> Add(beta)``) as one depthwise 1x1 ``Conv``.

    Why: Qualcomm's HTP compiler (QNN 2.51 in onnxruntime-qnn 2.7; emulated v69, v73, v75, v79) mis-lowers that
    uint8 ``Mul`` by a per-channel constant when a ``Conv`` feeds the GroupNorm in the same HTP graph:
    in LSNet-T's ``blocks3.3`` SKA weights it zeroed 8 of the 32 groups (channels 0-35 and 252-287 of
    288) although the ``Mul``'s input was right, and the int8 model agreed with float on 30% of test
    pictures (CPU EP, same file: 100%). The same ``Mul`` alone, or without the ``Conv`` before it,
    computes correctly, so this is the compiler's lowering, not 8-bit range. As a depthwise
    convolution (weights int8 per channel, bias int32) the HTP computes it right, and the product is
    more exact than a per-tensor uint8 constant.

    Returns:
        How many GroupNorms were rewritten.
    """
    from onnx import helper, numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in model.graph.output}
    replaced: dict[str, "onnx.NodeProto"] = {}
    dropped: set[int] = set()
    for mul in model.graph.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        data, gamma_name = (mul.input[0], mul.input[1]) if mul.input[1] in initializers else (mul.input[1], mul.input[0])
        reshape = producer.get(data)
        if reshape is None or reshape.op_type != "Reshape" or reshape.input[1] not in initializers:
            continue
        norm = producer.get(reshape.input[0])
        target_shape = numpy_helper.to_array(initializers[reshape.input[1]])
        if norm is None or norm.op_type != "InstanceNormalization" or target_shape.shape != (4,):
            continue
        gamma = _per_channel_constant(initializers, gamma_name, int(target_shape[1]))
        adds = readers.get(mul.output[0], [])
        if gamma is None or len(adds) != 1 or adds[0].op_type != "Add" or mul.output[0] in graph_outputs:
            continue
        add = adds[0]
        beta_name = add.input[1] if add.input[0] == mul.output[0] else add.input[0]
        beta = _per_channel_constant(initializers, beta_name, gamma.size)
        if beta is None:
            continue
        weight, bias = f"{mul.name}/depthwise_weight", f"{mul.name}/depthwise_bias"
        model.graph.initializer.extend([
            numpy_helper.from_array(gamma.astype(np.float32).reshape(-1, 1, 1, 1), weight),
            numpy_helper.from_array(beta.astype(np.float32), bias)])
        replaced[id(add)] = helper.make_node("Conv", [data, weight, bias], list(add.output), name=f"{mul.name}/depthwise",
                                             group=int(gamma.size), kernel_shape=[1, 1])
        dropped.add(id(mul))
    if replaced:
        from .onnx_passes import drop_unused_initializers

        nodes = [replaced.get(id(node), node) for node in model.graph.node if id(node) not in dropped]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        drop_unused_initializers(model)
    return len(replaced)


def quantize_for_qnn(model: "onnx.ModelProto", context: "ExportContext",
                     scopes: dict[str, str]) -> tuple["onnx.ModelProto", dict]:
    """``quantize_qdq``'s ``qnn`` layout: ONNX Runtime's QNN preprocessing and QDQ configuration,
    calibrated on the export's images; the outputs of ``keep_float``'s nodes get uint16 activations.

    Raises:
        ExportError: ONNX Runtime's quantizer failed.
    """
    ort = require("onnxruntime", "onnx", "to calibrate int8 models")
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model
    import onnx

    images = context.calibration.images(dict(context.metadata))
    input_name, batch = _fixed_batch(model)
    reader = ImageCalibrationReader(input_name, images, batch)
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]  # qnn_preprocess_model fails on any metadata_props (ORT 1.32); set again later
    rewritten = group_norm_affine_as_conv(bare)
    wide = set(float_nodes(bare, scopes, context))
    graph_outputs = {output.name for output in bare.graph.output}
    overrides = {name: [{"quant_type": QuantType.QUInt16}] for node in bare.graph.node if node.name in wide
                 for name in node.output if name and name not in graph_outputs}
    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory(prefix="lsnet-int8-qnn-") as work:
        source, prepared, target = (Path(work) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save_model(bare, str(source))
        with silenced() as log, near_constant_histograms():
            try:
                if not qnn_preprocess_model(str(source), str(prepared)):
                    prepared = source  # nothing to fuse
                config = get_qnn_qdq_config(
                    str(prepared), reader, calibrate_method=CalibrationMethod.Percentile,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    init_overrides=overrides or None, stride=chunk_size(len(reader), CALIBRATION_CHUNK))
                config.extra_options["CalibPercentile"] = ACTIVATION_PERCENTILE
                quantize(str(prepared), str(target), config)
            except Exception as exc:
                raise ExportError("int8 calibration for QNN failed (onnxruntime.quantization): "
                                  f"{first_line(exc, log.getvalue()[-300:])}") from exc
        quantized = onnx.load_model(str(target))
    return quantized, context.int8_record(CALIBRATION_METHOD, **describe("qnn"), wide_nodes=len(wide),
                                          group_norm_affine_as_conv=rewritten)
