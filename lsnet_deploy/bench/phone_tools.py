"""The runtimes' own benchmark tools on a phone: which tool runs which artifact, where the user's copy is,
whether it can run on the device, and its command line.

=================  =========================  =============================================================
artifact           tool                       accelerator (``--provider``)
=================  =========================  =============================================================
``.tflite``        ``benchmark_model``        ``xnnpack`` (default), ``cpu`` (no XNNPACK), ``gpu``,
                                              ``nnapi``, ``npu`` (the CompiledModel build)
``.pte``           ``executor_runner``        compiled into the program at export (XNNPACK, QNN ...)
                   (or ``tools/pte_runner``)
``.onnx``/``.ort`` ``onnxruntime_perf_test``  ``-e cpu`` (default), ``xnnpack``, ``nnapi``, ``qnn`` ...
=================  =========================  =============================================================

The user points at the tools (``--device-tool NAME=PATH``, or a folder holding them under their usual
names). A tool is checked before it is pushed: an ELF binary must be built for the device's ABI (its
``e_machine`` against ``ro.product.cpu.abi`` or ``uname -m``); a script (``#!``) is accepted as it is (a
wrapper that sets ``LD_LIBRARY_PATH`` for an NPU's libraries is one); anything else is refused.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..runtimes import file_suffix
from .phone_device import elf_machine

#: artifact suffix -> the tool that benchmarks it
TOOL_FOR_SUFFIX = {".tflite": "benchmark_model", ".pte": "executor_runner", ".onnx": "onnxruntime_perf_test",
                   ".ort": "onnxruntime_perf_test", ".qnn.onnx": "onnxruntime_perf_test"}
#: tool -> file names it goes by in a folder (prebuilt LiteRT binaries carry the platform in the name)
TOOL_FILE_NAMES = {
    "benchmark_model": ("benchmark_model", "android_aarch64_benchmark_model", "android_arm_benchmark_model",
                        "linux_aarch64_benchmark_model", "linux_x86-64_benchmark_model", "benchmark_model_plus_flex"),
    "executor_runner": ("executor_runner", "pte_runner", "xnn_executor_runner"),
    "onnxruntime_perf_test": ("onnxruntime_perf_test",),
}
TOOL_ALIASES = {"pte_runner": "executor_runner", "xnn_executor_runner": "executor_runner",
                "tflite": "benchmark_model", "litert": "benchmark_model", "executorch": "executor_runner",
                "ort": "onnxruntime_perf_test", "onnxruntime": "onnxruntime_perf_test"}
#: runtime name recorded for each tool (the same names local runs record)
TOOL_RUNTIME = {"benchmark_model": "litert", "executor_runner": "executorch", "onnxruntime_perf_test": "ort"}

#: benchmark_model accelerators -> flags (XNNPACK is its default CPU path)
LITERT_PROVIDERS = {
    "xnnpack": ["--use_xnnpack=true"],
    "cpu": ["--use_xnnpack=false"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
    "npu": ["--use_npu=true"],
}
ORT_PROVIDERS = ("cpu", "xnnpack", "nnapi", "qnn", "snpe", "coreml", "webgpu")
#: what a provider runs on, recorded as the result's ``device``
PROVIDER_DEVICE = {"gpu": "gpu", "nnapi": "npu", "npu": "npu", "qnn": "npu", "snpe": "npu"}
SHEBANG = b"#!"


@dataclass
class DeviceTool:
    """A benchmark tool here, checked, and what it supports.

    Attributes:
        name: the tool (``benchmark_model`` ...).
        path: the file here.
        kind: ``elf`` or ``script``.
        machine: the ELF machine (``aarch64``), None for a script.
        help_text: what ``TOOL --help`` printed on the device (read once, to learn optional flags).
    """

    name: str
    path: Path
    kind: str
    machine: str | None = None
    help_text: str = ""
    notes: list[str] = field(default_factory=list)

    def supports(self, flag: str) -> bool:
        """Whether the tool's help mentions ``flag`` (a short flag such as ``-s`` as a word of its own)."""
        if flag.startswith("-") and not flag.startswith("--"):
            return re.search(rf"(?<![\w-]){re.escape(flag)}\b", self.help_text) is not None
        return flag in self.help_text


def canonical_tool(name: str) -> str:
    """``pte_runner`` -> ``executor_runner``; raises UsageError for unknown names."""
    name = TOOL_ALIASES.get(name, name)
    if name not in TOOL_FILE_NAMES:
        raise UsageError(f"--device-tool {name!r}: the tools are {', '.join(TOOL_FILE_NAMES)}")
    return name


def parse_tool_options(values: list[str] | None) -> dict[str, Path]:
    """``--device-tool NAME=PATH`` and ``--device-tool FOLDER`` values -> {tool: file}.

    A folder contributes each tool it holds under one of its usual names; NAME=PATH always wins.

    Raises:
        UsageError: a path that does not exist, a folder holding none of the tools, or an unknown NAME.
    """
    tools: dict[str, Path] = {}
    explicit: dict[str, Path] = {}
    for value in values or []:
        name, sep, path_text = value.partition("=")
        if sep and name and "/" not in name:
            path = Path(path_text).expanduser()
            tool = canonical_tool(name.strip())
            if not path.is_file():
                raise UsageError(f"--device-tool {value}: {path} is not a file")
            explicit[tool] = path
            continue
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--device-tool {value}: not a folder, and not NAME=PATH (e.g. benchmark_model=./bin/"
                             "benchmark_model)")
        found = {tool: folder / n for tool, names in TOOL_FILE_NAMES.items() for n in reversed(names)
                 if (folder / n).is_file()}
        if not found:
            raise UsageError(f"--device-tool {folder}: it holds none of "
                             f"{', '.join(n for names in TOOL_FILE_NAMES.values() for n in names)}")
        tools.update(found)
    tools.update(explicit)
    return tools


