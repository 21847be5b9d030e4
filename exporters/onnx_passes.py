"""Graph rewrites that make an exported LSNet faster on ONNX Runtime, without changing its function.

ONNX Runtime's CPU provider runs convolutions in a blocked layout (NCHWc) and has to reorder tensors
back to plain NCHW around every operator that cannot work on that layout. Profiles of a naive LSNet
export spend a seventh of their time in those reorders. Each rewrite below turns an operator that forces
reorders into an equivalent one that stays blocked (see onnxruntime's ``nchwc_transformer.cc`` for the
operators it keeps blocked: Conv, pools, Add/Sum, same-shape Mul, Relu/Sigmoid, BatchNormalization after
a convolution, nearest Resize with integer scales, channel Concat):

* ``global_pool``: ReduceMean over H and W (how torch exports global pooling) -> GlobalAveragePool.
* ``batchnorm_to_conv``: a BatchNormalization that does not follow a convolution (LSConv's, after SKA)
  -> a depthwise 1x1 convolution, so the block's residual Add fuses into it and stays blocked.
* ``broadcast_mul_to_resize``: ``x * gate`` with gate (N, C, 1, 1) (squeeze-excite) -> the gate
  upsampled by a nearest Resize, then a same-shape Mul. Only for x86 ONNX Runtime (the blocked layout
  does not exist on ARM, where this would be pure overhead), so the ``ort`` mobile format skips it.

Every pass keeps outputs equal up to float rounding; the tests check each one on ONNX Runtime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from .onnx_helpers import attribute, constants, producers, replace_nodes, static_shapes


def global_pool(model: onnx.ModelProto) -> int:
    """ReduceMean over axes (2, 3) of a 4-D tensor -> GlobalAveragePool (+ Flatten if keepdims=0).

    Returns:
        The number of nodes rewritten.
    """
    graph = model.graph
    shapes = static_shapes(model)
    consts = constants(graph)
    rewritten, nodes = 0, []
    for node in graph.node:
        if node.op_type == "ReduceMean" and len(shapes.get(node.input[0]) or []) == 4:
            axes = consts.get(node.input[1]) if len(node.input) > 1 else attribute(node, "axes")
            if axes is not None and sorted(int(a) % 4 for a in np.atleast_1d(axes)) == [2, 3]:
                name = node.name or node.output[0]
                if attribute(node, "keepdims", 1):
                    nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [node.output[0]],
                                                  name=f"{name}/gap"))
                else:
                    pooled = f"{node.output[0]}/pooled"
                    nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=f"{name}/gap"))
                    nodes.append(helper.make_node("Flatten", [pooled], [node.output[0]], name=f"{name}/flatten",
                                                  axis=1))
                rewritten += 1
                continue
        nodes.append(node)
    replace_nodes(graph, nodes)
    return rewritten


def batchnorm_to_conv(model: onnx.ModelProto) -> int:
    """Inference BatchNormalization on a 4-D tensor -> depthwise 1x1 Conv with the same affine map.

    BatchNorms right after a Conv are left alone: ONNX Runtime folds those into the Conv itself.

    Returns:
        The number of nodes rewritten.
    """
    graph = model.graph
    shapes = static_shapes(model)
    consts = constants(graph)
    producer_of = producers(graph)
    rewritten, nodes, new_inits = 0, [], []
    for node in graph.node:
        after_conv = getattr(producer_of.get(node.input[0]), "op_type", None) == "Conv"
        if node.op_type == "BatchNormalization" and len(node.output) == 1 and not after_conv \
                and len(shapes.get(node.input[0]) or []) == 4 and all(i in consts for i in node.input[1:5]):
            gamma, beta, mean, var = (consts[i].astype(np.float64) for i in node.input[1:5])
            dtype = consts[node.input[1]].dtype
            scale = gamma / np.sqrt(var + attribute(node, "epsilon", 1e-5))
            shift = beta - mean * scale
            channels = scale.shape[0]
            name = node.name or node.output[0]
            weight = numpy_helper.from_array(scale.reshape(channels, 1, 1, 1).astype(dtype), f"{name}/dw_weight")
            bias = numpy_helper.from_array(shift.astype(dtype), f"{name}/dw_bias")
            new_inits += [weight, bias]
            nodes.append(helper.make_node("Conv", [node.input[0], weight.name, bias.name], [node.output[0]],
                                          name=f"{name}/as_conv", group=channels, kernel_shape=[1, 1]))
            rewritten += 1
            continue
        nodes.append(node)
    replace_nodes(graph, nodes)
    graph.initializer.extend(new_inits)
    return rewritten


def broadcast_mul_to_resize(model: onnx.ModelProto) -> int:
    """``Mul(x (N,C,H,W), g (N,C,1,1))`` -> ``Mul(x, Resize_nearest(g, scales=(1,1,H,W)))``.

    Only rewrites float32 Muls with static C, H, W and H*W > 1.

    Returns:
        The number of nodes rewritten.
    """
    graph = model.graph
    shapes = static_shapes(model)
    elem_types = {info.name: info.type.tensor_type.elem_type
                  for info in [*shape_inference.infer_shapes(model).graph.value_info, *graph.input]}
    rewritten, nodes, new_inits = 0, [], []
    for node in graph.node:
        if node.op_type == "Mul" and len(node.input) == 2:
            for big, small in ((0, 1), (1, 0)):
                x, g = node.input[big], node.input[small]
                sx, sg = shapes.get(x), shapes.get(g)
                if (sx and sg and len(sx) == 4 and len(sg) == 4 and sg[2:] == [1, 1] and None not in sx[1:]
                        and sx[1] == sg[1] and sx[2] * sx[3] > 1
                        and elem_types.get(g, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT):
                    name = node.name or node.output[0]
                    scales = numpy_helper.from_array(np.array([1, 1, sx[2], sx[3]], dtype=np.float32),
                                                     f"{name}/resize_scales")
                    new_inits.append(scales)
                    upsampled = f"{name}/gate_full"
                    nodes.append(helper.make_node("Resize", [g, "", scales.name], [upsampled], name=f"{name}/resize",
                                                  mode="nearest", coordinate_transformation_mode="asymmetric",
                                                  nearest_mode="floor"))
                    nodes.append(helper.make_node("Mul", [x, upsampled], list(node.output), name=name))
                    rewritten += 1
                    break
            else:
                nodes.append(node)
            continue
        nodes.append(node)
    replace_nodes(graph, nodes)
    graph.initializer.extend(new_inits)
    return rewritten


def drop_unused_initializers(model: onnx.ModelProto) -> int:
    """Remove initializers (and Constant nodes) no node or graph output reads any more.

    Returns:
        The number removed.
    """
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    dead = [init for init in graph.initializer if init.name not in used]
    for init in dead:
        graph.initializer.remove(init)
    constants = [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]
    for node in constants:
        graph.node.remove(node)
    return len(dead) + len(constants)


def optimize_for_onnxruntime(model: onnx.ModelProto, blocked_layout: bool = True) -> dict[str, int]:
    """Apply the ONNX Runtime rewrites in order; returns how many nodes each changed.

    Args:
        model: modified in place.
        blocked_layout: include the x86-only rewrite (``broadcast_mul_to_resize``).
    """
    counts = {"global_pool": global_pool(model), "batchnorm_to_conv": batchnorm_to_conv(model)}
    if blocked_layout:
        counts["broadcast_mul_to_resize"] = broadcast_mul_to_resize(model)
    drop_unused_initializers(model)
    return counts
