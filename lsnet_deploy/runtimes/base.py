"""The runner contract every runtime follows (after Polygraphy's ``BaseRunner``).

A runner is built cheaply (nothing loaded), ``activate()`` loads the artifact, ``infer(x)`` runs one
batch and returns the logits as a NumPy array, ``deactivate()`` frees it. Use it as a context manager.
``synchronize()`` waits for queued device work (a no-op on CPUs) so a caller's clock can stop honestly.
"""

from __future__ import annotations

import abc

import numpy as np


class Runner(abc.ABC):
    """Base class of all runtime runners."""

    #: short runtime name used on the command line and in results (``ort``, ``torch``, ...)
    runtime = "base"

    def __init__(self):
        self.active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load the model; idempotent."""
        if not self.active:
            self._activate()
            self.active = True

    def deactivate(self) -> None:
        """Release the model; idempotent."""
        if self.active:
            self._deactivate()
            self.active = False

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run one batch (N, 3, H, W) and return the outputs as a float32 NumPy array."""
        if not self.active:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        return self._infer(x)

    def synchronize(self) -> None:
        """Block until queued device work is done (CPU runners return at once)."""

    def info(self) -> dict:
        """Runtime name, version and settings, recorded with benchmark results."""
        return {"runtime": self.runtime}

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray: ...
