"""ExecuTorch runner for ``.pte`` programs (XNNPACK delegate), through ExecuTorch's Python runtime.

This is the same C++ runtime Android and iOS apps embed, so latency and numbers measured here carry over
in kind (not in absolute time) to phones. ``EXECUTORCH`` declares the format once; the runner here and
``exporters/executorch_format.py`` both read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError, require
from ..format_spec import FormatSpec, MetadataStore
from ..metadata_codec import METADATA_ENTRY as METADATA_METHOD  # the constant method the map is returned by
from ..metadata_codec import REQUIRED_KEY, parse_metadata_map
from ..quiet import native_stderr_captured
from .base import InputMetadata, Runner, static_dims
from .registry import register_runtime

EXECUTORCH = FormatSpec(
    name="executorch",
    aliases=("pte", "et", "xnnpack"),
    suffixes=(".pte",),
    extra="executorch",
    runtime="executorch",
    runtime_aliases=("et",),
    description="ExecuTorch program lowered to XNNPACK (Android and iOS apps, embedded Linux)",
    metadata=MetadataStore.ENTRY,
    options=frozenset({"half", "int8", "calib"}),
)

# ExecuTorch ScalarType codes
DTYPES = {5: "float16", 6: "float32", 7: "float64", 15: "bfloat16"}


@register_runtime
class ExecuTorchRunner(Runner):
    """Runs the ``forward`` method of an ExecuTorch program.

    Args:
        path: the ``.pte`` file.
        threads: XNNPACK threadpool size (process-wide in ExecuTorch; None leaves it as it is).
    """

    spec = EXECUTORCH
    title = "ExecuTorch"

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.threads = threads
        self.method = None

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str] | None:
        """The map a constant method (no inputs) returns as one JSON string: ``lsnet_metadata`` first,
        then any other method that is not ``forward``; None when no method returns one."""
        runtime = require("executorch.runtime", cls.extra, "to read .pte programs")
        try:
            program = runtime.Runtime.get().load_program(str(path))
        except Exception as exc:
            raise LsnetDeployError(f"ExecuTorch cannot load {path}: {exc}") from None
        names = sorted(program.method_names - {"forward"}, key=lambda n: (n != METADATA_METHOD, n))
        for name in names:
            try:
                outputs = program.load_method(name).execute([])
            except Exception:  # a method that needs inputs: not a metadata getter
                continue
            if len(outputs) == 1 and isinstance(outputs[0], str):
                parsed = parse_metadata_map(outputs[0])
                if parsed is not None and REQUIRED_KEY in parsed:
                    return parsed
        return None

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """Always the CPU (XNNPACK)."""
        if requested and requested != "cpu":
            raise UsageError(f"ExecuTorch (XNNPACK) runs on the CPU; drop --device {requested}")
        return "cpu"

    def _activate(self) -> None:
        runtime_module = require("executorch.runtime", self.extra, "to run .pte programs")
        # the threadpool's cpuinfo probe prints lines from C++ the first time it starts: kept unless it fails
        with native_stderr_captured():
            if self.threads:
                portable = require("executorch.extension.pybindings.portable_lib", self.extra)
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

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x))])
        return [out.detach().float().numpy() for out in outputs]

    def input_metadata(self) -> InputMetadata | None:
        """The ``forward`` method's first input tensor (``.pte`` programs have static shapes)."""
        if self.method is None or not hasattr(self.method, "metadata"):
            return None
        try:
            meta = self.method.metadata.input_tensor_meta(0)
            return static_dims(meta.sizes()), DTYPES.get(int(meta.dtype()), "float32")
        except Exception:  # an ExecuTorch build without MethodMeta: nothing to report
            return None

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
