"""Runners of the aarch64 builds of the mobile runtimes, emulated: ``ort-arm64``, ``litert-arm64``,
``litert-arm64-fp16``, ``executorch-arm64``.

Each runs an artifact in an emulated arm64 Python (``lsnet_deploy.arm``: ``qemu-aarch64-static -cpu
cortex-a76``, the runtime's own aarch64 wheel at the host's version), so the numbers come from the ARM
kernels a phone runs: MLAS's NEON and dot-product kernels in ONNX Runtime, XNNPACK's ARM kernels in LiteRT
and ExecuTorch, fp16 arithmetic included. They claim no suffix (the x86 runtimes stay the default for ``.onnx`` and
``.tflite``): name them, as in ``lsnet-bench m.onnx --runtime ort-arm64 --data DIR``, ``lsnet-predict
--runtime litert-arm64`` or ``Predictor(path, runtime="ort-arm64")``. Emulated time means nothing: use
them for outputs and accuracy, never for latency.

The worker process starts once per runner in ``activate`` and ends in ``deactivate`` (or with this
process). Artifact metadata is read on the host by the x86 runtime's reader: it is the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..arm import environment as arm_environment
from ..arm.client import ArmWorker
from ..errors import RuntimeUnavailableError, UsageError
from .base import InputMetadata, Runner, static_dims
from .executorch_runner import ExecuTorchRunner
from .litert_runner import LiteRTRunner
from .onnxruntime_runner import OnnxRuntimeRunner
from .registry import canonical_runtime, register_runtime

#: threads of an emulated runtime when none are asked for: emulated threads share the host's cores, and
#: the outputs of these kernels do not depend on the thread count
DEFAULT_THREADS = 1


class ArmEmulatedRunner(Runner):
    """An artifact run by the aarch64 build of ``native``'s runtime under qemu.

    Args:
        path: the artifact (one of ``native``'s suffixes).
        threads: runtime threads inside the emulator (default ``DEFAULT_THREADS``).
        worker: an emulated worker to load the artifact into instead of starting one (``ArmWorker``): it
            stays running when the runner is deactivated, for the next artifact (starting one costs 5-45 s
            of emulation). Its owner closes it.
    """

    #: the x86 runtime of the same artifacts: its suffixes and its metadata reader
    native: ClassVar[type[Runner]] = Runner
    #: the runtime the worker loads (``worker.py``: ``ort``, ``litert``, ``litert-fp16``)
    worker_runtime: ClassVar[str] = ""
    #: the suffixes are the native runtime's; they stay its default (name these runtimes to use them)
    claims_suffixes = False
    #: runs the artifact with the native runtime's default settings, so it can stand in for it in the
    #: export gates (``arm_runtime_for``); False for a variant that changes the arithmetic (forced fp16)
    stands_in_for_native: ClassVar[bool] = True

    def __init__(self, path: str | Path, threads: int | None = None, worker=None):
        super().__init__()
        self.path = Path(path)
        self.threads = threads or DEFAULT_THREADS
        self.shared_worker = worker
        self.worker = None

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str] | None:
        """The native runtime's reader: the metadata is in the file, whatever CPU runs it."""
        return cls.native.read_metadata(path)

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """Always the emulated ARM CPU."""
        if requested and requested != "cpu":
            raise UsageError(f"{cls.name} runs on an emulated ARM CPU; drop --device {requested}")
        return "cpu"

    def _activate(self) -> None:
        if self.path.suffix.lower() not in self.suffixes:
            raise UsageError(f"{self.name} runs {', '.join(self.suffixes)} files, not {self.path.name}; "
                             f"choose the runtime of its suffix")
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such file")
        worker = self.shared_worker or ArmWorker()
        try:
            worker.load(self.worker_runtime, self.path, threads=self.threads)
        except BaseException:
            if worker is not self.shared_worker:
                worker.close()
            raise
        self.worker = worker

    def _deactivate(self) -> None:
        if self.worker is not None and self.worker is not self.shared_worker:
            self.worker.close()
        self.worker = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.worker.infer(x)[0], dtype=np.float32)

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out, dtype=np.float32) for out in self.worker.infer(x)]

    def input_metadata(self) -> InputMetadata | None:
        """The artifact's first input as the aarch64 runtime reports it."""
        if self.worker is None or not self.worker.input:
            return None
        shape, dtype = self.worker.input
        return static_dims([d if d is not None else -1 for d in shape]), dtype

    def info(self) -> dict:
        details = dict(self.worker.info) if self.worker is not None else {}
        environment = self.worker.environment if self.worker is not None else None
        return {"runtime": self.runtime, "arch": "aarch64", "emulated": True,
                "emulated_cpu": environment.cpu if environment else None, **details}


@dataclass(frozen=True)
class ArmBuild:
    """One emulated ARM runtime: a row of ``ARM_BUILDS``, made into a registered ``ArmEmulatedRunner``.

    Attributes:
        name: the runtime's name (``--runtime``).
        alias: its other name.
        native: the x86 runner of the same artifacts.
        worker_runtime: what the worker loads (``worker.py``).
        title: the name in help texts and reports.
        summary: the class docstring: what runs.
        stands_in_for_native: see ``ArmEmulatedRunner.stands_in_for_native``.
    """

    name: str
    alias: str
    native: type[Runner]
    worker_runtime: str
    title: str
    summary: str
    stands_in_for_native: bool = True


