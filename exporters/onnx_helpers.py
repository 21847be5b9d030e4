"""Reading ONNX graphs: node attributes, constant values, producers, inferred shapes.

Shared by the ONNX Runtime rewrites (``onnx_passes``), the phone execution providers' rewrites
(``mobile_ep_passes``) and the TensorRT operator check (``tensorrt_ops``).
``onnx`` is imported inside each function, so importing the exporters needs no ONNX install.
"""

from __future__ import annotations

import numpy as np


def attribute(node, name: str, default=None):
    """The value of a node attribute (strings decoded), or ``default`` when the node has none."""
    from onnx import helper

    for entry in node.attribute:
        if entry.name == name:
            value = helper.get_attribute_value(entry)
            return value.decode() if isinstance(value, bytes) else value
    return default


def constants(graph) -> dict[str, np.ndarray]:
    """Every value known before running: initializers and the outputs of Constant nodes."""
    from onnx import helper, numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = helper.get_attribute_value(node.attribute[0])
            values[node.output[0]] = numpy_helper.to_array(value) if node.attribute[0].name == "value" \
                else np.asarray(value)
    return values


def producers(graph) -> dict:
    """Tensor name -> the node that produces it."""
    return {out: node for node in graph.node for out in node.output}


def replace_nodes(graph, nodes: list) -> None:
    """Make ``nodes`` the graph's node list (in that order)."""
    del graph.node[:]
    graph.node.extend(nodes)


def static_shapes(model) -> dict[str, list[int | None]]:
    """Tensor name -> inferred shape (None for dimensions shape inference leaves symbolic)."""
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    shapes: dict[str, list[int | None]] = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def unique_name(graph, base: str) -> str:
    """A tensor name not yet used in ``graph``, derived from ``base``."""
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    taken |= {init.name for init in graph.initializer}
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def add_initializer(graph, name: str, value: np.ndarray) -> str:
    """Add ``value`` as an initializer under a fresh name derived from ``name``; returns that name."""
    from onnx import numpy_helper

    name = unique_name(graph, name)
    graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def element_type(model, name: str) -> int:
    """The ONNX element type of tensor ``name`` (shape inference; float when it cannot tell)."""
    from onnx import TensorProto, shape_inference

    inferred = shape_inference.infer_shapes(model).graph
    for info in [*inferred.value_info, *inferred.input, *inferred.output]:
        if info.name == name:
            return info.type.tensor_type.elem_type
    return TensorProto.FLOAT
