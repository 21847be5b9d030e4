"""``lsnet-bench --adb``: artifacts timed on a phone by the runtimes' own benchmark tools.

The protocol, each step an option (``PhoneOptions``) with a default fit for phones:

1. pin to cores (``--cores big``: every cluster but the slowest, from ``related_cpus``), threads = the
   cores pinned unless ``--threads``;
2. before each round, wait until the hottest SoC thermal zone is below ``--cool-below`` °C (up to
   ``--cool-timeout`` s; a timeout is recorded, not fatal);
3. each tool invocation warms up (``--warmup`` iterations) then times ``--iters`` iterations;
4. candidates are interleaved by rounds (A B C, A B C, ... ``--rounds`` times) so a device that heats
   up or throttles moves them all alike;
5. a round whose coefficient of variation exceeds ``--max-cv`` is flagged, and throttling events
   (Android thermal status above none, a CPU cluster capped below its maximum) are recorded.

Every result carries the device record (``phone``): properties, clusters, the cores and threads used,
and the thermal/battery state before and after the group. Per-iteration tools (``executor_runner``,
``tools/pte_runner``) give full statistics over every timed iteration; ``benchmark_model`` and
``onnxruntime_perf_test`` print summaries, which are combined exactly across rounds (count-weighted
mean, pooled standard deviation, overall min/max) and left None where they cannot be (``p90_ms`` of
``benchmark_model``): ``stats.method`` says which.

Nothing is left behind on the device except the content-addressed cache: each run works in its own
folder, which is removed at the end, on errors and on Ctrl-C (the running tool is stopped first).
"""

from __future__ import annotations

import math
import shlex
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..version import __version__
from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError
from ..runtimes import runner_for
from .adb import AdbDevice, AdbTransport, CommandTimeout, DeviceFiles, choose_device, list_devices
from .harness import artifact_metadata, declared_input
from .phone_device import (STATE_SCRIPT, STATIC_SCRIPT, CoreChoice, choose_cores, device_abi, parse_state,
                           parse_static, runnable_machines)
from .phone_parsers import ToolOutputError, ToolRun, parse_benchmark_result, parse_tool_output
from .phone_tools import (PROVIDER_DEVICE, TOOL_RUNTIME, DeviceTool, check_tool, provider_flags, quoted,
                          tool_command, tool_for)
from .plan import BenchPlan, CandidateSpec
from .provenance import artifact_size, file_sha256, now_utc
from .results import SCHEMA
from .stats import ratio, summarize
from .targets import RemoteTarget, Target

Progress = Callable[[str], None]

DEFAULT_ROUNDS = 5
DEFAULT_ITERS = 20
DEFAULT_WARMUP = 5
DEFAULT_COOL_BELOW_C = 40.0
DEFAULT_COOL_TIMEOUT_S = 300.0
COOL_POLL_S = 5.0
DEFAULT_MAX_CV = 0.10
DEFAULT_TOOL_TIMEOUT_S = 600.0
#: the longest ``TOOL --help`` may take (it only tells which optional flags the build has)
HELP_TIMEOUT_S = 10
#: a tool's exit status above this is 128 + the signal that killed it
SIGNALS = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


def _quiet(_: str) -> None:
    pass


