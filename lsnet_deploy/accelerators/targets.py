"""The accelerators ``lsnet-export --accelerator`` targets: which formats reach each, the export choices
measured best for it, and the probe that asks its own tool where an artifact's operators run.

One row per accelerator; the exporters, the CLI's help and the export pipeline read this table. A probe
is named as ``"module:function"`` and imported only when it runs (each needs its vendor's library); it
takes ``(path, **options)`` and returns a ``PlacementReport``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import UsageError, did_you_mean
from .qnn_socs import QnnOptions
from .report import PlacementReport


@dataclass(frozen=True)
class AcceleratorTarget:
    """One accelerator and how to export for it.

    Attributes:
        name: the ``--accelerator`` value.
        aliases: other accepted names.
        formats: the export formats whose artifacts reach it.
        ska: the SKA form ``--ska auto`` picks for it (None: the format's own choice).
        static_shapes: it takes fixed shapes only (``--dynamic`` / ``--dynamic-hw`` refused).
        description: one line for ``lsnet-export -h``.
        probe: ``"module:function"`` of its placement probe.
        onnx_target: the graph ``build_onnx`` prepares for it (rewrites, int8 Q/DQ layout); None: the format's.
        emulator_runtime: a runtime that runs artifacts on this accelerator (or its emulator) here; exports
            for it are validated there as well, with float16 tolerances for float models.
        own_options: the dataclass of the options that pick its variant (``QnnOptions``: the SoC), the same as
            those of the formats that reach it and have their own; its fields that are set are passed to the
            probe as keyword arguments and recorded in the metadata.
        requires: modules the probe imports, checked before any work.
        extra: the lsnet-deploy extra that installs them.
    """

    name: str
    aliases: tuple[str, ...]
    formats: tuple[str, ...]
    ska: str | None
    static_shapes: bool
    description: str
    probe: str
    onnx_target: str | None = None
    emulator_runtime: str | None = None
    own_options: type | None = None
    requires: tuple[str, ...] = ()
    extra: str = ""

    def run_probe(self, path: Path, **options) -> PlacementReport:
        """Ask this accelerator's own tool where the artifact at ``path`` runs."""
        module, function = self.probe.split(":")
        return getattr(importlib.import_module(module), function)(Path(path), **options)

    def probe_arguments(self, values: Mapping[str, object]) -> dict:
        """The keyword arguments of its probe among ``values``: its own options' fields that are set."""
        names = {f.name for f in dataclasses.fields(self.own_options)} if self.own_options else set()
        return {name: value for name, value in values.items() if name in names and value is not None}


TARGETS = {target.name: target for target in (
    AcceleratorTarget("htp", ("qnn",), ("onnx", "qnn"), "tap_slices", True,
                      "Snapdragon NPU (Hexagon HTP) through ONNX Runtime's QNN EP, compiled and emulated here",
                      "lsnet_deploy.accelerators.qnn_probe:probe_qnn_htp", onnx_target="qnn",
                      emulator_runtime="qnn", own_options=QnnOptions, requires=("onnxruntime_qnn",), extra="qnn"),
    AcceleratorTarget("nnapi", (), ("onnx", "ort"), "tap_slices", True,
                      "Android NNAPI through ONNX Runtime's NNAPI EP (partitions from ORT's mobile checker)",
                      "lsnet_deploy.accelerators.ort_mobile:probe_nnapi", onnx_target="onnxruntime-mobile",
                      requires=("onnxruntime",), extra="onnx"),
    AcceleratorTarget("coreml", (), ("onnx", "ort"), "tap_slices", True,
                      "Core ML through ONNX Runtime's Core ML EP (MLProgram; partitions from ORT's mobile checker)",
                      "lsnet_deploy.accelerators.ort_mobile:probe_coreml_ep", onnx_target="onnxruntime-mobile",
                      requires=("onnxruntime",), extra="onnx"),
    AcceleratorTarget("gpu", (), ("litert",), "tap_slices", True,
                      "LiteRT's GPU delegate (phone GPUs through OpenCL or WebGPU)",
                      "lsnet_deploy.accelerators.litert_gpu:probe_litert_gpu",
                      requires=("ai_edge_litert",), extra="litert"),
    AcceleratorTarget("xnnpack", (), ("executorch",), None, True,
                      "ExecuTorch's XNNPACK delegate (CPU kernels tuned for ARM)",
                      "lsnet_deploy.accelerators.executorch_delegates:probe_xnnpack",
                      requires=("executorch.exir",), extra="executorch"),
    AcceleratorTarget("vulkan", (), ("executorch",), "tap_slices", True,
                      "ExecuTorch's Vulkan delegate (phone GPUs)",
                      "lsnet_deploy.accelerators.executorch_delegates:probe_vulkan",
                      requires=("executorch.exir",), extra="executorch"),
)}
_NAMES = {alias: target.name for target in TARGETS.values() for alias in (target.name, *target.aliases)}


def get_target(name: str) -> AcceleratorTarget:
    """The accelerator named ``name`` or one of its aliases (case-insensitive).

    Raises:
        UsageError: an unknown name, with the closest one suggested.
    """
    key = name.strip().lower()
    if key in _NAMES:
        return TARGETS[_NAMES[key]]
    raise UsageError(f"unknown --accelerator {name!r}{did_you_mean(key, _NAMES, cutoff=0.5)} "
                     f"(choose from {', '.join(TARGETS)})")


def accelerator_option_kinds() -> dict[type, list[str]]:
    """Each accelerator options dataclass (``own_options``) with the accelerators that declare it."""
    kinds: dict[type, list[str]] = {}
    for target in TARGETS.values():
        if target.own_options is not None:
            kinds.setdefault(target.own_options, []).append(target.name)
    return kinds


def targets_of(fmt: str) -> list[AcceleratorTarget]:
    """The accelerators a format's artifacts reach, in table order."""
    return [target for target in TARGETS.values() if fmt in target.formats]


def accelerator_help() -> str:
    """``--accelerator``'s help: each accelerator with its formats."""
    rows = "; ".join(f"{t.name}{' (' + ', '.join(t.aliases) + ')' if t.aliases else ''} for "
                     f"{'/'.join(t.formats)}: {t.description}" for t in TARGETS.values())
    return (f"Target accelerator: export with the choices measured best for it (SKA form, static shapes, "
            f"graph and int8 layout), record it in the metadata, and ask its own tool where each operator runs "
            f"(refused unless whole, see --allow-fallback). {rows}.")
