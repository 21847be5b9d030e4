"""LiteRT GPU placement of ``.tflite`` files: LiteRT's own GPU delegate where it can start, else its analyzer.

Two tools ship with ``ai-edge-litert``:

* ``ModelAnalyzer(path, True, True)`` (the analyzer; the last argument asks for GPU compatibility). In the
  2.3 wheel its GPU rules are not compiled in: it calls every model "compatible", a model with
  ``STABLEHLO_SORT`` too (tests/test_accelerators holds this). Its verdict is reported, marked unverified.
* The GPU accelerator itself (ML Drift on WebGPU, ``libLiteRtWebGpuAccelerator.so``). Compiling a model with
  it prints which operators it refuses and how many run on the GPU. It needs a GPU adapter; on a machine
  without a GPU, Mesa's software Vulkan driver (lavapipe, ``mesa-vulkan-drivers`` 25 or later: Dawn refuses
  22.x) is one. The compile runs in a child process, so a driver crash cannot take the caller down.

Phones run the same delegate on OpenCL or Vulkan drivers; what a phone's driver does (speed, precision,
bugs) only a phone shows.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

from ..errors import UsageError, require
from .report import PlacementReport

#: how long the GPU delegate may take to compile a model in the child process (seconds)
COMPILE_TIMEOUT = 300
# GPU alone first: it compiles only if the GPU takes every operator; else GPU with the CPU, whose log says
# which operators the GPU refused and how many run where
_COMPILE = """
import sys
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator as H
try:
    model = CompiledModel.from_file(sys.argv[1], hardware_accel=H.GPU)
    print("LSNET_GPU_ONLY", model.is_fully_accelerated(), flush=True)
except Exception:
    print("LSNET_GPU_REFUSED", flush=True)
    CompiledModel.from_file(sys.argv[1], hardware_accel=H.GPU | H.CPU)