@dataclass
class PhoneOptions:
    """How a phone run is done (each field is a ``lsnet-bench`` option).

    Attributes:
        serial: ``--adb SERIAL`` (None: the only attached device).
        tools: ``--device-tool``: tool name -> file here.
        device_dir: ``--device-dir`` (None: ``/data/local/tmp/lsnet-bench``, ``/tmp/lsnet-bench`` on Linux).
        cores: ``--cores big|little|all|MASK``.
        rounds: ``--rounds``: tool invocations per candidate, interleaved.
        iters: timed iterations per invocation (``--iters``).
        warmup: warm-up iterations per invocation (``--warmup``).
        cool_below_c: ``--cool-below``: wait before each round until the SoC is this cool (0: no wait).
        cool_timeout_s: ``--cool-timeout``: the longest wait.
        interleave: ``--no-interleave`` runs every round of A, then of B.
        max_cv: ``--max-cv``: a round whose std/mean exceeds this is flagged.
        tool_args: ``--tool-arg``: extra arguments for every tool invocation.
        device_env: ``--device-env KEY=VALUE``: environment of the tool (``LD_LIBRARY_PATH`` for NPUs).
        tool_timeout_s: the longest one invocation may run.
    """

    serial: str | None = None
    tools: dict[str, Path] = field(default_factory=dict)
    device_dir: str | None = None
    cores: str = "big"
    rounds: int = DEFAULT_ROUNDS
    iters: int = DEFAULT_ITERS
    warmup: int = DEFAULT_WARMUP
    cool_below_c: float = DEFAULT_COOL_BELOW_C
    cool_timeout_s: float = DEFAULT_COOL_TIMEOUT_S
    interleave: bool = True
    max_cv: float = DEFAULT_MAX_CV
    tool_args: list[str] = field(default_factory=list)
    device_env: list[str] = field(default_factory=list)
    tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def __post_init__(self):
        if self.rounds < 1 or self.iters < 1 or self.warmup < 0:
            raise UsageError("--rounds and --iters must be at least 1, --warmup at least 0")
        if self.max_cv <= 0:
            raise UsageError(f"--max-cv must be positive, got {self.max_cv}")
        if self.cool_timeout_s < 0:
            raise UsageError(f"--cool-timeout cannot be negative, got {self.cool_timeout_s}")
        for item in self.device_env:
            key, sep, _ = item.partition("=")
            if not sep or not key.replace("_", "").isalnum() or key[0].isdigit():
                raise UsageError(f"--device-env {item!r}: use KEY=VALUE, e.g. LD_LIBRARY_PATH=/data/local/tmp/qnn")

    def settings(self) -> dict:
        """Recorded with every result."""
        return {"rounds": self.rounds, "iters_per_round": self.iters, "warmup_per_round": self.warmup,
                "cores": self.cores, "cool_below_c": self.cool_below_c, "cool_timeout_s": self.cool_timeout_s,
                "interleave": self.interleave, "max_cv": self.max_cv, "tool_args": list(self.tool_args),
                "device_env": list(self.device_env)}


def connect(serial: str | None) -> AdbDevice:
    """The device for ``--adb [SERIAL]`` (see ``adb.choose_device`` for the refusals)."""
    return AdbDevice(choose_device(serial, list_devices()).serial)


def read_static(device: AdbDevice) -> dict:
    """The device description (``phone_device.parse_static``) with its serial."""
    static = parse_static(device.check(STATIC_SCRIPT, "reading the device description"))
    static["serial"] = device.serial
    return static


def read_state(device: AdbDevice) -> dict:
    """The thermal, frequency and battery state now (``phone_device.parse_state``) with the time."""
    state = parse_state(device.check(STATE_SCRIPT, "reading the thermal state"))
    state["time"] = now_utc()
    return state


def throttling_events(state: dict, static: dict, when: str) -> list[dict]:
    """Throttling visible in one state: Android's thermal status above none, and clusters capped below
    their hardware maximum (``scaling_max_freq`` < ``cpuinfo_max_freq``)."""
    events = []
    if state.get("thermal_status"):
        events.append({"when": when, "kind": "thermal_status", "status": state["thermal_status"],
                       "status_name": state.get("thermal_status_name")})
    hardware = {c["policy"]: c.get("cpuinfo_max_khz") for c in static.get("clusters") or []}
    for policy, cap in (state.get("cpu_max_khz") or {}).items():
        top = hardware.get(policy)
        if cap and top and cap < top:
            events.append({"when": when, "kind": "frequency_cap", "policy": policy, "max_khz": cap,
                           "hardware_max_khz": top})
    return events


