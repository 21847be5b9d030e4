"""Static int8 through PyTorch's PT2E flow: annotate, calibrate on images, convert to explicit Q/DQ.

Used by ``--format executorch --int8`` (XNNPACK's quantizer) and ``--format litert --int8`` (litert-torch's
quantizer, ``litert_format.litert_quantizer``). The
steps are torchao's: ``torch.export`` the (already rewritten) model, ``prepare_pt2e`` with a quantizer,
run the calibration images through it (percentile observers), ``convert_pt2e``. Lowering then turns each
``dequantize -> op -> quantize`` group into one int8 kernel.

What the stock quantizers do not do, and LSNet needs:

* **pads share their input's quantization** (``xnnpack_quantizer``). SKA in its ``tap_slices`` form zero-pads activations; an
  XNNPACK int8 pad must keep its input's scale and zero point (it refuses to load otherwise), and zero is
  exactly representable there, so the pad costs no error.
* **GroupNorm stays float.** It normalises LKP's generated kernels; int8 statistics (means, variances,
  ``rsqrt``) cost accuracy, and ONNX Runtime's placement keeps it float for the same reason.
* **SKA's arithmetic stays float on XNNPACK** (``xnnpack_quantizer``): the feature-times-kernel products
  and the nine-tap sum of ``TapSliceLSConv``, each of which int8 would requantize. Its convolutions stay
  int8; the float part runs inside the delegate at the same speed, and the LSNet-T CIFAR fixture keeps its
  accuracy all-int8 (it missed the gate with the taps int8).
* **modules kept in float.** ``keep_float`` (from the mixed-precision search) names modules of the model
  given to the exporter; nothing inside them is annotated, so their operators run in float between the
  dequantize of their input and the quantize of their output. ``int8_ops_by_module`` checks the result.
"""

from __future__ import annotations

import collections
from typing import Callable, Iterable

import numpy as np
import torch

from ..errors import ExportError, first_line
from ..quiet import silenced
from .calibration import RunningRange, batches
from .xnnpack_forms import GroupNormAsConv, TapSliceLSConv

QUANT_ANNOTATION = "quantization_annotation"
#: images per calibration forward when the graph takes a dynamic batch
CALIBRATION_BATCH = 32
#: operators that only move or pad values: int8 in, int8 out with the same scale (zero is exact)
_SHARED_QPARAM_OPS = ("pad.default", "constant_pad_nd.default")
_QDQ_WORDS = ("quantize_per_tensor", "quantize_per_channel", "dequantize_per_tensor", "dequantize_per_channel",
              "choose_qparams")


