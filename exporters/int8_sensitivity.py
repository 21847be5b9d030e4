"""Which layers int8 hurts most: a per-layer sensitivity ranking, measured in PyTorch, for any runtime.

Each *unit* (a child of an LSNet block: mixer, squeeze-excite, FFN; or a convolution / linear layer outside
the blocks: the stem, the downsamplings, the head, or any layer of a user's own model around an LSNet) is
quantized alone, the rest kept in float, and the model's outputs on calibration images are compared with the
float outputs. Quantization is simulated the way every int8 backend here does it: weights symmetric per
output channel, layer inputs asymmetric per tensor over their calibrated range (``calibration.RunningRange``).
The runtimes' real kernels round a little differently, but the *ranking* is what the mixed-precision search needs, and one ranking
serves every format (ONNX Runtime, TensorRT, ExecuTorch, LiteRT, Core ML) from a few seconds of PyTorch.

This is the "quantize one block at a time" method of ONNX Runtime's ``qdq_loss_debug`` and of PyTorch's
numeric suite, done before export instead of after.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .calibration import RunningRange, batches
from ..models.lsnet import Block

QUANTIZED_LAYERS = (nn.Conv2d, nn.Linear)
#: images the ranking runs on (the error of a layer is stable long before this)
RANKING_IMAGES = 16


@dataclass(frozen=True)
class UnitError:
    """One unit's damage when it alone is int8: ``error`` is ||int8 out - float out|| / ||float out||."""

    name: str
    error: float

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"layer": self.name, "error": round(self.error, 6)}


def quantizable_units(model: nn.Module) -> list[str]:
    """Names of the units of ``model`` that int8 can quantize, in module order (see the module docstring)."""
    units: list[str] = []
    covered: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in covered):
            continue
        if isinstance(module, Block):
            covered.append(name)
            units += [f"{name}.{child}" for child, sub in module.named_children()
                      if any(isinstance(m, QUANTIZED_LAYERS) for m in sub.modules())]
        elif isinstance(module, QUANTIZED_LAYERS):
            units.append(name)
    return units


def _flat_outputs(outputs) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.flatten(1)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return torch.cat([_flat_outputs(o) for o in outputs], dim=1)


def uint8_qparams(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of an asymmetric uint8 tensor over [low, high] (widened to hold 0 exactly:
    zero padding and ReLU zeros must stay exact; a constant input still gets a usable scale)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / 255.0, 1e-12)
    return scale, int(np.clip(round(-low / scale), 0, 255))


def _fake_quant_input(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    scale, zero_point = uint8_qparams(low, high)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def _fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight.detach(), scale, zero, 0, -127, 127)


@torch.no_grad()
def input_ranges(network: nn.Module, layers: dict[str, nn.Module], images: np.ndarray
                 ) -> tuple[dict[str, tuple[float, float]], torch.Tensor]:
    """The calibration range of every layer's input over ``images`` (run through ``network`` in batches:
    the mean of each batch's percentile bounds, as the PT2E formats calibrate), and the network's
    flattened outputs on them."""
    running: dict[str, RunningRange] = {}

    def recorder(name):
        def hook(_module, args):
            running.setdefault(name, RunningRange()).update(args[0])
        return hook

    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()]
    try:
        outputs = [_flat_outputs(network(torch.from_numpy(np.ascontiguousarray(batch))))
                   for batch in batches(images, None)]
    finally:
        for handle in handles:
            handle.remove()
    return {name: (r.low, r.high) for name, r in running.items()}, torch.cat(outputs)


@contextlib.contextmanager
def _quantized(layers: dict[str, nn.Module], ranges: dict[str, tuple[float, float]]):
    """Simulate int8 on ``layers`` (weights and inputs) inside the block; restores them after."""
    saved = {name: layer.weight.data for name, layer in layers.items()}
    handles = []
    for name, layer in layers.items():
        layer.weight.data = _fake_quant_weight(layer.weight)
        low, high = ranges.get(name, (0.0, 0.0))
        handles.append(layer.register_forward_pre_hook(
            lambda _m, args, low=low, high=high: (_fake_quant_input(args[0], low, high), *args[1:])))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for name, layer in layers.items():
            layer.weight.data = saved[name]


def rank_units(model: nn.Module, images: np.ndarray, units: list[str] | None = None) -> list[UnitError]:
    """Rank ``units`` (default: all of ``quantizable_units``) by the output error each adds alone in int8.

    Args:
        model: the float model as it will be exported (fused; not modified: weights are restored).
        images: preprocessed calibration images (N, 3, H, W); the first ``RANKING_IMAGES`` are used.
        units: unit names to rank.

    Returns:
        The units, worst first.
    """
    units = quantizable_units(model) if units is None else units
    layers = {name: m for name, m in model.named_modules() if isinstance(m, QUANTIZED_LAYERS)}
    x = torch.from_numpy(np.ascontiguousarray(images[:RANKING_IMAGES]))
    ranked = []
    with torch.no_grad():
        ranges, reference = input_ranges(model, layers, images[:RANKING_IMAGES])
        norm = float(reference.norm()) or 1.0
        for unit in units:
            inside = {n: m for n, m in layers.items() if n == unit or n.startswith(unit + ".")}
            with _quantized(inside, ranges):
                error = float((_flat_outputs(model(x)) - reference).norm()) / norm
            ranked.append(UnitError(unit, error))
    return sorted(ranked, key=lambda u: u.error, reverse=True)
