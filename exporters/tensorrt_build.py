"""The TensorRT step, kept thin: an ONNX file in, a serialized engine out, through TensorRT's Python API.

One code path for TensorRT 10 (what JetPack 6 ships) and 11 (desktop and data-centre GPUs). TensorRT 11
removed the precision builder flags (FP16, INT8) and the INT8 calibrators, so nothing here sets a precision:
the network is strongly typed and every tensor's type comes from the ONNX (float16 tensors for ``--half``,
explicit Q/DQ nodes for ``--int8``). On TensorRT 10 that takes the ``STRONGLY_TYPED`` creation flag; on 11
strong typing is always on and the flag, where it still exists, is ignored.

Only APIs present in both versions are used: ``create_network``, ``OnnxParser.parse_from_file``,
``set_memory_pool_limit(WORKSPACE)``, optimization profiles, ``create_timing_cache``/``set_timing_cache``,
``default_device_type``/``DLA_core``/``GPU_FALLBACK`` and ``build_serialized_network``. ``tensorrt`` is
imported only inside ``build_engine``. ``trtexec_command`` writes the equivalent command line.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ExportError, RuntimeUnavailableError, require
from ..runtimes.tensorrt_runner import cuda_device_name

#: TensorRT releases this builder is written for (major versions)
SUPPORTED_MAJORS = (10, 11)


@dataclass(frozen=True)
class EngineSettings:
    """How to build one engine.

    Attributes:
        input_name: the ONNX input tensor.
        input_shape: (C, H, W) of one image.
        batch: the fixed batch, or the smallest batch of a dynamic profile.
        max_batch: the largest batch of the dynamic profile; None for a fixed-batch engine.
        workspace_gib: cap on the builder's scratch memory (None: TensorRT's default, the device memory).
        timing_cache: file of measured tactic timings, read if it exists and updated after the build.
        dla_core: build for this DLA core (Jetson), with GPU fallback for layers DLA cannot run.
    """

    input_name: str
    input_shape: tuple[int, int, int]
    batch: int = 1
    max_batch: int | None = None
    workspace_gib: float | None = None
    timing_cache: Path | None = None
    dla_core: int | None = None

    @property
    def dynamic(self) -> bool:
        """True when the engine takes a range of batch sizes."""
        return self.max_batch is not None

    def profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """(min, opt, max) input shapes of the optimization profile; None for a fixed batch.

        TensorRT tunes its kernels for ``opt``: the largest batch, as a throughput server would use it.
        """
        if not self.dynamic:
            return None
        c, h, w = self.input_shape
        return (self.batch, c, h, w), (self.max_batch, c, h, w), (self.max_batch, c, h, w)

    def batch_sizes(self) -> tuple[int, ...]:
        """Every batch size the engine must accept at its limits."""
        return (self.batch, self.max_batch) if self.dynamic else (self.batch,)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, settings: EngineSettings) -> str:
    """The ``trtexec`` command that builds the same engine (TensorRT 10 and 11).

    ``--stronglyTyped`` is needed on 10 and a no-op on 11; there are no precision flags (the ONNX carries
    the precision), the workspace is in MiB (``--memPoolSize``'s unit on both).
    """
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", "--stronglyTyped"]
    profile = settings.profile()
    if profile is not None:
        for flag, shape in zip(("--minShapes", "--optShapes", "--maxShapes"), profile):
            args.append(f"{flag}={settings.input_name}:{_shape(shape)}")
    if settings.workspace_gib is not None:
        args.append(f"--memPoolSize=workspace:{max(1, round(settings.workspace_gib * 1024))}")
    if settings.timing_cache is not None:
        args.append(f"--timingCacheFile={settings.timing_cache}")
    if settings.dla_core is not None:
        args += [f"--useDLACore={settings.dla_core}", "--allowGPUFallback"]
    return " ".join(shlex.quote(a) for a in args)


def tensorrt_major(version: str) -> int:
    """``"10.3.0.26"`` -> 10 (0 when unparsable)."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


def _logger(trt):
    """A TensorRT logger that keeps warnings and errors, so a failed build can say why."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            if severity in kept:
                self.messages.append(str(msg))

    kept = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR, trt.ILogger.Severity.WARNING)

    return CollectingLogger()


def _last_errors(logger, limit: int = 3) -> str:
    return " | ".join(logger.messages[-limit:]) or "no message from TensorRT"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def build_engine(onnx_path: Path, engine_path: Path, settings: EngineSettings,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Parse ``onnx_path`` into a strongly typed network, build it, and write the serialized engine.

    Args:
        onnx_path: the ONNX file (precision already in it).
        engine_path: where to write the engine.
        settings: batch profile, workspace, timing cache, DLA.
        progress: called with a short message as each step starts.

    Returns:
        Facts to record beside the engine: TensorRT version, device, build seconds, layer count.

    Raises:
        MissingDependencyError: ``tensorrt`` is not installed.
        RuntimeUnavailableError: no CUDA GPU, a TensorRT release other than 10 or 11, or no such DLA core.
        ExportError: the parser or the builder failed (TensorRT's own messages are kept).
    """
    progress = progress or (lambda _: None)
    trt = require("tensorrt", "tensorrt", "to build TensorRT engines")
    major = tensorrt_major(trt.__version__)
    if major not in SUPPORTED_MAJORS:
        raise RuntimeUnavailableError(f"TensorRT {trt.__version__} is not supported; install TensorRT 10 or 11 "
                                      "(pip install \"lsnet-deploy[tensorrt]\")")
    logger = _logger(trt)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # TensorRT raises TypeError when CUDA cannot initialize
        raise RuntimeUnavailableError(f"TensorRT cannot start a builder (is there a CUDA GPU?): "
                                      f"{_last_errors(logger) if logger.messages else exc}") from None

    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # required on 10, accepted and ignored on 11
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if settings.dla_core is not None and hasattr(trt, "OnnxParserFlag") and \
            hasattr(trt.OnnxParserFlag, "ADJUST_FOR_DLA"):
        parser.set_flag(trt.OnnxParserFlag.ADJUST_FOR_DLA)
    progress(f"parsing {onnx_path.name} (TensorRT {trt.__version__}, strongly typed)")
    if not parser.parse_from_file(str(onnx_path)):
        errors = " | ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        raise ExportError(f"TensorRT's ONNX parser rejected the model: {errors or _last_errors(logger)}")

    config = builder.create_builder_config()
    if settings.workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_gib * (1 << 30)))
    profile_shapes = settings.profile()
    if profile_shapes is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(settings.input_name, *profile_shapes)
        config.add_optimization_profile(profile)
    cache = None
    if settings.timing_cache is not None:
        blob = settings.timing_cache.read_bytes() if settings.timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        # a cache from another GPU or TensorRT release is ignored rather than failing the build
        config.set_timing_cache(cache, ignore_mismatch=True)
    if settings.dla_core is not None:
        cores = builder.num_DLA_cores
        if settings.dla_core >= cores:
            raise RuntimeUnavailableError(f"--dla-core {settings.dla_core}: this device has {cores} DLA core(s) "
                                          f"for TensorRT {trt.__version__}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    progress("building the TensorRT engine (minutes for a large model; the timing cache speeds up rebuilds)")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise ExportError(f"TensorRT could not build the engine: {_last_errors(logger)}")
    engine_path.write_bytes(memoryview(serialized))
    if cache is not None:
        _write_atomically(settings.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))

    return {"tensorrt_version": trt.__version__, "strongly_typed": True, "build_seconds": round(seconds, 1),
            "layers": network.num_layers, "device": _device_name(),
            "dla_core": settings.dla_core, "timing_cache": str(settings.timing_cache) if cache else None}


def _device_name() -> str | None:
    return cuda_device_name()