ARM_BUILDS = (
    ArmBuild("ort-arm64", "onnxruntime-arm64", OnnxRuntimeRunner, "ort", "ONNX Runtime (arm64, emulated)",
             "ONNX Runtime's aarch64 build, CPU execution provider (MLAS's ARM kernels), emulated."),
    ArmBuild("litert-arm64", "tflite-arm64", LiteRTRunner, "litert", "LiteRT (arm64, emulated)",
             "LiteRT's aarch64 interpreter with its default XNNPACK delegate, emulated (as the x86 runner runs it)."),
    ArmBuild("litert-arm64-fp16", "tflite-arm64-fp16", LiteRTRunner, "litert-fp16",
             "LiteRT XNNPACK fp16 (arm64, emulated)",
             "LiteRT's aarch64 CompiledModel on XNNPACK with FORCE_FP16: float32 operators in fp16 arithmetic, as an "
             "app that sets ``CpuOptions.xnnpack_flags`` gets on an ARMv8.2+ phone. Fixed input shape.",
             stands_in_for_native=False),
    ArmBuild("executorch-arm64", "et-arm64", ExecuTorchRunner, "executorch", "ExecuTorch (arm64, emulated)",
             "ExecuTorch's aarch64 C++ runtime (XNNPACK delegate, optimized and quantized kernels), emulated. Needs "
             "``python -m lsnet_deploy.arm.setup --with-executorch`` (the Python bindings cannot run there)."),
)


def _runner_class(build: ArmBuild) -> type[ArmEmulatedRunner]:
    """The registered runner class of one row of ``ARM_BUILDS``."""
    attributes = {"name": build.name, "aliases": (build.alias,), "suffixes": build.native.suffixes,
                  "extra": build.native.extra, "title": build.title, "native": build.native,
                  "worker_runtime": build.worker_runtime, "stands_in_for_native": build.stands_in_for_native,
                  "__doc__": build.summary, "__module__": __name__}
    class_name = "".join(part.capitalize() for part in build.name.split("-")) + "Runner"
    return register_runtime(type(class_name, (ArmEmulatedRunner,), attributes))


#: runtime name -> its runner class, in ``ARM_BUILDS``' order
ARM_RUNNERS: dict[str, type[ArmEmulatedRunner]] = {build.name: _runner_class(build) for build in ARM_BUILDS}


#: the precisions an export can have (``ExportOptions.precision``)
PRECISIONS = ("float32", "float16", "int8")


def arm_runtime_for(runtime: str, precision: str = "float32") -> str | None:
    """The emulated ARM runtime that runs what ``runtime`` runs with the kernels a phone's app gets by
    default (``ort`` -> ``ort-arm64``, ``litert`` -> ``litert-arm64``, ``executorch`` -> ``executorch-arm64``),
    or None where there is none (``coreml``, ``tensorrt``...).

    The precision does not change the choice today: a ``--half`` ``.tflite`` maps to ``litert-arm64`` (the
    default XNNPACK delegate, which dequantizes its float16 weights and computes in float32 on ARM too), not
    to ``litert-arm64-fp16`` (XNNPACK's FORCE_FP16, an app's opt-in that refuses LSNet's attention products
    of two activations: docs/arm.md). ``.onnx`` and ``.pte`` float16 artifacts compute in fp16 on ARM by
    themselves. It is an argument so that a precision-specific runner can be chosen here, in one place.

    Args:
        runtime: a runtime name or alias.
        precision: the artifact's precision, ``float32``, ``float16`` or ``int8``.

    Raises:
        UsageError: unknown runtime or precision.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    name = canonical_runtime(runtime)
    for cls in ARM_RUNNERS.values():
        if cls.stands_in_for_native and cls.native.name == name:
            return cls.name
    return None


def arm_kernels_description() -> str:
    """One line naming the kernels an ARM gate ran on, for the export record: ``arm64 cortex-a76 (qemu)``."""
    return f"arm64 {arm_environment.CPU} (qemu)"


def require_arm_runtime(runtime: str, precision: str = "float32") -> str:
    """``arm_runtime_for``, checked: the ARM runtime's name, once its emulated environment is there.

    Raises:
        UsageError: no ARM build of ``runtime``, no emulator, or no cached environment (for ``.pte``: no
            ExecuTorch step), in one line naming ``python -m lsnet_deploy.arm.setup``.
    """
    arm = arm_runtime_for(runtime, precision)
    if arm is None:
        choices = sorted({cls.native.name for cls in ARM_RUNNERS.values() if cls.stands_in_for_native})
        raise UsageError(f"{runtime} has no ARM build to validate on; --validate-on arm works for the "
                         f"{', '.join(choices)} runtimes' formats (use --validate-on host)")
    try:
        environment = arm_environment.find_environment()  # looked up here: tests stand in for it
    except RuntimeUnavailableError as exc:
        raise UsageError(f"--validate-on arm needs the emulated arm64 environment: {exc}") from None
    if ARM_RUNNERS[arm].worker_runtime == "executorch" and environment.pte_library is None:
        raise UsageError(f"{arm} needs the ExecuTorch step of the arm64 environment: "
                         f"`{arm_environment.SETUP_COMMAND} --with-executorch`")
    return arm