def combine_rounds(runs: list[ToolRun], batch: int) -> dict:
    """Statistics of one candidate over its rounds.

    Per-iteration output: the usual statistics over every timed iteration. Summaries: the count-weighted
    mean, the pooled standard deviation (within and between rounds), the overall min and max, the
    median/p90/p99 as the median of the rounds' own (None where the tool does not print them).
    """
    if all(r.samples_ms for r in runs):
        samples = [s / 1e3 for r in runs for s in r.samples_ms]
        stats = summarize(samples, batch=batch).to_dict()
        stats["method"] = "per_iteration"
        return stats
    counts = [r.count or 1 for r in runs]
    total = sum(counts)
    mean = sum(c * r.mean_ms for c, r in zip(counts, runs)) / total
    variance = None
    if all(r.std_ms is not None for r in runs):
        variance = sum(c * (r.std_ms ** 2 + (r.mean_ms - mean) ** 2) for c, r in zip(counts, runs)) / total

    def median_of(name: str) -> float | None:
        values = [getattr(r, name) for r in runs]
        return round(statistics.median(values), 6) if all(v is not None for v in values) else None

    mins = [r.min_ms for r in runs if r.min_ms is not None]
    maxes = [r.max_ms for r in runs if r.max_ms is not None]
    return {"n": total, "median_ms": median_of("median_ms"), "mean_ms": round(mean, 6),
            "p90_ms": median_of("p90_ms"), "p99_ms": median_of("p99_ms"),
            "min_ms": round(min(mins), 6) if len(mins) == len(runs) else None,
            "max_ms": round(max(maxes), 6) if len(maxes) == len(runs) else None,
            "std_ms": round(math.sqrt(variance), 6) if variance is not None else None,
            "total_s": round(total * mean / 1e3, 6), "throughput": round(batch * 1e3 / mean, 6) if mean > 0 else None,
            "method": "tool_summary"}


def round_summary(index: int, run: ToolRun, max_cv: float, temp_c: float | None) -> dict:
    """One round of one candidate: its time, spread and whether the spread is high."""
    cv = run.std_ms / run.mean_ms if run.std_ms is not None and run.mean_ms else None
    summary = {"round": index, "mean_ms": round(run.mean_ms, 6), "count": run.count,
               "median_ms": round(run.median_ms, 6) if run.median_ms is not None else None,
               "std_ms": round(run.std_ms, 6) if run.std_ms is not None else None,
               "cv": round(cv, 4) if cv is not None else None, "high_spread": cv is not None and cv > max_cv,
               "soc_temp_c_before": temp_c}
    return summary


@dataclass
class PhoneCandidate:
    """A candidate ready to run on the device."""

    spec: CandidateSpec
    path: Path
    tool: DeviceTool
    provider_args: list[str]
    provider: str | None
    device_model: str = ""
    device_tool: str = ""
    sha256: str = ""
    input_shape: list[int] | None = None
    input_dtype: str | None = None
    metadata: dict | None = None
    notes: list[str] = field(default_factory=list)
    runs: list[ToolRun] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def local_input(path: Path, runtime: str) -> tuple[list[int] | None, str | None, dict | None, str | None]:
    """(input shape, dtype, metadata, note) of an artifact read here, where its runtime is installed; the
    tools on the phone do not say which shape they fed."""
    if runtime == "executorch":  # loading ExecuTorch here costs seconds; tools/pte_runner prints the shape
        return None, None, None, None
    try:
        runner = runner_for(path, runtime)
        runner.activate()
    except Exception as exc:  # the runtime may not be installed here: the shape is then unknown
        return None, None, None, f"input shape not read here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    try:
        metadata, _ = artifact_metadata(runner, path)
        declared = declared_input(runner)
    finally:
        runner.deactivate()
    if not declared or any(not isinstance(d, int) for d in declared[0]):
        return (list(declared[0]) if declared else None), (declared[1] if declared else None), metadata, \
            "the artifact's input shape is not fully fixed; the tool chose the free dimensions"
    return list(declared[0]), declared[1], metadata, None


