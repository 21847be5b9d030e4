"""TensorRT runner for serialized engines (``.engine``, ``.plan``), TensorRT 10 and 11.

Engines carry no metadata of their own; ``lsnet-export`` writes it to a JSON file beside the engine
(``<engine>.json``), which ``read_sidecar`` and ``TensorRTRunner.metadata`` read without TensorRT.

Execution uses the name-based tensor API both versions share (``num_io_tensors``, ``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``). Device buffers are PyTorch CUDA tensors
on PyTorch's current stream, so no pycuda or cuda-python is needed. ``tensorrt`` and CUDA are touched only
in ``activate``; the CUDA probe below reads the driver directly (ctypes) so it works without either.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

from .. import metadata_codec
from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError
from dataclasses import dataclass

from ..format_spec import FormatSpec, MetadataStore
from ..option_fields import option
from .base import InputMetadata, Runner, static_dims
from .registry import register_runtime

INSTALL_HINT = "pip install \"lsnet-deploy[tensorrt]\" (TensorRT 10 or 11; on Jetson it comes with JetPack)"


@dataclass(frozen=True)
class TensorRTOptions:
    """The options only ``--format tensorrt`` takes (``FormatSpec.own_options``)."""

    workspace: float | None = option(None, flag="--workspace", help="Builder workspace in GiB.")
    dla_core: int | None = option(None, flag="--dla-core", help="Build for this DLA core (Jetson).")
    timing_cache: Path | None = option(None, flag="--timing-cache", help="Timing cache file (reused across builds).")
    max_batch: int | None = option(None, flag="--max-batch", help="Largest batch of the --dynamic profile.")


#: the format, declared once: the runner here and ``exporters/tensorrt_format.py`` both read it
TENSORRT = FormatSpec(
    name="tensorrt",
    aliases=("trt", "engine"),
    suffixes=(".engine", ".plan", ".trt"),
    extra="tensorrt",
    runtime="tensorrt",
    runtime_aliases=("trt",),
    description="TensorRT engine for NVIDIA GPUs and Jetson (TensorRT 10 and 11, built here; needs a GPU)",
    metadata=MetadataStore.SIDECAR,
    options=frozenset({"dynamic", "half", "int8", "calib", "opset", "simplify"}),
    own_options=TensorRTOptions,
)


def _cuda_driver():
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        if driver.cuInit(0) == 0:
            return driver
    return None


def cuda_device_count() -> int:
    """How many CUDA GPUs the NVIDIA driver reports (0 without a driver or a GPU)."""
    driver = _cuda_driver()
    count = ctypes.c_int(0)
    if driver is None or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_device_name(index: int = 0) -> str | None:
    """The name of CUDA GPU ``index`` as the driver reports it, or None."""
    driver = _cuda_driver()
    device, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
    if driver is None or driver.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    if driver.cuDeviceGetName(name, len(name), device) != 0:
        return None
    return name.value.decode(errors="replace")


def read_sidecar(engine: str | Path) -> dict:
    """The JSON written beside an engine by ``lsnet-export`` (metadata, build settings, trtexec command).

    Raises:
        UsageError: no sidecar.
        LsnetDeployError: a sidecar that cannot be read or is not a JSON object (``metadata_codec.read_sidecar``).
    """
    data = metadata_codec.read_sidecar(engine)
    if data is None:
        raise UsageError(f"{metadata_codec.sidecar_path(engine)} not found: TensorRT engines carry no metadata, "
                         "lsnet-export writes it there; pass --imgsz (and --mean/--std) or keep the JSON beside the "
                         "engine")
    return data


def _device_index(device: str | int) -> int:
    text = str(device).strip().lower()
    if text in ("cuda", "gpu"):
        return 0
    text = text.removeprefix("cuda:").removeprefix("gpu:")
    if not text.isdigit():
        raise UsageError(f"device {device!r} is not a CUDA device; use cuda or cuda:N")
    return int(text)


def import_tensorrt():
    """``import tensorrt`` or RuntimeUnavailableError naming how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "tensorrt":
            raise
        raise RuntimeUnavailableError(f"TensorRT is not installed, and TensorRT engines need it and an NVIDIA "
                                      f"GPU: {INSTALL_HINT}") from None
    return tensorrt


