"""NNAPI and Core ML placement of ``.onnx`` and ``.ort`` files, from ONNX Runtime's mobile usability checker.

The checker (``onnxruntime.tools.check_onnx_model_mobile_usability``, whose Python side is
``onnxruntime.tools.mobile_helpers.usability_checker``) replays ONNX Runtime's partitioning for the NNAPI and
Core ML execution providers: an operator goes to the provider if its type is on the provider's list and
every input has a fixed shape (and, for Core ML, rank <= 5). Its per-operator caveats (NNAPI: 2-D
convolutions only, and so on) are not checked: only the providers themselves, on a phone, check those.

``.onnx`` files are analysed as the checker does (ONNX Runtime's basic optimizations first, then shape
inference). ``.ort`` files are read from their flatbuffer: the nodes, their tensors' recorded shapes and the
initializers give the same graph the provider sees on the phone (the ``.ort`` is already optimized).
"""

from __future__ import annotations

import collections
import pathlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError, require
from .report import PlacementReport

if TYPE_CHECKING:
    import onnx

#: accelerator name -> (what the report calls the provider, the checker's supported-operator list)
PROVIDERS = {
    "nnapi": ("NNAPI EP", "nnapi_supported_ops.md"),
    "coreml": ("Core ML EP (MLProgram)", "coreml_supported_mlprogram_ops.md"),
}
#: Core ML's tensors have at most this rank (the checker's own limit for it)
COREML_MAX_RANK = 5


def probe_nnapi(path: Path, **options) -> PlacementReport:
    """NNAPI execution provider placement of an ``.onnx`` or ``.ort`` file (ONNX Runtime's checker).

    Raises:
        MissingDependencyError: onnxruntime or onnx is not installed.
        UsageError: the file is neither ONNX nor ORT format.
    """
    return _probe(Path(path), "nnapi")


def probe_coreml_ep(path: Path, **options) -> PlacementReport:
    """Core ML execution provider (MLProgram) placement of an ``.onnx`` or ``.ort`` file.

    Raises:
        MissingDependencyError: onnxruntime or onnx is not installed.
        UsageError: the file is neither ONNX nor ORT format.
    """
    return _probe(Path(path), "coreml")


def _probe(path: Path, accelerator: str) -> PlacementReport:
    ort = require("onnxruntime", "onnx", "to check NNAPI / Core ML placement")
    require("onnx", "onnx", "to check NNAPI / Core ML placement")
    from onnxruntime.tools.mobile_helpers import usability_checker

    provider, ops_list = PROVIDERS[accelerator]
    model = checker_model(path)
    ops = usability_checker._SupportedOpsChecker(Path(usability_checker.__file__).parent / ops_list)
    max_rank = COREML_MAX_RANK if accelerator == "coreml" else 999
    info = usability_checker.check_partitioning(model.graph, ops, require_fixed_input_sizes=True, max_rank=max_rank)
    placed = {id(node) for group in info.supported_groups for node in group}
    fallback = collections.Counter(node.op_type for node in model.graph.node if id(node) not in placed)
    notes = []
    if info.nodes_unsupported_due_to_dynamic_input:
        notes.append(f"{info.nodes_unsupported_due_to_dynamic_input} node(s) have inputs of unknown size "
                     "(fix batch, height and width at export)")
    if info.num_unsupported_nodes_due_to_rank:
        notes.append(f"{info.num_unsupported_nodes_due_to_rank} node(s) have inputs of rank > {max_rank}")
    notes.append("operator types and fixed shapes checked; per-operator limits only on a device")
    return PlacementReport(accelerator=accelerator, tool=f"onnxruntime mobile usability checker ({provider})",
                           tool_version=ort.__version__, partitions=info.num_partitions, nodes_total=info.num_nodes,
                           nodes_on_accelerator=info.num_supported_nodes, fallback_ops=dict(fallback),
                           note="; ".join(notes))


def checker_model(path: Path) -> "onnx.ModelProto":
    """The graph the checker analyses: an ``.onnx`` after ONNX Runtime's basic optimizations and shape
    inference, or an ``.ort`` file's graph with its recorded shapes.

    Raises:
        UsageError: the file cannot be read as either.
    """
    if path.suffix.lower() == ".ort":
        return ort_graph_as_onnx(path)
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    with tempfile.TemporaryDirectory(prefix="lsnet-check-") as work:
        optimized = pathlib.Path(work) / "model.onnx"
        try:
            optimize_model(path, optimized)
            return ModelProtoWithShapeInfo(optimized).model_with_shape_info
        except Exception as exc:
            raise UsageError(f"{path} is not an ONNX model ONNX Runtime can load: {str(exc).splitlines()[0]}") \
                from exc