class PhoneTarget(Target):
    """Runs a plan's artifacts on an adb device with the runtimes' own benchmark tools."""

    def __init__(self, options: PhoneOptions):
        self.options = options
        self.name = "adb"

    # ---------------------------------------------------------------------------------------------- setup
    def _candidates(self, plan: BenchPlan, abi: str | None, runs_on: set[str] | None) -> list[PhoneCandidate]:
        tools: dict[str, DeviceTool] = {}
        items = []
        for spec in plan.candidates:
            if spec.is_model:
                raise UsageError(f"{spec.label}: phones run exported artifacts; export it first (lsnet-export) and "
                                 "pass the file")
            path = Path(spec.path)
            name = tool_for(path)
            if name not in self.options.tools:
                raise UsageError(f"{path.name} needs {name} on the device: pass --device-tool {name}=PATH (a build for "
                                 f"the phone's ABI{', ' + abi if abi else ''}; see docs/phone_bench.md)")
            if name not in tools:
                tools[name] = check_tool(name, self.options.tools[name], abi, runs_on)
            args, provider = provider_flags(name, spec.provider)
            items.append(PhoneCandidate(spec, path, tools[name], args, provider))
        return items

    def _prepare(self, device: AdbDevice, files: DeviceFiles, items: list[PhoneCandidate], progress: Progress) -> None:
        tool_paths: dict[Path, str] = {}                       # tool here -> its path on the device
        inputs: dict[Path, tuple] = {}                         # artifact -> what local_input read
        for item in items:
            tool = item.tool
            item.sha256 = file_sha256(item.path)
            if tool.path not in tool_paths:
                remote_name = f"{file_sha256(tool.path)}-{tool.name}"
                if remote_name not in files.present():
                    progress(f"copying {tool.path.name} to {device.describe()}")
                tool_paths[tool.path] = files.ensure(tool.path, remote_name, executable=True)
                tool.help_text = self._help(device, tool_paths[tool.path], tool)
            item.device_tool = tool_paths[tool.path]
            model_name = f"{item.sha256}{item.path.suffix}"
            if model_name not in files.present():
                progress(f"copying {item.path.name} to {device.describe()}")
            item.device_model = files.ensure(item.path, model_name)
            if item.path not in inputs:
                inputs[item.path] = local_input(item.path, TOOL_RUNTIME[tool.name])
            shape, dtype, metadata, note = inputs[item.path]
            item.input_shape, item.input_dtype, item.metadata = shape, dtype, metadata
            if note:
                item.notes.append(note)
            item.notes.extend(tool.notes)

    @staticmethod
    def _help(device: AdbDevice, remote: str, tool: DeviceTool) -> str:
        """What ``TOOL --help`` prints (to learn which optional flags this build has), bounded in time."""
        exe = shlex.quote(remote)
        command = (f"if command -v timeout >/dev/null 2>&1; then timeout {HELP_TIMEOUT_S} {exe} --help; "
                   f"else {exe} --help; fi 2>&1")
        try:
            return device.shell(command, timeout=HELP_TIMEOUT_S + 10).stdout
        except CommandTimeout:
            tool.notes.append(f"{tool.name} --help did not answer within {HELP_TIMEOUT_S} s: optional flags not used")
            return ""

    # ------------------------------------------------------------------------------------------ measuring
    def _invoke(self, device: AdbDevice, item: PhoneCandidate, run_dir: str, cores: CoreChoice | None,
                threads: int, round_index: int) -> ToolRun:
        result_path = f"{run_dir}/result-{item.sha256[:12]}-{round_index}.pb"
        argv = tool_command(item.tool, item.device_tool, item.device_model, threads=threads,
                            warmup=self.options.warmup, iters=self.options.iters, provider_args=item.provider_args,
                            result_path=result_path, extra=self.options.tool_args)
        prefix = (["env", *self.options.device_env] if self.options.device_env else []) + \
                 (["taskset", cores.mask] if cores is not None else [])
        item.command = prefix + argv
        inner = f"echo $$ > {shlex.quote(run_dir + '/pid')}; exec {quoted(item.command)}"
        command = f"cd {shlex.quote(run_dir)} && sh -c {shlex.quote(inner)} 2>&1"
        label, tool = item.spec.label, item.tool.name
        try:
            result = device.shell(command, timeout=self.options.tool_timeout_s)
        except CommandTimeout:
            raise CommandTimeout(f"{label}: {tool} ran longer than {self.options.tool_timeout_s:g} s on "
                                 f"{device.describe()} and was stopped") from None
        text = result.output
        if result.returncode != 0:
            code = result.returncode
            if code > 128:
                how = f"crashed ({SIGNALS.get(code - 128, f'signal {code - 128}')})"
            else:
                how = f"exited with {code}"
            last = (text.strip().splitlines() or ["no output"])[-1][:200]
            if code in (126, 127):  # the shell's "cannot execute" and "not found"
                how = "could not be started"
            raise LsnetDeployError(f"{label}: {tool} {how} on {device.describe()}: {last}")
        try:
            run = parse_tool_output(tool, text, warmup=self.options.warmup)
        except ToolOutputError as exc:
            last = (text.strip().splitlines() or ["no output at all"])[-1][:200]
            raise LsnetDeployError(f"{label}: {tool} printed nothing lsnet-bench can read ({exc}); its last line: "
                                   f"{last}") from None
        if tool == "benchmark_model" and item.tool.supports("result_file_path"):
            proto = self._read_result(device, result_path)
            if proto is not None:
                proto.delegations, proto.delegation_notes = run.delegations, run.delegation_notes
                proto.count = proto.count or run.count
                run = proto
        return run

    @staticmethod
    def _read_result(device: AdbDevice, remote: str) -> ToolRun | None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lsnet-bench-pb-") as tmp:
            local = Path(tmp) / "result.pb"
            try:
                device.pull(remote, local)
                return parse_benchmark_result(local.read_bytes())
            except (LsnetDeployError, ToolOutputError, OSError):
                return None  # the text output, already read, stands

    def _wait_cool(self, device: AdbDevice, static: dict, round_index: int, events: list[dict],
                   progress: Progress) -> float | None:
        limit = self.options.cool_below_c
        start = time.monotonic()
        when = f"before round {round_index}"
        while True:
            state = read_state(device)
            temp = state.get("soc_temp_c")
            waited = time.monotonic() - start
            done = temp is None or limit <= 0 or temp <= limit
            if not done and waited >= self.options.cool_timeout_s:
                events.append({"when": when, "kind": "cool_timeout", "soc_temp_c": temp, "zone": state.get("soc_zone"),
                               "waited_s": round(waited, 1)})
                done = True
            if done:  # the state the round starts from (polls while cooling are not events)
                events.extend(throttling_events(state, static, when))
                return temp
            progress(f"waiting for the SoC to cool: {temp:.1f} C > {limit:g} C ({state.get('soc_zone')})")
            time.sleep(min(COOL_POLL_S, max(self.options.cool_timeout_s - waited, 0.1)))

    def run(self, plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
        """Measure the plan's artifacts on the device (one group) and yield its records.

        Raises:
            UsageError: a model instead of an artifact, a missing or unfit tool, a bad --cores.
            RuntimeUnavailableError: no usable device, or no taskset there for pinning.
            LsnetDeployError: a push, a tool run or its output failed (the device is cleaned first).
        """
        options = self.options
        if plan.batches and len(plan.batches) > 1 or plan.imgsz:
            raise UsageError("--batch lists and --imgsz do not apply on a phone: the tools feed each artifact its own "
                             "input shape; export one artifact per shape")
        device = connect(options.serial)
        self.name = device.describe()
        static = read_static(device)
        abi = device_abi(static)
        items = self._candidates(plan, abi, runnable_machines(static))
        uses_taskset = options.cores.strip().lower() != "all"
        if uses_taskset and not static.get("taskset"):
            raise RuntimeUnavailableError(f"taskset is not on {device.describe()}, so --cores {options.cores} cannot "
                                          "pin the tools; pass --cores all to run unpinned")
        cores = choose_cores(options.cores, static.get("clusters"), static.get("online_cpus"))
        threads = plan.threads or len(cores.cpus)
        root = device.work_dir(options.device_dir)
        files = DeviceFiles(device, root)
        run_id = uuid.uuid4().hex[:12]
        run_dir = f"{root}/run-{run_id}"
        try:
            self._prepare(device, files, items, progress)
            device.check(f"mkdir -p {shlex.quote(run_dir)}", f"creating {run_dir}")
            records = self._measure(device, static, items, plan, cores if uses_taskset else None, cores, threads,
                                    run_id, run_dir, progress)
        finally:
            self._clean(device, run_dir)
        for item in items:
            del item.runs[:]
        yield records

    def _measure(self, device, static, items, plan, pin, cores, threads, run_id, run_dir, progress) -> list[dict]:
        options = self.options
        events: list[dict] = []
        before = read_state(device)
        events.extend(throttling_events(before, static, "before the group"))
        order = ([(r, i) for r in range(options.rounds) for i in range(len(items))] if options.interleave
                 else [(r, i) for i in range(len(items)) for r in range(options.rounds)])
        temps: dict[int, float | None] = {}
        for round_index, index in order:
            if round_index not in temps or not options.interleave:
                temps[round_index] = self._wait_cool(device, static, round_index, events, progress)
            item = items[index]
            progress(f"round {round_index + 1}/{options.rounds}: {item.spec.label} ({item.tool.name}, "
                     f"{options.warmup} warm-up + {options.iters} timed, {threads} threads"
                     f"{', cores ' + pin.mask if pin else ''})")
            run = self._invoke(device, item, run_dir, pin, threads, round_index)
            item.runs.append(run)
            item.rounds.append(round_summary(round_index, run, options.max_cv, temps[round_index]))
        after = read_state(device)
        events.extend(throttling_events(after, static, "after the group"))
        phone = {**static, "cores": cores.to_dict(), "pinned": pin is not None, "threads": threads,
                 "work_dir": run_dir.rsplit("/", 1)[0], "state_before": before, "state_after": after,
                 "throttling_events": events}
        return self._records(items, plan, phone, device, run_id)

    def _records(self, items: list[PhoneCandidate], plan: BenchPlan, phone: dict, device: AdbDevice,
                 run_id: str) -> list[dict]:
        labels = [i.spec.label for i in items]
        props = phone["properties"]
        soc = " ".join(filter(None, [props.get("soc_manufacturer"), props.get("soc_model")])) or \
            props.get("board_platform") or phone.get("arch") or "device"
        who = props.get("model") or device.serial
        time_now = now_utc()
        records = []
        for position, item in enumerate(items):
            printed = item.runs[-1].inputs
            if item.input_shape is None and printed:
                item.input_shape, item.input_dtype = printed[0]["shape"], printed[0]["dtype"]
            batch = int(item.input_shape[0]) if item.input_shape and isinstance(item.input_shape[0], int) else 1
            if not item.input_shape:
                item.notes.append("batch taken as 1 (neither the tool nor this machine could read the input shape)")
            stats = combine_rounds(item.runs, batch)
            flagged = [r["round"] for r in item.rounds if r["high_spread"]]
            notes = list(item.notes)
            if flagged:
                notes.append(f"high spread (std/mean > {self.options.max_cv:g}) in round(s) "
                             f"{', '.join(str(r + 1) for r in flagged)}")
            for d in item.runs[-1].delegations:
                if not d.complete:
                    notes.append(f"{d.delegate} took {d.nodes_delegated} of {d.nodes_total} nodes in {d.partitions} "
                                 "partitions: the rest run on the CPU fallback")
            if phone["throttling_events"]:
                notes.append(f"{len(phone['throttling_events'])} throttling event(s) recorded "
                             "(phone.throttling_events)")
            last = item.runs[-1]
            runtime = TOOL_RUNTIME[item.tool.name]
            record = {
                "schema": SCHEMA, "time": time_now, "run_id": run_id, "group": 0, "position": position,
                "label": item.spec.label, "model": item.spec.name or item.path.stem,
                "architecture": (item.metadata or {}).get("model"), "runtime": runtime, "runtime_version": None,
                "provider": item.provider, "device": PROVIDER_DEVICE.get(item.provider or "", "cpu"),
                "device_name": f"{soc} ({who})", "precision": (item.metadata or {}).get("precision") or "",
                "batch": batch, "input_shape": item.input_shape, "input_dtype": item.input_dtype,
                "output_shape": None, "threads": phone["threads"],
                "source": {"kind": "artifact", "path": str(item.path.resolve()), "file": item.path.name,
                           "format": item.path.suffix.lstrip("."), "sha256": item.sha256,
                           "size_bytes": artifact_size(item.path), "remote_path": item.device_model},
                "metadata": item.metadata,
                "runtime_info": {"runtime": runtime, "tool": item.tool.name, "tool_file": item.tool.path.name,
                                 "tool_sha256": item.device_tool.rsplit("/", 1)[-1].split("-", 1)[0],
                                 "tool_kind": item.tool.kind, "tool_machine": item.tool.machine,
                                 "command": item.command, "output_format": last.format,
                                 "init_ms": last.init_ms, "first_ms": last.first_ms,
                                 "memory_mb": last.memory_mb or None,
                                 "delegations": [vars(d) for d in last.delegations] or None,
                                 "delegation_notes": last.delegation_notes or None},
                "settings": {**plan.settings(), "phone": self.options.settings()},
                "stats": stats, "rounds": item.rounds,
                "interleaved_with": labels, "first_label": labels[0], "ratio_to_first": None, "notes": notes,
                "machine": {"hostname": who, "os": _os_name(phone), "arch": phone.get("arch")},
                "phone": phone, "target": device.describe(), "lsnet_deploy_version": __version__,
            }
            if plan.keep_samples and all(r.samples_ms for r in item.runs):
                record["samples_ms"] = [round(s, 6) for r in item.runs for s in r.samples_ms]
            records.append(record)
        first = records[0]["stats"]
        # medians where every candidate's tool printed one, else means for all: one statistic per group
        key = "median_ms" if all(r["stats"]["median_ms"] is not None for r in records) else "mean_ms"
        for record in records:
            value = ratio(record["stats"][key], first[key])
            record["ratio_to_first"] = round(value, 4) if value is not None else None
        return records

    @staticmethod
    def _clean(device: AdbDevice, run_dir: str) -> None:
        """Stop a tool still running in ``run_dir`` and remove the folder (also after Ctrl-C)."""
        pid = shlex.quote(run_dir + "/pid")
        try:
            device.shell(f"if [ -f {pid} ]; then p=$(cat {pid}); pkill -P $p 2>/dev/null; kill $p 2>/dev/null; fi; "
                         f"rm -rf {shlex.quote(run_dir)}", timeout=30)
        except (LsnetDeployError, OSError):
            pass  # the device went away; nothing more can be done from here


def _os_name(phone: dict) -> str | None:
    props = phone.get("properties") or {}
    if props.get("release"):
        return f"Android {props['release']} (SDK {props.get('sdk')})"
    return phone.get("kernel")


class AdbRemoteTarget(RemoteTarget):
    """The Python far end over ``adb shell`` (Linux devices with Python and lsnet-deploy), with the device
    record (``phone``) added to every result as phone runs have it."""

    def __init__(self, serial: str | None, python: str, cache_dir: str):
        device = connect(serial)
        super().__init__(AdbTransport(device.serial), python=python, cache_dir=cache_dir)
        self.device = device
        self.name = device.describe()

    def run(self, plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
        """``RemoteTarget.run`` with the device record read before and after each group."""
        static = read_static(self.device)
        before = read_state(self.device)
        for records in super().run(plan, progress):
            after = read_state(self.device)
            events = throttling_events(before, static, "before the group") + \
                throttling_events(after, static, "after the group")
            for record in records:
                record["phone"] = {**static, "state_before": before, "state_after": after,
                                   "throttling_events": events, "threads": record.get("threads"), "cores": None,
                                   "pinned": False}
            before = after
            yield records


__all__ = ["PhoneOptions", "PhoneTarget", "AdbRemoteTarget", "combine_rounds", "throttling_events", "connect",
           "read_static", "read_state"]