def tool_for(path: Path) -> str:
    """The tool that benchmarks an artifact, by its suffix.

    Raises:
        UsageError: an artifact no phone tool runs (``.mlpackage``, ``.engine`` ...).
    """
    suffix = file_suffix(path)
    tool = TOOL_FOR_SUFFIX.get(suffix) or TOOL_FOR_SUFFIX.get(path.suffix)
    if tool is None:
        raise UsageError(f"{path.name}: no phone benchmark tool runs {suffix} files; phones run "
                         f"{', '.join(sorted(set(TOOL_FOR_SUFFIX)))}")
    return tool


def check_tool(name: str, path: Path, abi: str | None, runs_on: set[str] | None) -> DeviceTool:
    """Check that a tool file can run on the device before it is pushed.

    Args:
        name: the tool.
        path: its file here.
        abi: the device's ABI, for messages (``arm64-v8a``).
        runs_on: the ELF machines the device runs (``phone_device.runnable_machines``; None: unknown).


    Raises:
        UsageError: not an executable (neither ELF nor a ``#!`` script), or an ELF built for another
            architecture.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
    except OSError as exc:
        raise UsageError(f"--device-tool {name}: cannot read {path}: {exc.strerror}") from None
    machine = elf_machine(header)
    if machine is None:
        if header.startswith(SHEBANG):
            return DeviceTool(name, path, "script", notes=[f"{name} is a script: its architecture was not checked"])
        raise UsageError(f"--device-tool {name}: {path} is not an executable (neither an ELF binary nor a #! script)")
    if runs_on is not None and machine not in runs_on:
        raise UsageError(f"--device-tool {name}: {path.name} is built for {machine}, but the device is {abi} (it runs "
                         f"{', '.join(sorted(runs_on))}); use a {abi} build of {name}")
    tool = DeviceTool(name, path, "elf", machine)
    if runs_on is None:
        tool.notes.append(f"device ABI {abi!r} unknown: {name}'s architecture ({machine}) was not checked")
    return tool


def provider_flags(tool: str, provider: str | None) -> tuple[list[str], str | None]:
    """(tool flags, provider recorded) for ``--provider`` on ``tool``.

    Raises:
        UsageError: a provider the tool does not have.
    """
    if tool == "benchmark_model":
        chosen = (provider or "xnnpack").lower()
        if chosen not in LITERT_PROVIDERS:
            raise UsageError(f"--provider {provider!r}: benchmark_model runs on {', '.join(LITERT_PROVIDERS)}")
        return list(LITERT_PROVIDERS[chosen]), chosen
    if tool == "onnxruntime_perf_test":
        chosen = (provider or "cpu").lower().replace("executionprovider", "")
        if chosen not in ORT_PROVIDERS:
            raise UsageError(f"--provider {provider!r}: onnxruntime_perf_test's -e takes {', '.join(ORT_PROVIDERS)}")
        return ["-e", chosen], chosen
    if provider and provider.lower() not in ("xnnpack", "cpu"):
        raise UsageError(f"--provider {provider!r}: an ExecuTorch program's delegate is chosen when it is exported, "
                         "not when it runs; export the .pte for that backend")
    return [], None


def tool_command(tool: DeviceTool, tool_path: str, model_path: str, *, threads: int, warmup: int, iters: int,
                 provider_args: list[str], result_path: str | None, extra: list[str]) -> list[str]:
    """The argument list that runs ``tool`` on the device for one round.

    ``benchmark_model`` gets exact counts (``--num_runs`` with ``--min_secs=0``, ``--warmup_runs`` with
    ``--warmup_min_secs=0``); ``executor_runner`` runs ``warmup + iters`` executions, the first
    ``warmup`` of which the parser leaves out; ``onnxruntime_perf_test`` runs ``-r iters`` after its own
    single warm-up inference.
    """
    if tool.name == "benchmark_model":
        argv = [tool_path, f"--graph={model_path}", f"--num_threads={threads}", f"--num_runs={iters}", "--min_secs=0",
                f"--warmup_runs={warmup}", "--warmup_min_secs=0", *provider_args]
        if result_path and tool.supports("result_file_path"):
            argv.append(f"--result_file_path={result_path}")
    elif tool.name == "executor_runner":
        argv = [tool_path, f"--model_path={model_path}", f"--num_executions={warmup + iters}",
                f"--cpu_threads={threads}"]
    else:
        argv = [tool_path, *provider_args, "-x", str(threads), "-m", "times", "-r", str(iters), "-I"]
        if tool.supports("-s"):
            argv.append("-s")
        argv += [*extra, model_path]
        return argv
    return argv + list(extra)


def quoted(argv: list[str]) -> str:
    """``argv`` as one shell command line for the device."""
    return shlex.join(argv)


__all__ = ["DeviceTool", "TOOL_FOR_SUFFIX", "TOOL_RUNTIME", "PROVIDER_DEVICE", "canonical_tool", "check_tool",
           "parse_tool_options", "provider_flags", "tool_command", "tool_for"]
