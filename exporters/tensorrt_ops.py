"""What TensorRT's ONNX parser accepts, as data, and a checker for the exact graph handed to it.

The table is TensorRT's ONNX operator support matrix (onnx-tensorrt ``docs/operators.md``, the
TensorRT 10.15 edition, the newest of the 10.x line): every operator marked supported, with the data
types listed for it. TensorRT 11 parses a superset. Operators added after JetPack 6's TensorRT 10.3 are
listed in ``NEWER_THAN_JETPACK6`` and reported, because Jetson boards cannot update TensorRT on their own.

TensorRT cannot be installed here, so this checker is how the graph gets verified before it reaches a
device: every operator on the list, in a type the list allows, the parser's restrictions that matter for
LSNet (constant reduction axes, resize modes, symmetric int8 Q/DQ), a default-domain opset every
TensorRT 10 reads, and every tensor shape resolved for each batch size the engine will be built for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..errors import first_line
from .onnx_helpers import attribute, constants

_FLOAT = ("FP32", "FP16", "BF16")
_NUMERIC = (*_FLOAT, "INT32", "INT64")
_ANY = (*_NUMERIC, "BOOL")

#: operator -> data types TensorRT accepts for its (first) data input
SUPPORTED_OPERATORS: dict[str, frozenset[str]] = {op: frozenset(types) for ops, types in (
    (("Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv ConvTranspose Cos "
      "Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool "
      "GroupNormalization GRU HardSigmoid HardSwish Hardmax ImageScaler InstanceNormalization IsInf "
      "LayerNormalization LeakyRelu Log LogSoftmax LRN LSTM LpNormalization LpPool MatMul MaxPool "
      "MeanVarianceNormalization ParametricSoftplus PRelu QuantizeLinear RandomNormal RandomNormalLike "
      "RandomUniform RandomUniformLike Reciprocal Resize RMSNormalization RNN RotaryEmbedding Round ScaledTanh "
      "Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh ThresholdedRelu Upsample"), _FLOAT),
    (("Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual Max Min Mod "
      "Mul Neg Pad Pow Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin "
      "ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements ScatterND Shrink Sign SpaceToDepth Sub "
      "Sum TopK"), _NUMERIC),
    (("Concat Expand EyeLike Flatten Gather GatherElements GatherND Identity If Loop OneHot Reshape "
      "ReverseSequence Shape Size Slice Split Squeeze Tile Transpose Trilu Unsqueeze Where"), _ANY),
    ("BlackmanWindow DeformConv GridSample HammingWindow HannWindow Mish NonMaxSuppression NonZero RoiAlign",
     ("FP32", "FP16")),
    ("And Not Or Xor", ("BOOL",)),
    ("Cast CastLike", (*_ANY, "UINT8")),
    ("Constant ConstantOfShape", (*_ANY, "FP8", "FP4", "INT4")),
    ("Attention", (*_FLOAT, "INT8", "FP8")),
    ("DequantizeLinear", ("INT8", "FP8", "FP4", "INT4")),
    ("Gelu", (*_NUMERIC, "INT8")),
    ("Mean", (*_NUMERIC, "FP8")),
    ("STFT", ("FP32",)),
    ("TensorScatter", (*_FLOAT, "INT32")),
) for op in ops.split()}

#: operators the newest TensorRT 10 parses but JetPack 6's TensorRT 10.3 does not (version that added them)
NEWER_THAN_JETPACK6 = {"Attention": "10.14", "RMSNormalization": "10.15", "RotaryEmbedding": "10.15",
                       "TensorScatter": "10.15"}

#: the default-domain opsets every TensorRT 10 release reads (10.0 reads 9 to 20; later releases more)
TENSORRT_OPSETS = (9, 20)

#: ONNX TensorProto element types by TensorRT's names for them
ONNX_TYPE_NAMES = {1: "FP32", 10: "FP16", 16: "BF16", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL",
                   11: "DOUBLE", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 22: "INT4", 23: "FP4"}

#: operators whose input at the given index must be known when the engine is built
CONSTANT_INPUTS = {"ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceMax": 1,
                   "ReduceMean": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceSum": 1, "ReduceSumSquare": 1,
                   "Squeeze": 1, "Unsqueeze": 1, "CumSum": 1, "QuantizeLinear": 1, "DequantizeLinear": 1}

RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}


@dataclass
class SupportReport:
    """What the checker found in one graph."""

    opset: int | None
    op_counts: dict[str, int]
    batch_sizes: tuple[int, ...]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when TensorRT's parser should accept the graph as it is."""
        return not self.problems

    def summary(self) -> str:
        """One line: verdict, operator count, and the first problems."""
        ops = sum(self.op_counts.values())
        if self.ok:
            return (f"ok: {ops} nodes, {len(self.op_counts)} operator types, all on TensorRT's ONNX list, "
                    f"opset {self.opset}, shapes resolved for batch {', '.join(map(str, self.batch_sizes))}")
        more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        return f"{len(self.problems)} problem(s): " + "; ".join(self.problems[:3]) + more


