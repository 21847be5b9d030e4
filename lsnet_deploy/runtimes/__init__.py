"""Runtimes: one module per runtime, each a lazy loader plus a Runner (activate / infer / deactivate).

Each runner module registers its class (name, aliases, suffixes, metadata reader, device rule) with
``register_runtime``; importing this package imports each once, and no runtime library: those load only
in ``activate`` and in the metadata readers. ``runner_for(path)`` picks the runtime from the file type.
"""

from __future__ import annotations

from .base import InputMetadata, Runner
from .registry import (artifact_suffixes, canonical_runtime, file_suffix, get_runtime, register_runtime, runner_for,
                       runtime_for_path, runtime_for_suffix, runtimes)
from . import torch_runner  # noqa: F401,E402  (registers torch)
from . import onnxruntime_runner  # noqa: F401,E402  (registers ort)
from . import executorch_runner  # noqa: F401,E402  (registers executorch)
from . import coreml_runner  # noqa: F401,E402  (registers coreml)
from . import tensorrt_runner  # noqa: F401,E402  (registers tensorrt)
from . import litert_runner  # noqa: F401,E402  (registers litert)
from . import qnn_runner  # noqa: F401,E402  (registers qnn)
from . import arm_runners  # noqa: F401,E402  (registers ort-arm64, litert-arm64, litert-arm64-fp16, executorch-arm64)

__all__ = ["InputMetadata", "Runner", "artifact_suffixes", "canonical_runtime", "file_suffix", "get_runtime", "register_runtime",
           "runner_for", "runtime_for_path", "runtime_for_suffix", "runtimes"]