@register_runtime
class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine on a CUDA GPU.

    Args:
        path: the engine file.
        device: ``cuda`` or ``cuda:N``.
    """

    spec = TENSORRT
    title = "TensorRT"
    # read_metadata stays the base's (None): engines embed nothing, the sidecar holds it


    def __init__(self, path: str | Path, device: str | int = "cuda:0"):
        super().__init__()
        self.path = Path(path)
        self.device_index = _device_index(device)
        self._trt = None
        self._torch_device = None
        self._runtime = self._engine = self._context = self._logger = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """``--device`` when it is a CUDA device, else the first GPU."""
        if requested and not requested.startswith("cuda"):
            raise UsageError("TensorRT runs on a CUDA GPU; use --device cuda[:N] or drop --device")
        return requested or "cuda:0"

    def _activate(self) -> None:
        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            found = cuda_device_count()
            why = (f"PyTorch here is a CPU-only build (the driver reports {found} GPU(s)); install a CUDA build of "
                   "PyTorch, which holds the engine's device buffers" if found else "no CUDA GPU was found")
            raise RuntimeUnavailableError(f"cannot run TensorRT engine {self.path.name}: {why}")
        if self.device_index >= torch.cuda.device_count():
            raise RuntimeUnavailableError(f"cuda:{self.device_index} does not exist "
                                          f"({torch.cuda.device_count()} CUDA device(s) here)")
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read engine {self.path}: {exc.strerror or exc}") from None
        self._trt = trt
        self._torch_device = torch.device("cuda", self.device_index)
        torch.cuda.init()  # TensorRT runs in the CUDA context PyTorch creates for the device
        with torch.cuda.device(self._torch_device):
            self._logger = trt.Logger(trt.Logger.ERROR)  # must outlive the runtime
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                self._deactivate()
                raise RuntimeUnavailableError(
                    f"TensorRT {trt.__version__} cannot load {self.path.name}: engines only run on the TensorRT "
                    "release and GPU model they were built with; rebuild it here with lsnet-export --format tensorrt")
            self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self._inputs) != 1 or not self._outputs:
            raise RuntimeUnavailableError(f"{self.path.name} has inputs {self._inputs} and outputs {self._outputs}; "
                                          "expected one image input and a logits output")

    def _deactivate(self) -> None:
        # the context must go before the engine, the engine before the runtime
        self._context = None
        self._engine = None
        self._runtime = None
        self._logger = None

    def _torch_dtype(self, name: str):
        import torch

        return torch.from_numpy(np.empty(0, dtype=self._trt.nptype(self._engine.get_tensor_dtype(name)))).dtype

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        engine_shape = tuple(self._engine.get_tensor_shape(name))
        if -1 not in engine_shape:
            if shape != engine_shape:
                raise UsageError(f"this engine takes input {engine_shape}, got {shape}; export it with --dynamic "
                                 "--max-batch N for other batch sizes")
            return
        low, _, high = (tuple(s) for s in self._engine.get_tensor_profile_shape(name, 0))
        if len(shape) != len(low) or any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            raise UsageError(f"input {shape} is outside this engine's profile {low} .. {high}")

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self._infer_outputs(x)[0]

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        name = self._inputs[0]
        self._check_shape(name, tuple(x.shape))
        with torch.cuda.device(self._torch_device):
            stream = torch.cuda.current_stream(self._torch_device)
            data = torch.from_numpy(np.ascontiguousarray(x)).to(self._torch_device, dtype=self._torch_dtype(name))
            if not self._context.set_input_shape(name, tuple(data.shape)):
                raise UsageError(f"TensorRT refused input shape {tuple(data.shape)} for {self.path.name}")
            self._context.set_tensor_address(name, data.data_ptr())
            outputs = {}
            for out in self._outputs:
                shape = tuple(self._context.get_tensor_shape(out))
                outputs[out] = torch.empty(shape, dtype=self._torch_dtype(out), device=self._torch_device)
                self._context.set_tensor_address(out, outputs[out].data_ptr())
            if not self._context.execute_async_v3(stream.cuda_stream):
                raise LsnetDeployError(f"TensorRT failed to run {self.path.name}")
            stream.synchronize()
        return [outputs[out].float().cpu().numpy() for out in self._outputs]

    def input_metadata(self) -> InputMetadata | None:
        """The engine's input binding: dynamic dimensions (-1) as None, its TensorRT data type's NumPy name."""
        if self._engine is None:
            return None
        name = self._inputs[0]
        dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name))).name
        return static_dims(tuple(self._engine.get_tensor_shape(name))), dtype

    def synchronize(self) -> None:
        """Wait for the GPU (``infer`` already does before returning its outputs)."""
        if self._torch_device is not None:
            import torch

            torch.cuda.synchronize(self._torch_device)

    def metadata(self) -> dict[str, str]:
        """The artifact metadata from the sidecar JSON (raw strings, as ONNX ``metadata_props``)."""
        return dict(read_sidecar(self.path).get("metadata", {}))

    def info(self) -> dict:
        info = {"runtime": self.runtime, "device": f"cuda:{self.device_index}",
                "device_name": cuda_device_name(self.device_index)}
        if self._trt is not None:
            info["runtime_version"] = self._trt.__version__
        return info
