"""Core ML int8: calibrated quantize/dequantize ops written into the PyTorch graph, then converted.

coremltools offers two routes and neither runs here. ``coremltools.optimize.coreml.experimental.
linear_quantize_activations`` measures activation ranges by running the Core ML model (macOS only), and
``coremltools.optimize.torch``'s activation quantizers need an FX-traceable model (``LinearQuantizer``; LSNet
has data-dependent control flow) or ``torch.ao.quantization.quantizer`` (``CoreMLQuantizer``; absent from
the PyTorch 2.13 used here, moved to torchao). So the ranges are measured in PyTorch on the calibration images, and each convolution and
linear layer is replaced by one that reads an int8 weight buffer through ``dequantize_per_channel`` and,
for W8A8, passes its input through ``quantize_per_tensor`` / ``dequantize_per_tensor``. coremltools' own
torch frontend turns those into what ``coremltools.optimize`` produces: ``constexpr_affine_dequantize``
(iOS 16/17) or ``constexpr_blockwise_shift_scale`` (iOS 18+) weights over int8 blobs, and ``quantize`` /
``dequantize`` ops (iOS 17+) around each layer's input, the pattern the Neural Engine runs in int8.

The scheme is the one the sensitivity ranking simulates (``int8_sensitivity``): weights symmetric int8 per
output channel, layer inputs asymmetric uint8 per tensor over their calibrated range. So the quantized
PyTorch module computes what the Core ML program computes (up to float16 rounding), and its agreement with
the float model on the held-out images is reported where Core ML itself cannot run.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .calibration import batches
from .int8_sensitivity import QUANTIZED_LAYERS, input_ranges, uint8_qparams

#: deployment-target version (``coremltools.target`` value) from which Core ML has quantize/dequantize
ACTIVATION_QUANT_TARGET = 8  # iOS17, macOS14, tvOS17, watchOS10
#: ... and from which it has int8 constexpr weights
WEIGHT_QUANT_TARGET = 7  # iOS16, macOS13, tvOS16, watchOS9
_qd = torch.ops.quantized_decomposed  # its ops resolve on first use, once quantize_network registered them


def scheme_for(target_version: int) -> str:
    """``w8a8`` (int8 weights and layer inputs) from iOS 17 on, ``w8`` (int8 weights only) on iOS 16."""
    if target_version >= ACTIVATION_QUANT_TARGET:
        return "w8a8"
    if target_version >= WEIGHT_QUANT_TARGET:
        return "w8"
    raise ValueError(f"Core ML has no int8 weights before iOS16 (target version {target_version})")


def describe(scheme: str) -> dict:
    """What the ``int8_calibration`` metadata says about a scheme."""
    return {"scheme": scheme, "weights": "int8 symmetric per channel",
            "activations": "uint8 asymmetric per tensor" if scheme == "w8a8" else "float (weights-only int8)",
            "quantized_ops": ["conv", "linear"]}


class _Int8Layer(nn.Module):
    """A convolution or linear layer with an int8 weight and (W8A8) a quantized input; float elsewhere."""

    def __init__(self, layer: nn.Module, input_range: tuple[float, float] | None):
        super().__init__()
        weight = layer.weight.detach().float()
        flat = weight.reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        self.register_buffer("qweight", torch.round(weight / scale.view(-1, *[1] * (weight.dim() - 1)))
                             .clamp(-127, 127).to(torch.int8))
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero", torch.zeros(weight.shape[0], dtype=torch.int8))  # int8: iOS16 has no int8 cast
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
        self.input_qparams = None if input_range is None else uint8_qparams(*input_range)

    def dequantized_weight(self) -> torch.Tensor:
        return _qd.dequantize_per_channel(self.qweight, self.weight_scale, self.weight_zero, 0, -127, 127,
                                          torch.int8)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_qparams is None:
            return x
        scale, zero = self.input_qparams
        q = _qd.quantize_per_tensor(x, scale, zero, 0, 255, torch.uint8)
        return _qd.dequantize_per_tensor(q, scale, zero, 0, 255, torch.uint8)


class Int8Conv2d(_Int8Layer):
    """``nn.Conv2d`` with an int8 weight (and, W8A8, a quantized input)."""

    def __init__(self, conv: nn.Conv2d, input_range: tuple[float, float] | None):
        super().__init__(conv, input_range)
        if conv.padding_mode != "zeros":  # F.conv2d below pads with zeros only
            raise ValueError(f"int8 Core ML takes zero-padded convolutions, not padding_mode={conv.padding_mode!r}")
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.quantized_input(x), self.dequantized_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class Int8Linear(_Int8Layer):
    """``nn.Linear`` with an int8 weight (and, W8A8, a quantized input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.dequantized_weight(), self.bias)


def quantize_network(network: nn.Module, images: np.ndarray, scheme: str,
                     keeps_float: Callable[[str], bool], name_of: Callable[[str], str] = lambda n: n
                     ) -> tuple[nn.Module, dict]:
    """A copy of ``network`` whose convolutions and linear layers are int8 (see the module docstring).

    Args:
        network: the float network as it will be converted (not modified).
        images: calibration inputs of ``network`` (N, C, H, W) float32, as the network itself receives them.
        scheme: ``w8a8`` or ``w8``.
        keeps_float: whether a layer (by its name in the exported model) must stay float.
        name_of: maps a module name of ``network`` to its name in the exported model (a wrapper's prefix).

    Returns:
        The quantized copy and counts: ``{"int8_layers": n, "float_layer_count": m}`` (layers kept float).
    """
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)

    network = copy.deepcopy(network).eval()
    layers = {name: m for name, m in network.named_modules()
              if isinstance(m, QUANTIZED_LAYERS) and not keeps_float(name_of(name))}
    kept = sum(isinstance(m, QUANTIZED_LAYERS) for m in network.modules()) - len(layers)
    ranges = input_ranges(network, layers, images)[0] if scheme == "w8a8" else {}
    for name, layer in layers.items():
        # a layer the images never reach has no range; leaving its input float keeps it correct
        input_range = ranges.get(name) if scheme == "w8a8" else None
        replacement = (Int8Conv2d if isinstance(layer, nn.Conv2d) else Int8Linear)(layer, input_range)
        parent_name, _, child = name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, child, replacement)
    return network, {"int8_layers": len(layers), "float_layer_count": kept}


@torch.no_grad()
def simulated_agreement(quantized: nn.Module, reference: nn.Module, images: np.ndarray) -> float | None:
    """Share of ``images`` on which the two networks' top-1 classes agree (None for networks that return
    something other than one logits tensor: feature maps have no top-1)."""
    same = total = 0
    for batch in batches(images, None):
        x = torch.from_numpy(np.ascontiguousarray(batch))
        got, expected = quantized(x), reference(x)
        if not isinstance(got, torch.Tensor) or got.dim() != 2:
            return None
        same += int((got.argmax(-1) == expected.argmax(-1)).sum())
        total += len(batch)
    return same / max(total, 1)
