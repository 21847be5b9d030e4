"""PyTorch runner: an nn.Module in eager mode on CPU or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import RuntimeUnavailableError
from .base import Runner

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchRunner(Runner):
    """Runs a PyTorch model in inference mode.

    Args:
        model: the module (already fused or not, as the caller wants).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``float32``, ``float16`` or ``bfloat16``.
        threads: torch intra-op threads (None leaves torch's setting).
    """

    runtime = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "cpu", precision: str = "float32",
                 threads: int | None = None):
        super().__init__()
        self.model = model
        self.device = torch.device(device)
        if precision not in DTYPES:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPES)}")
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.threads = threads

    def _activate(self) -> None:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailableError("CUDA is not available to PyTorch here; use --device cpu")
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = self.model.eval().to(self.device, self.dtype)

    def _deactivate(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def _infer(self, x: np.ndarray) -> np.ndarray:
        out = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype))
        return out.float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def info(self) -> dict:
        info = {"runtime": self.runtime, "runtime_version": torch.__version__, "device": str(self.device),
                "precision": self.precision, "threads": self.threads or torch.get_num_threads()}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
