"""ExecuTorch runner for ``.pte`` programs (XNNPACK delegate), through ExecuTorch's Python runtime.

This is the same C++ runtime Android and iOS apps embed, so latency and numbers measured here carry over
in kind (not in absolute time) to phones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RuntimeUnavailableError, require
from .base import Runner


class ExecuTorchRunner(Runner):
    """Runs the ``forward`` method of an ExecuTorch program.

    Args:
        path: the ``.pte`` file.
        threads: XNNPACK threadpool size (process-wide in ExecuTorch; None leaves it as it is).
    """

    runtime = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.threads = threads
        self.method = None

    def _activate(self) -> None:
        runtime_module = require("executorch.runtime", "executorch", "to run .pte programs")
        if self.threads:
            portable = require("executorch.extension.pybindings.portable_lib", "executorch")
            portable._unsafe_reset_threadpool(self.threads)
        try:
            program = runtime_module.Runtime.get().load_program(str(self.path))
            self.method = program.load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError/ValueError with C++ error codes
            raise RuntimeUnavailableError(f"ExecuTorch cannot load {self.path}: {exc}") from None

    def _deactivate(self) -> None:
        self.method = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x))])
        return outputs[0].detach().float().numpy()

    def info(self) -> dict:
        from importlib import metadata

        try:
            version = metadata.version("executorch")
        except metadata.PackageNotFoundError:
            version = None
        threads = self.threads
        if threads is None:
            try:
                from executorch.extension.pybindings import portable_lib

                threads = portable_lib._threadpool_get_thread_count()
            except (ImportError, AttributeError):
                threads = None
        return {"runtime": self.runtime, "runtime_version": version, "delegate": "xnnpack", "threads": threads}