print("LSNET_COMPILED", flush=True)
"""
_GPU_TOOK_GRAPH = "Initializing WebGPU-based API from graph"
_SPLIT = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")
_UNSUPPORTED_HEADER = "Following operations are not supported by GPU delegate:"
_NO_ADAPTER = ("No adapters found", "Failed to initialize WebGPU environment")
_OP_LINE = re.compile(r"^\s*Op#\d+ ([A-Z0-9_]+)\(")


def probe_litert_gpu(path: Path, **options) -> PlacementReport:
    """LiteRT GPU delegate placement of a ``.tflite`` file.

    Compiles it with LiteRT's GPU accelerator when a GPU adapter exists here (a real verdict), else
    reports the analyzer's (``verified=False``, with the reason).

    Raises:
        MissingDependencyError: ai-edge-litert is not installed.
        UsageError: the file is not a LiteRT model.
    """
    require("ai_edge_litert", "litert", "to check LiteRT GPU placement")
    path = Path(path)
    ops = analyzer_operators(path)
    compiled = compile_on_gpu(path, len(ops))
    if compiled is not None:
        return compiled
    return analyzer_report(path, ops)


def analyzer_text(path: Path) -> str:
    """The analyzer's text dump of ``path`` with GPU compatibility asked for.

    Raises:
        UsageError: the analyzer cannot read the file.
    """
    from ai_edge_litert import _pywrap_analyzer_wrapper

    try:
        return _pywrap_analyzer_wrapper.ModelAnalyzer(str(path), True, True)
    except Exception as exc:
        raise UsageError(f"{path} is not a LiteRT model the analyzer can read: {str(exc).splitlines()[0]}") \
            from exc


def analyzer_operators(path: Path) -> list[str]:
    """Operator names of the main subgraph (``Subgraph#0``), in order, from the analyzer's dump."""
    ops, in_main = [], False
    for line in analyzer_text(path).splitlines():
        if line.startswith("Subgraph#"):
            in_main = line.startswith("Subgraph#0 ")
        match = _OP_LINE.match(line) if in_main else None
        if match:
            ops.append(match.group(1))
    if not ops:
        raise UsageError(f"{path} is not a LiteRT model with operators (the analyzer found none)")
    return ops


def analyzer_report(path: Path, ops: list[str]) -> PlacementReport:
    """The analyzer's GPU verdict as a report, marked unverified (its GPU rules are not in this build)."""
    from importlib.metadata import version

    text = analyzer_text(path)
    compatible = "looks compatible with GPU delegate" in text
    flagged = collections.Counter(match.group(1) for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line
                                  for match in [_OP_LINE.match(line)] if match)
    note = ("analyzer only: its GPU rules are not compiled into this ai-edge-litert (it passes operators the GPU "
            "delegate refuses); no GPU adapter here to compile with the delegate (install mesa-vulkan-drivers >= 25 "
            "for a software Vulkan one)")
    return PlacementReport(accelerator="gpu", tool="ai-edge-litert analyzer (GPU compatibility)",
                           tool_version=version("ai-edge-litert"), partitions=1 if compatible else None,
                           nodes_total=len(ops), nodes_on_accelerator=len(ops) if compatible else None,
                           fallback_ops=dict(flagged), verified=False, note=note)


def compile_on_gpu(path: Path, operators: int) -> PlacementReport | None:
    """Compile ``path`` with LiteRT's GPU accelerator in a child process; None when no GPU adapter exists here.

    Args:
        operators: how many operators the main subgraph has (the analyzer's count).

    Raises:
        UsageError: the delegate failed for another reason (its last log line is kept).
    """
    from importlib.metadata import version

    try:
        done = subprocess.run([sys.executable, "-c", _COMPILE, str(path)], capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise UsageError(f"LiteRT's GPU delegate did not compile {path} within {COMPILE_TIMEOUT} s") from None
    log = done.stdout + done.stderr
    if any(marker in log for marker in _NO_ADAPTER):
        return None
    tool, version_ = "LiteRT GPU delegate (ML Drift, WebGPU)", version("ai-edge-litert")
    if "LSNET_GPU_ONLY True" in log and _GPU_TOOK_GRAPH in log:
        return PlacementReport(accelerator="gpu", tool=tool, tool_version=version_, partitions=1,
                               nodes_total=operators, nodes_on_accelerator=operators)
    split = _SPLIT.search(log)
    if split is None:
        errors = ([line for line in log.splitlines() if "ERROR" in line and "plugin" not in line]
                  or log.splitlines() or ["no output"])
        raise UsageError(f"LiteRT's GPU delegate could not compile {path}: {errors[0].strip()}")
    on_gpu, on_cpu = int(split.group(1)), int(split.group(2))
    refused = collections.Counter(_refused_operators(log))
    fallback = dict(refused)
    if on_cpu and not refused:
        fallback = {"(outside the GPU partition)": on_cpu}
    note = "" if not on_cpu else f"{on_cpu} of {on_gpu + on_cpu} operators run on the CPU"
    reasons = sorted(set(_refusal_reasons(log)))
    if reasons:
        note += f" ({'; '.join(reasons)})"
    return PlacementReport(accelerator="gpu", tool=tool, tool_version=version_, partitions=1 if not on_cpu else None,
                           nodes_total=on_gpu + on_cpu, nodes_on_accelerator=on_gpu, fallback_ops=fallback,
                           note=note)


def _refusal_lines(log: str) -> list[str]:
    lines = log.splitlines()
    if not any(_UNSUPPORTED_HEADER in line for line in lines):
        return []
    start = next(i for i, line in enumerate(lines) if _UNSUPPORTED_HEADER in line) + 1
    refused = []
    for line in lines[start:]:
        if _SPLIT.search(line) or not re.match(r"^[A-Z0-9_]+: ", line):
            break
        refused.append(line)
    return refused


def _refused_operators(log: str) -> list[str]:
    """The operator of each line the GPU delegate lists as not supported (``MUL: reason. location``)."""
    return [line.split(":", 1)[0] for line in _refusal_lines(log)]


def _refusal_reasons(log: str) -> list[str]:
    """``OP: reason`` of each refused operator, without its location."""
    return [line.split(". ", 1)[0].rstrip(".") for line in _refusal_lines(log)]
