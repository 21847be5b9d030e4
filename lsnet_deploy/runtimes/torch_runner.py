"""PyTorch runner: an nn.Module in eager mode on CPU or CUDA.

It runs models, not files (no suffixes); ``torch`` is imported when a runner is built, not when this
module is.
"""

from __future__ import annotations

import numpy as np

from ..errors import RuntimeUnavailableError
from ..verify import as_arrays
from .base import InputMetadata, Runner
from .registry import register_runtime

PRECISIONS = ("float32", "float16", "bfloat16")


@register_runtime
class TorchRunner(Runner):
    """Runs a PyTorch model in inference mode.

    Args:
        model: the module (already fused or not, as the caller wants).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``float32``, ``float16`` or ``bfloat16``.
        threads: torch intra-op threads (None leaves torch's setting).
    """

    name = "torch"
    aliases = ("pytorch",)
    extra = None  # torch is a core dependency
    title = "PyTorch"

    def __init__(self, model, device: str = "cpu", precision: str = "float32", threads: int | None = None):
        import torch

        super().__init__()
        self.model = model
        self.device = torch.device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.dtype = getattr(torch, precision)
        self.threads = threads

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """``--device`` as given, else the first CUDA GPU when PyTorch sees one, else the CPU."""
        if requested:
            return requested
        try:
            import torch

            return "cuda:0" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"

    def _activate(self) -> None:
        import torch

        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailableError("CUDA is not available to PyTorch here; use --device cpu")
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = self.model.eval().to(self.device, self.dtype)

    def _deactivate(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self._infer_outputs(x)[0]

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype))
        return as_arrays(out)

    def input_metadata(self) -> InputMetadata:
        """Any batch, the model's ``in_chans`` and ``img_size`` where it has them (None otherwise)."""
        size = getattr(self.model, "img_size", None)
        height, width = tuple(size) if isinstance(size, (tuple, list)) and len(size) == 2 else (None, None)
        return [None, getattr(self.model, "in_chans", 3), height, width], self.precision

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def info(self) -> dict:
        import torch

        info = {"runtime": self.runtime, "runtime_version": torch.__version__, "device": str(self.device),
                "precision": self.precision, "threads": self.threads or torch.get_num_threads()}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
