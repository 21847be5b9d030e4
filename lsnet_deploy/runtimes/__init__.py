"""Runtimes: one module per runtime, each a lazy loader plus a Runner (activate / infer / deactivate).

``runner_for(path)`` picks the runtime from the file type. Heavy libraries load only in ``activate``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import Runner

RUNTIME_ALIASES = {"ort": "ort", "onnxruntime": "ort", "onnx": "ort", "torch": "torch", "pytorch": "torch",
                   "executorch": "executorch", "et": "executorch", "coreml": "coreml",
                   "tensorrt": "tensorrt", "trt": "tensorrt"}
SUFFIX_RUNTIMES = {".onnx": "ort", ".ort": "ort", ".pte": "executorch", ".mlpackage": "coreml",
                   ".mlmodel": "coreml", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}


def canonical_runtime(name: str) -> str:
    """Normalize a runtime name or alias (``onnxruntime`` -> ``ort``, ``trt`` -> ``tensorrt``)."""
    try:
        return RUNTIME_ALIASES[name.lower()]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name.lower(), list(RUNTIME_ALIASES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown runtime {name!r}{hint} (choose from torch, ort, executorch, coreml, trt)") from None


def runtime_for_path(path: str | Path) -> str:
    """The runtime that runs an artifact, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_RUNTIMES:
        raise UsageError(f"cannot tell the runtime of {path} from its suffix; pass --runtime "
                         f"(known suffixes: {', '.join(SUFFIX_RUNTIMES)})")
    return SUFFIX_RUNTIMES[suffix]


def runner_for(path: str | Path, runtime: str | None = None, **options) -> Runner:
    """Build (not activate) the runner for an artifact file.

    Args:
        path: the artifact.
        runtime: force a runtime; default from the suffix.
        **options: runtime-specific settings (``threads``, ``provider``, ``spinning``, ``compute_units``...).
    """
    name = canonical_runtime(runtime) if runtime else runtime_for_path(path)
    if name == "ort":
        from .onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, provider=options.get("provider"), threads=options.get("threads"),
                                 spinning=options.get("spinning", False), device=options.get("device"))
    if name == "executorch":
        from .executorch_runner import ExecuTorchRunner

        return ExecuTorchRunner(path, threads=options.get("threads"))
    if name == "coreml":
        from .coreml_runner import CoreMLRunner

        return CoreMLRunner(path, compute_units=options.get("compute_units", "all"))
    if name == "tensorrt":
        from .tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, device=options.get("device", "cuda:0"))
    raise UsageError(f"runtime {name!r} runs PyTorch models, not files; use --model")


__all__ = ["Runner", "runner_for", "runtime_for_path", "canonical_runtime"]