def _with_batch(model, batch: int):
    """A copy whose symbolic leading input dimensions are pinned to ``batch``."""
    import onnx

    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    initializers = {init.name for init in pinned.graph.initializer}
    for value in pinned.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    # output shapes are re-derived, not trusted
    for value in pinned.graph.output:
        value.type.tensor_type.ClearField("shape")
    del pinned.graph.value_info[:]
    return pinned


def unresolved_shapes(model, batch: int) -> list[str]:
    """Tensors whose type or shape ONNX shape inference cannot resolve with the batch pinned to ``batch``."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(_with_batch(model, batch), strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        return [f"shape inference failed: {first_line(exc)}"]
    graph = inferred.graph
    known = {v.name: v for v in (*graph.value_info, *graph.output, *graph.input)}
    known_inits = {init.name for init in graph.initializer}
    problems = []
    for node in graph.node:
        for name in node.output:
            if not name or name in known_inits:
                continue
            value = known.get(name)
            if value is None or not value.type.tensor_type.elem_type:
                problems.append(f"{name} ({node.op_type}): type unknown")
                continue
            if not value.type.tensor_type.HasField("shape"):
                problems.append(f"{name} ({node.op_type}): rank unknown")
                continue
            dims = value.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") for d in dims):
                shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
                problems.append(f"{name} ({node.op_type}): shape {shown} not resolved at batch {batch}")
    return problems


def _value_types(model) -> dict[str, int]:
    from onnx import shape_inference

    try:
        graph = shape_inference.infer_shapes(model).graph
    except Exception:
        graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def _node_problems(node, types: dict[str, int], constants: dict[str, np.ndarray]) -> list[str]:
    name = node.name or (node.output[0] if node.output else node.op_type)
    where = f"{node.op_type} {name}"
    problems = []
    data_type = ONNX_TYPE_NAMES.get(types.get(node.input[0], 0)) if node.input and node.input[0] else None
    allowed = SUPPORTED_OPERATORS[node.op_type]
    if data_type is not None and data_type not in allowed:
        problems.append(f"{where}: input type {data_type} not supported (TensorRT takes {', '.join(sorted(allowed))})")
    if node.op_type == "Cast":
        target = ONNX_TYPE_NAMES.get(attribute(node, "to", 0))
        if target not in allowed:
            problems.append(f"{where}: cast to {target} not supported")
    index = CONSTANT_INPUTS.get(node.op_type)
    if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
        problems.append(f"{where}: input {index} ({node.input[index]}) must be a constant for TensorRT")
    if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if zero_point is not None:
            zp = constants.get(zero_point)
            if zp is None or np.any(zp != 0):
                problems.append(f"{where}: zero point must be a constant 0 (TensorRT quantizes symmetrically)")
            if ONNX_TYPE_NAMES.get(types.get(zero_point, 0)) not in ("INT8", "FP8", "INT4", "FP4"):
                problems.append(f"{where}: quantized type {ONNX_TYPE_NAMES.get(types.get(zero_point, 0))} "
                                "not supported (use signed int8)")
    if node.op_type == "Resize":
        mode = attribute(node, "mode", "nearest")
        coordinates = attribute(node, "coordinate_transformation_mode", "half_pixel")
        if mode not in RESIZE_MODES:
            problems.append(f"{where}: resize mode {mode!r} not supported (nearest or linear)")
        if coordinates not in RESIZE_COORDINATES:
            problems.append(f"{where}: coordinate_transformation_mode {coordinates!r} not supported")
        if mode == "nearest" and attribute(node, "nearest_mode", "round_prefer_floor") not in RESIZE_NEAREST:
            problems.append(f"{where}: nearest_mode {attribute(node, 'nearest_mode')!r} not supported")
        if attribute(node, "antialias", 0):
            problems.append(f"{where}: antialiased resize not supported")
    return problems


def check_tensorrt_support(model, batch_sizes: Iterable[int] = (1,)) -> SupportReport:
    """Check an ONNX model against TensorRT's ONNX operator list and restrictions.

    Args:
        model: the ``onnx.ModelProto`` that will be handed to TensorRT's parser.
        batch_sizes: batch sizes the engine must run (for a dynamic batch, the profile's min, opt and max);
            shapes must resolve at each.

    Returns:
        The report; ``report.ok`` is False when TensorRT would reject or mis-build the graph.
    """
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    batch_sizes = tuple(dict.fromkeys(int(b) for b in batch_sizes))
    report = SupportReport(opset=opset, op_counts=dict(Counter(n.op_type for n in graph.node)),
                           batch_sizes=batch_sizes)
    low, high = TENSORRT_OPSETS
    if opset is None or not low <= opset <= high:
        report.problems.append(f"opset {opset} is outside {low}..{high}, the range every TensorRT 10 parses")
    for domain in sorted({n.domain for n in graph.node if n.domain not in ("", "ai.onnx")}):
        ops = sorted({n.op_type for n in graph.node if n.domain == domain})
        report.problems.append(f"operators of domain {domain!r} are not ONNX operators TensorRT parses: "
                               f"{', '.join(ops)}")
    types = _value_types(model)
    known = constants(graph)
    unsupported = Counter(n.op_type for n in graph.node
                          if n.domain in ("", "ai.onnx") and n.op_type not in SUPPORTED_OPERATORS)
    for op, count in sorted(unsupported.items()):
        report.problems.append(f"{op} ({count} node{'s' if count > 1 else ''}) is not on TensorRT's ONNX "
                               "operator list")
    for op in sorted(set(report.op_counts) & set(NEWER_THAN_JETPACK6)):
        report.problems.append(f"{op} needs TensorRT {NEWER_THAN_JETPACK6[op]} or newer; JetPack 6 ships 10.3")
    for node in graph.node:
        if node.domain in ("", "ai.onnx") and node.op_type in SUPPORTED_OPERATORS:
            report.problems.extend(_node_problems(node, types, known))
    # int8 exists in TensorRT only between a QuantizeLinear and its DequantizeLinear (zero points aside)
    for node in graph.node:
        data_inputs = [] if node.op_type == "DequantizeLinear" else \
            node.input[:2] if node.op_type == "QuantizeLinear" else node.input
        for name in data_inputs:
            if name and ONNX_TYPE_NAMES.get(types.get(name, 0)) == "INT8":
                report.problems.append(f"{node.op_type} {node.name or node.output[0]} reads int8 tensor {name}; "
                                       "TensorRT only dequantizes int8")
    for batch in batch_sizes:
        report.problems.extend(unresolved_shapes(model, batch))
    return report
