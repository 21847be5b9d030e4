"""ONNX rewrites that let ONNX Runtime's NNAPI and Core ML execution providers take all of LSNet.

A phone's execution provider takes an operator only if it is on its list (ONNX Runtime's
``nnapi_supported_ops.md`` and ``coreml_supported_mlprogram_ops.md``) and every input has a fixed shape.
Anything else stays on the CPU, and each such operator splits the model into another partition with copies
in and out. Exported as for the CPU (``--ska tap_slices``), LSNet-T at 224 ran in 16 partitions on either.
What split it, and the rewrite here that removes it:

* ``InstanceNormalization`` (how ``nn.GroupNorm`` exports: a reshape to (N, groups, -1) around it) is not
  on NNAPI's list -> ``instance_norm_to_reductions``: ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div
  (and the affine Mul/Add), all on both lists. Core ML's list has it, so Core ML keeps the one operator.
* ``Pad`` is not on Core ML's MLProgram list -> ``pad_to_concat``: a Concat with constant zero blocks on
  each padded side. NNAPI takes constant-mode Pad, so NNAPI keeps it.
* ``Resize`` fed an empty ``roi`` counts as a dynamic-shape input (the checker cannot size the empty
  name): it comes from the x86-only rewrite ``onnx_passes.broadcast_mul_to_resize``, which upsamples a
  squeeze-excite gate so a Mul stays in ONNX Runtime's blocked layout. Phones have no blocked layout ->
  ``resize_gate_to_broadcast`` gives the Mul the (N, C, 1, 1) gate again.

``prepare_for(accelerator, proto)`` applies what an accelerator needs, on a copy. Every rewrite computes
the same function (tests hold the outputs to 1e-5 relative on ONNX Runtime's CPU provider) and needs
static shapes: an accelerator build fixes batch, height and width (``--dynamic`` is refused for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .onnx_helpers import (add_initializer, attribute, constants, consumers, element_type, replace_nodes, static_shapes,
                           unique_name)

if TYPE_CHECKING:
    import onnx


def instance_norm_to_reductions(model: "onnx.ModelProto") -> int:
    """InstanceNormalization -> its arithmetic, from operators NNAPI takes.

    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` over the axes after the channel axis, with the
    variance taken from the centred input (two passes, as ONNX Runtime computes it). The affine Mul/Add is
    left out where scale is all ones / bias all zeros (how GroupNorm exports).

    Returns:
        The number of nodes rewritten.
    """
    from onnx import helper

    graph = model.graph
    shapes = static_shapes(model)
    consts = constants(graph)
    rewritten, nodes = 0, []
    for node in graph.node:
        rank = len(shapes.get(node.input[0]) or [])
        if node.op_type != "InstanceNormalization" or rank < 3 or node.input[1] not in consts \
                or node.input[2] not in consts:
            nodes.append(node)
            continue
        x, out, name = node.input[0], node.output[0], node.name or node.output[0]
        scale, bias = consts[node.input[1]], consts[node.input[2]]
        dtype = scale.dtype
        broadcast = (-1,) + (1,) * (rank - 2)
        axes = add_initializer(graph, f"{name}/axes", np.arange(2, rank, dtype=np.int64))
        eps = add_initializer(graph, f"{name}/eps", np.array(attribute(node, "epsilon", 1e-5), dtype=dtype))
        t = {k: unique_name(graph, f"{name}/{k}") for k in ("mean", "centred", "square", "var", "var_eps", "std",
                                                         "normed", "scaled")}
        nodes += [helper.make_node("ReduceMean", [x, axes], [t["mean"]], name=f"{name}/mean", keepdims=1),
                  helper.make_node("Sub", [x, t["mean"]], [t["centred"]], name=f"{name}/centre"),
                  helper.make_node("Mul", [t["centred"], t["centred"]], [t["square"]], name=f"{name}/square"),
                  helper.make_node("ReduceMean", [t["square"], axes], [t["var"]], name=f"{name}/var", keepdims=1),
                  helper.make_node("Add", [t["var"], eps], [t["var_eps"]], name=f"{name}/add_eps"),
                  helper.make_node("Sqrt", [t["var_eps"]], [t["std"]], name=f"{name}/std")]
        unit_scale, zero_bias = bool(np.all(scale == 1)), bool(np.all(bias == 0))
        normed = out if unit_scale and zero_bias else t["normed"]
        nodes.append(helper.make_node("Div", [t["centred"], t["std"]], [normed], name=f"{name}/normalize"))
        if not unit_scale:
            scaled = out if zero_bias else t["scaled"]
            weight = add_initializer(graph, f"{name}/scale", scale.reshape(broadcast))
            nodes.append(helper.make_node("Mul", [normed, weight], [scaled], name=f"{name}/affine_scale"))
            normed = scaled
        if not zero_bias:
            shift = add_initializer(graph, f"{name}/bias", bias.reshape(broadcast))
            nodes.append(helper.make_node("Add", [normed, shift], [out], name=f"{name}/affine_shift"))
        rewritten += 1
    replace_nodes(graph, nodes)
    return rewritten


def pad_to_concat(model: "onnx.ModelProto") -> int:
    """Constant-mode Pad with static shapes and non-negative constant pads -> Concat with constant blocks.

    Each padded axis becomes one Concat of (block before, x, block after), blocks filled with the pad value.

    Returns:
        The number of nodes rewritten.
    """
    from onnx import helper

    graph = model.graph
    shapes = static_shapes(model)
    consts = constants(graph)
    rewritten, nodes = 0, []
    for node in graph.node:
        shape = shapes.get(node.input[0]) or []
        pads = consts.get(node.input[1]) if node.op_type == "Pad" and len(node.input) > 1 else None
        axes_given = len(node.input) > 3 and node.input[3]
        if (node.op_type != "Pad" or attribute(node, "mode", "constant") != "constant" or pads is None
                or axes_given or not shape or None in shape or np.any(pads < 0)):
            nodes.append(node)
            continue
        fill = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and fill is None:
            nodes.append(node)  # a computed pad value: not a constant block
            continue
        elem_type = element_type(model, node.input[0])
        from onnx import helper as _h

        dtype = _h.tensor_dtype_to_np_dtype(elem_type)
        value = dtype.type(0 if fill is None else np.asarray(fill).reshape(-1)[0])
        rank, name = len(shape), node.name or node.output[0]
        pads = [int(p) for p in pads]
        current, size = node.input[0], list(shape)
        padded_axes = [a for a in range(rank) if pads[a] or pads[a + rank]]
        for step, axis in enumerate(padded_axes):
            parts = []
            for side, count in (("before", pads[axis]), ("after", pads[axis + rank])):
                if count:
                    block = [*size[:axis], count, *size[axis + 1:]]
                    parts.append((side, add_initializer(graph, f"{name}/{side}{axis}", np.full(block, value, dtype))))
            inputs = [p for s, p in parts if s == "before"] + [current] + [p for s, p in parts if s == "after"]
            last = step == len(padded_axes) - 1
            result = node.output[0] if last else unique_name(graph, f"{name}/axis{axis}")
            nodes.append(helper.make_node("Concat", inputs, [result], name=f"{name}/concat{axis}", axis=axis))
            current = result
            size[axis] += pads[axis] + pads[axis + rank]
        if not padded_axes:
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=f"{name}/identity"))
        rewritten += 1
    replace_nodes(graph, nodes)
    return rewritten


def resize_gate_to_broadcast(model: "onnx.ModelProto") -> int:
    """Undo ``onnx_passes.broadcast_mul_to_resize``: a nearest Resize of an (N, C, 1, 1) gate read only by
    Muls with an input of the upsampled shape -> those Muls read the gate and broadcast it.

    Returns:
        The number of Resize nodes removed.
    """
    graph = model.graph
    shapes = static_shapes(model)
    readers = consumers(graph)
    outputs = {o.name for o in graph.output}
    removed = set()
    for node in graph.node:
        if node.op_type != "Resize" or attribute(node, "mode", "nearest") != "nearest":
            continue
        gate, up = node.input[0], node.output[0]
        gate_shape, up_shape = shapes.get(gate) or [], shapes.get(up) or []
        users = readers.get(up, [])
        if (len(gate_shape) != 4 or gate_shape[2:] != [1, 1] or up in outputs or not users
                or not all(u.op_type == "Mul" and len(u.input) == 2 for u in users)):
            continue
        if not all(shapes.get(u.input[0] if u.input[1] == up else u.input[1]) == up_shape for u in users):
            continue
        for user in users:
            for i, name in enumerate(user.input):
                if name == up:
                    user.input[i] = gate
        removed.add(id(node))
    replace_nodes(graph, [n for n in graph.node if id(n) not in removed])
    return len(removed)


#: the rewrites each accelerator needs, in order
PASSES: dict[str, tuple[Callable[["onnx.ModelProto"], int], ...]] = {
    "nnapi": (resize_gate_to_broadcast, instance_norm_to_reductions),
    "coreml": (resize_gate_to_broadcast, pad_to_concat),
}


def has_static_shapes(model: "onnx.ModelProto") -> bool:
    """Every graph input has a fixed size in every dimension."""
    return all(d.HasField("dim_value") for i in model.graph.input for d in i.type.tensor_type.shape.dim)


def prepare_for(accelerator: str, proto: "onnx.ModelProto") -> "onnx.ModelProto":
    """A copy of ``proto`` rewritten so ``accelerator``'s execution provider takes the whole graph.

    Accelerators without rewrites (e.g. ``qnn``) get an unchanged copy.

    Args:
        accelerator: ``nnapi`` or ``coreml`` (others pass through).
        proto: an ONNX model with static input shapes; not modified.

    Returns:
        The rewritten copy (``prepare_counts`` also says how many nodes each rewrite changed).

    Raises:
        ValueError: the model has a dynamic input dimension and ``accelerator`` needs static shapes.
    """
    return prepare_counts(accelerator, proto)[0]


def prepare_counts(accelerator: str, proto: "onnx.ModelProto") -> tuple["onnx.ModelProto", dict[str, int]]:
    """``prepare_for``, also returning how many nodes each rewrite changed (for the export details)."""
    import onnx
    from onnx import shape_inference

    from .onnx_passes import drop_unused_initializers

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    passes = PASSES.get(accelerator, ())
    if not passes:
        return model, {}
    if not has_static_shapes(model):
        raise ValueError(f"--accelerator {accelerator} needs static shapes; export without --dynamic/--dynamic-hw")
    counts = {fn.__name__: fn(model) for fn in passes}
    drop_unused_initializers(model)
    shape_inference.infer_shapes(model, strict_mode=True)  # raises if a rewrite left the graph inconsistent
    return model, counts