def ort_graph_as_onnx(path: Path) -> "onnx.ModelProto":
    """An ``.ort`` file's main graph as an ONNX skeleton the checker reads: node types and edges, each
    tensor's recorded shape, and initializer names (no weights: the checker needs none).

    Raises:
        UsageError: the file is not an ORT format model.
    """
    import onnx
    from onnx import TensorProto, helper

    fbs = _ort_flatbuffers()
    buffer = bytearray(path.read_bytes())
    if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(buffer, 0):
        raise UsageError(f"{path} is not an ORT format model (no ORT flatbuffer identifier)")
    graph = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(buffer, 0).Model().Graph()
    values = {}
    for j in range(graph.NodeArgsLength()):
        arg = graph.NodeArgs(j)
        values[arg.Name().decode()] = _value_info(fbs, arg)
    nodes = []
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        proto = helper.make_node(node.OpType().decode(), [node.Inputs(k).decode() for k in range(node.InputsLength())],
                                 [node.Outputs(k).decode() for k in range(node.OutputsLength())],
                                 name=node.Name().decode(), domain=node.Domain().decode())
        for k in range(node.AttributesLength()):
            attr = node.Attributes(k)
            if attr.Type() == fbs.AttributeType.AttributeType.INTS:
                proto.attribute.append(helper.make_attribute(attr.Name().decode(),
                                                             [attr.Ints(n) for n in range(attr.IntsLength())]))
        nodes.append(proto)
    nodes = _topological(nodes)
    initializers = [helper.make_tensor(graph.Initializers(j).Name().decode(), TensorProto.FLOAT, [0], [])
                    for j in range(graph.InitializersLength())]
    inputs = [graph.Inputs(j).decode() for j in range(graph.InputsLength())]
    outputs = [graph.Outputs(j).decode() for j in range(graph.OutputsLength())]
    known = {name: info for name, info in values.items() if info is not None}
    skeleton = helper.make_graph(nodes, "ort", [known.get(n) or helper.make_empty_tensor_value_info(n) for n in inputs],
                                 [known.get(n) or helper.make_empty_tensor_value_info(n) for n in outputs],
                                 initializers,
                                 value_info=[info for n, info in known.items() if n not in inputs and n not in outputs])
    return onnx.ModelProto(graph=skeleton)


def _topological(nodes: list) -> list:
    """``nodes`` ordered producers first (an ``.ort`` file stores them by index, not in execution order)."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    ordered, state = [], [0] * len(nodes)  # 0 new, 1 in progress, 2 placed
    for start in range(len(nodes)):
        stack = [(start, False)]
        while stack:
            i, expanded = stack.pop()
            if state[i] == 2 or (state[i] == 1 and not expanded):
                continue
            if expanded:
                state[i] = 2
                ordered.append(nodes[i])
                continue
            state[i] = 1
            stack.append((i, True))
            stack.extend((producer[name], False) for name in nodes[i].input
                         if name in producer and state[producer[name]] == 0)
    return ordered


def _value_info(fbs, arg):
    """An ORT NodeArg's recorded tensor type and shape as an ONNX ValueInfoProto (None if not a tensor)."""
    from onnx import helper

    type_info = arg.Type()
    if type_info is None or type_info.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        return None
    tensor = fbs.TensorTypeAndShape.TensorTypeAndShape()
    value = type_info.Value()
    tensor.Init(value.Bytes, value.Pos)
    shape = tensor.Shape()
    if shape is None:
        return helper.make_tensor_value_info(arg.Name().decode(), tensor.ElemType(), None)
    dims = []
    for k in range(shape.DimLength()):
        dim = shape.Dim(k).Value()
        if dim is not None and dim.DimType() == fbs.DimensionValueType.DimensionValueType.VALUE:
            dims.append(dim.DimValue())
        else:
            dims.append((dim.DimParam() or b"?").decode() if dim is not None else "?")
    return helper.make_tensor_value_info(arg.Name().decode(), tensor.ElemType(), dims)


def _ort_flatbuffers():
    """ONNX Runtime's generated flatbuffer bindings (importing ``ort_format_model`` puts them on the path)."""
    import onnxruntime.tools.ort_format_model  # noqa: F401
    import ort_flatbuffers_py.fbs as fbs

    return fbs