def module_path(node: torch.fx.Node) -> str:
    """The innermost module that produced ``node`` (torch.export's ``nn_module_stack``), "" if none."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path[len("L['self']."):] if path.startswith("L['self'].") else path


def _type_name(kind: type | str) -> str:
    """A module type's qualified name (torch.export's ``nn_module_stack`` records classes or their names)."""
    return kind if isinstance(kind, str) else kind.__module__ + "." + kind.__qualname__


def stays_float(keep_float: Iterable[str], float_types: tuple[type, ...] = (GroupNormAsConv,)) -> Callable:
    """A node filter: True for nodes made inside a module named in ``keep_float`` or of a type in
    ``float_types`` (read from torch.export's ``nn_module_stack``, whose types may be classes or names)."""
    names = tuple(keep_float)
    types = {_type_name(t) for t in float_types}

    def check(node: torch.fx.Node) -> bool:
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            path = path[len("L['self']."):] if path.startswith("L['self'].") else path
            if _type_name(kind) in types or any(path == name or path.startswith(name + ".") for name in names):
                return True
        return False

    return check


def multiplies_activations(node: torch.fx.Node) -> bool:
    """True for a matrix product of two activations (attention's ``q^T k`` and ``v attn``): no weight among
    its inputs. Linear layers are ``aten.linear``, so they never match."""
    return (node.op == "call_function" and node.target in (torch.ops.aten.matmul.default, torch.ops.aten.bmm.default)
            and not any(arg.op == "get_attr" for arg in node.all_input_nodes))


def made_by(node: torch.fx.Node, module_type: type) -> bool:
    """True when the innermost module that produced ``node`` is a ``module_type`` itself (its own
    arithmetic in ``forward``, not one of its child modules')."""
    stack = node.meta.get("nn_module_stack") or {}
    return bool(stack) and _type_name(list(stack.values())[-1][1]) == _type_name(module_type)


_SHAPE_OPS = ("view.default", "reshape.default", "transpose.int", "permute.default", "unsqueeze.default",
              "squeeze.dim", "_assert_tensor_metadata.default", "to.dtype")


def reads_activation_product(node: torch.fx.Node) -> bool:
    """True when an input of ``node`` is a ``multiplies_activations`` product, directly or through
    operators that only reshape it."""
    for arg in node.all_input_nodes:
        while arg.op == "call_function" and str(arg.target).endswith(_SHAPE_OPS) and arg.all_input_nodes:
            if multiplies_activations(arg):
                break
            arg = arg.all_input_nodes[0]
        if multiplies_activations(arg):
            return True
    return False


def propagate_shared_quantization(graph_module: torch.fx.GraphModule, shares: Callable[[object], bool],
                                  is_float: Callable[[torch.fx.Node], bool]) -> None:
    """Give every operator for which ``shares(target)`` holds, and whose input is annotated int8, that
    input's quantization parameters (in graph order, so chains like view -> pad -> view -> slice share one);
    nodes for which ``is_float`` holds stay unannotated (the stock propagation would reach into them)."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    for node in graph_module.graph.nodes:
        if node.op != "call_function" or not shares(node.target) or is_float(node):
            continue
        source = node.args[0]
        annotation = source.meta.get(QUANT_ANNOTATION) if isinstance(source, torch.fx.Node) else None
        if annotation is None or annotation.output_qspec is None:
            continue
        if QUANT_ANNOTATION in node.meta and node.meta[QUANT_ANNOTATION]._annotated:
            continue
        shared = SharedQuantizationSpec(source)
        node.meta[QUANT_ANNOTATION] = QuantizationAnnotation(input_qspec_map={source: shared},
                                                             output_qspec=shared, _annotated=True)


def annotate_adds(graph_module: torch.fx.GraphModule, config, is_float: Callable[[torch.fx.Node], bool]) -> int:
    """Annotate every ``aten.add.Tensor`` of two tensors that no pattern annotated (and ``is_float`` does not
    keep float) as an int8 add: both inputs and the output quantized per tensor with ``config``'s activation
    specs. litert-torch's add annotator finds adds through ``source_fn_stack``, which this torch.export no
    longer records, so without this every residual add stayed float between a DEQUANTIZE and a QUANTIZE.
    Returns the number annotated."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    count = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.add.Tensor or is_float(node):
            continue
        if QUANT_ANNOTATION in node.meta or not all(isinstance(a, torch.fx.Node) for a in node.args[:2]):
            continue
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
            continue  # index arithmetic
        node.meta[QUANT_ANNOTATION] = QuantizationAnnotation(
            input_qspec_map={arg: config.input_activation for arg in node.args[:2]},
            output_qspec=config.output_activation, _annotated=True)
        count += 1
    return count


def _is_pad(target) -> bool:
    return str(target).endswith(_SHARED_QPARAM_OPS)


def percentile_observer():
    """A min/max observer class whose range is the running mean of each batch's percentile bounds
    (``calibration.RunningRange``) instead of the extremes of all batches."""
    from torchao.quantization.pt2e.observer import MinMaxObserver

    class PercentileObserver(MinMaxObserver):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.running = RunningRange()

        def forward(self, x_orig):
            if x_orig.numel() == 0:
                return x_orig
            self.running.update(x_orig.to(self.min_val.dtype))
            self.min_val.fill_(self.running.low)
            self.max_val.fill_(self.running.high)
            return x_orig

    return PercentileObserver


def percentile_activations(config):
    """``config`` with ``percentile_observer`` activation observers instead of histograms: the stock
    configs' histogram observers took 10-15 s per calibration image on the CIFAR fixture (2 cores); these
    take milliseconds, and match the percentile ranges of the ONNX formats' calibration."""
    import dataclasses

    observer = percentile_observer()

    def percentile(spec):
        if spec is None or spec.is_dynamic:
            return spec
        return dataclasses.replace(spec, observer_or_fake_quant_ctr=observer.with_args(eps=2 ** -12))

    return dataclasses.replace(config, input_activation=percentile(config.input_activation),
                               output_activation=percentile(config.output_activation))


def xnnpack_quantizer(keep_float: Iterable[str] = ()):
    """XNNPACK's quantizer (int8 activations, int8 weights per output channel), with pads sharing their
    input's quantization, and GroupNorm and the modules ``keep_float`` left unannotated (float)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import _is_share_obs_or_fq_op

    kept_float = stays_float(keep_float)

    def is_float(node):
        return kept_float(node) or made_by(node, TapSliceLSConv)

    class LSNetXNNPACKQuantizer(XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = self._annotate_for_quantization_config(model)
            # the stock propagation (views, slices, pooling...) with pads added, in one pass
            propagate_shared_quantization(model, lambda target: _is_share_obs_or_fq_op(target) or _is_pad(target),
                                          is_float)
            return model

    config = percentile_activations(get_symmetric_quantization_config(is_per_channel=True))
    quantizer = LSNetXNNPACKQuantizer().set_global(config)
    # set_module_name(name, None) is refused in this version; a filter ("annotate only these") is not
    return quantizer.set_filter_function(lambda node: not is_float(node))


def quantize_pt2e(model: torch.nn.Module, example: torch.Tensor, images: np.ndarray, quantizer,
                  fold_quantize: bool = True) -> torch.fx.GraphModule:
    """``model`` with int8 Q/DQ nodes, calibrated on ``images`` (fed in batches of ``example``'s size).

    Args:
        model: the model to quantize, in eval mode (already rewritten for the target).
        example: an input of the export's shape.
        images: (N, C, H, W) float32 calibration images, preprocessed as the metadata prescribes.
        quantizer: a PT2E quantizer (``xnnpack_quantizer()``, litert-torch's ``PT2EQuantizer``).
        fold_quantize: fold the weights' quantize nodes into int8 constants (litert-torch wants them kept).

    Returns:
        The converted graph module (float in, float out), ready for ``torch.export`` and lowering.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph, batch = _calibration_graph(model.eval(), example)
    observed = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for chunk in batches(images, batch):
            observed(torch.from_numpy(np.ascontiguousarray(chunk)))
    return convert_pt2e(observed, fold_quantize=fold_quantize)


def quantize_checked(model: torch.nn.Module, example: torch.Tensor, images: np.ndarray, quantizer,
                     keeps_float: Callable[[str], bool], fold_quantize: bool = True
                     ) -> tuple[torch.fx.GraphModule, int]:
    """``quantize_pt2e``, its failures as one-line ExportErrors, then checked: no module that must stay
    float (``keeps_float(module_name)``) may have an int8 operator.

    Returns:
        The converted graph module and its number of int8 operators.

    Raises:
        ExportError: quantization failed, or an operator of a kept-float module came out int8.
    """
    with silenced() as log:
        try:
            converted = quantize_pt2e(model, example, images, quantizer, fold_quantize=fold_quantize)
        except Exception as exc:
            raise ExportError(f"int8 quantization (PT2E) failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc
    counts = int8_ops_by_module(converted)
    leaked = sorted(name for name in counts if keeps_float(name))
    if leaked:
        raise ExportError(f"int8: modules kept in float still have int8 operators ({', '.join(leaked[:3])}); "
                          "report a bug with the command line")
    return converted, sum(counts.values())


def _calibration_graph(model: torch.nn.Module, example: torch.Tensor) -> tuple[torch.fx.GraphModule, int]:
    """The exported graph to calibrate, and the batch to feed it.

    An observed graph runs operator by operator in Python, about as slow per call at batch 32 as at batch 1
    on a small model, so calibration runs on a graph with a dynamic batch dimension when the model traces
    with one; the converted graph is exported again at the export's fixed shape for lowering.
    """
    from torch.export import Dim

    wide = example.new_zeros((2, *example.shape[1:]))
    try:
        graph = torch.export.export(model, (wide,), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},))
        return graph.module(), CALIBRATION_BATCH
    except Exception:  # a model whose code fixes the batch: calibrate at the export's batch
        return torch.export.export(model, (example,)).module(), example.shape[0]


def _is_qdq(node: torch.fx.Node) -> bool:
    return any(word in str(node.target) for word in _QDQ_WORDS)


def _dequantized(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and "dequantize" in str(node.target)


def int8_ops_by_module(graph_module: torch.fx.GraphModule) -> collections.Counter:
    """Module name -> number of its operators that run in int8.

    An operator is int8 when every input but a bias (which int8 kernels keep in float) is dequantized from
    int8, and either one of them is a constant (its weights are int8) or its output is quantized again (an
    operator fused with a following activation counts once, through its weights). The check that
    ``keep_float`` was honoured: no module kept in float may appear.
    """
    counts: collections.Counter = collections.Counter()
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        weighted = str(node.target).split(".")[-2:-1] in (["conv2d"], ["linear"])
        bias = node.args[2] if weighted and len(node.args) > 2 else None
        inputs = [a for a in node.all_input_nodes if a is not bias]
        if not inputs or not all(_dequantized(a) for a in inputs):
            continue
        constant = any(all(b.op == "get_attr" or _is_qdq(b) for b in a.all_input_nodes) and
                       any(b.op == "get_attr" for b in a.all_input_nodes) for a in inputs)
        if constant or (node.users and all(_is_qdq(user) for user in node.users)):
            counts[module_path(node)] += 1
    return counts
