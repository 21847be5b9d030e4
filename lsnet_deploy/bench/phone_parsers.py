"""Readers of the on-device benchmark tools' text output: LiteRT ``benchmark_model`` (Interpreter and
CompiledModel builds), ExecuTorch ``executor_runner`` (and ``tools/pte_runner``, which prints the same
lines) and ONNX Runtime ``onnxruntime_perf_test``.

Every reader takes the tool's whole output (stdout and stderr together) and returns a ``ToolRun``. Lines
may carry any prefix (``INFO: ``, ``I 00:00:05.83 executorch:executor_runner.cpp:564] ``, logcat's
``tflite  : ``), so patterns are searched, not anchored. Units are converted to milliseconds here, in one
place: ``benchmark_model``'s ``count=`` lines and ``Inference timings`` are in microseconds, its
``BENCHMARK RESULTS`` block in milliseconds, ONNX Runtime's percentiles in seconds.

A reader raises ``ToolOutputError`` when the output holds no timing it can use (a crash, a truncated run,
another tool's output), so nothing is ever invented from a partial text.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

US_PER_MS = 1000.0
MS_PER_S = 1000.0
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


class ToolOutputError(ValueError):
    """The tool's output holds no timing this reader can use."""


@dataclass
class Delegation:
    """One ``Replacing X out of Y node(s) with delegate (NAME) node, yielding K partitions`` line."""

    delegate: str
    nodes_delegated: int
    nodes_total: int
    partitions: int
    line: str

    @property
    def complete(self) -> bool:
        """Whether every node went to the delegate (otherwise some run on the CPU fallback)."""
        return self.nodes_delegated == self.nodes_total


@dataclass
class ToolRun:
    """What one run of a benchmark tool reported.

    Attributes:
        tool: ``benchmark_model``, ``executor_runner`` or ``onnxruntime_perf_test``.
        samples_ms: every timed iteration, in order, when the tool prints them (``executor_runner``);
            otherwise empty.
        count: timed iterations the summary covers.
        mean_ms, min_ms, max_ms, std_ms, median_ms, p5_ms, p90_ms, p95_ms, p99_ms: the tool's own
            statistics of the timed iterations (None where it does not print them).
        init_ms: model load / session creation. first_ms: the first inference. warmup_mean_ms: the mean
            of the warm-up phase.
        warmup_count: iterations in the warm-up phase, when printed.
        memory_mb: footprints the tool printed (``init``, ``overall``, ``peak``).
        delegations: the delegation lines, in order.
        inputs: ``[{"dtype": "float32", "shape": [1, 3, 224, 224]}]`` where the tool prints them
            (``tools/pte_runner``).
        delegation_notes: other lines saying how much of the graph a delegate took (``Explicitly applied
            GPU delegate, and the model graph will be completely executed by the delegate.``).
        format: which output form was read (``interpreter``, ``compiled_model``, ``logcat``, ...).
    """

    tool: str
    format: str
    count: int | None = None
    samples_ms: list[float] = field(default_factory=list)
    mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    median_ms: float | None = None
    p5_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_mean_ms: float | None = None
    warmup_count: int | None = None
    memory_mb: dict = field(default_factory=dict)
    delegations: list[Delegation] = field(default_factory=list)
    delegation_notes: list[str] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form (samples left out: the caller decides whether to keep them)."""
        data = asdict(self)
        data.pop("samples_ms")
        data = {k: round(v, 6) if isinstance(v, float) else v for k, v in data.items()}
        return {k: v for k, v in data.items() if v not in (None, {}, [])}


def _float(text: str) -> float:
    return float(text)


def _search(pattern: str, text: str, flags: int = 0):
    return re.search(pattern, text, flags)


_DELEGATION = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node, yielding (\d+) "
                         r"partitions?[^\n]*")


_DELEGATION_NOTE = re.compile(r"Explicitly applied [^\n]*delegate[^\n]*executed by the delegate[^\n]*")


def delegations(text: str) -> list[Delegation]:
    """Every delegation line of a LiteRT/TFLite log."""
    return [Delegation(delegate=m.group(3), nodes_delegated=int(m.group(1)), nodes_total=int(m.group(2)),
                       partitions=int(m.group(4)), line=m.group(0).strip())
            for m in _DELEGATION.finditer(text)]


# ---------------------------------------------------------------------------------------------------- LiteRT
_COUNT_LINE = re.compile(r"count=(\d+)([^\n]*)")
_KEY_VALUE = re.compile(rf"(\w+)=({NUMBER})")
_TIMINGS_US = re.compile(rf"Inference timings in us: Init: ({NUMBER}), First inference: ({NUMBER}), "
                         rf"Warmup \(avg\): ({NUMBER}|-?nan), Inference \(avg\): ({NUMBER})")
_RESULTS_MS = {
    "init_ms": rf"Model initialization:\s*({NUMBER}) ms",
    "first_ms": rf"Warmup \(first\):\s*({NUMBER}) ms",
    "warmup_mean_ms": rf"Warmup \(avg\):\s*({NUMBER}) ms",
    "mean_ms": rf"Inference \(avg\):\s*({NUMBER}) ms",
    "min_ms": rf"Inference \(min\):\s*({NUMBER}) ms",
    "max_ms": rf"Inference \(max\):\s*({NUMBER}) ms",
    "std_ms": rf"Inference \(std\):\s*({NUMBER})",
}


def _count_lines(text: str) -> list[dict]:
    """The ``count=`` lines, each as {field: value in µs (count as an int)}."""
    phases = []
    for match in _COUNT_LINE.finditer(text):
        values: dict = {"count": int(match.group(1))}
        for key, value in _KEY_VALUE.findall(match.group(2)):
            values[key] = float(value)
        phases.append(values)
    return phases


def _memory(text: str) -> dict:
    memory = {}
    for pattern in (rf"Memory footprint delta from the start of the tool \(MB\): init=({NUMBER}) overall=({NUMBER})",
                    rf"Peak memory footprint \(MB\): init=({NUMBER}) overall=({NUMBER})"):
        match = _search(pattern, text)
        if match:
            memory.update(init=float(match.group(1)), overall=float(match.group(2)))
    peak = _search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})", text)
    if peak:
        memory["peak"] = float(peak.group(1))
    for key, pattern in (("init", rf"Init footprint:\s*({NUMBER}) MB"),
                         ("overall", rf"Overall footprint:\s*({NUMBER}) MB")):
        match = _search(pattern, text)
        if match and key not in memory:
            memory[key] = float(match.group(1))
    return memory


def parse_benchmark_model(text: str) -> ToolRun:
    """Read LiteRT's ``benchmark_model`` output: the Interpreter build (old and new forms, with or without
    ``INFO:``, through logcat) and the CompiledModel build (its ``BENCHMARK RESULTS`` block in ms).

    The last ``count=`` line is the timed phase and the one before it the warm-up (``count=0`` when a
    phase did not run). Where a build prints only the ``Inference timings in us`` line, its average is
    all that is known.

    Raises:
        ToolOutputError: no inference average in the text.
    """
    phases = _count_lines(text)
    compiled = "BENCHMARK RESULTS" in text
    run = ToolRun(tool="benchmark_model", format="compiled_model" if compiled else "interpreter")
    if "tflite  :" in text:
        run.format = "logcat"
    timed = phases[-1] if phases else None
    if timed and timed["count"] > 0:
        run.count = timed["count"]
        for key, name in (("avg", "mean_ms"), ("min", "min_ms"), ("max", "max_ms"), ("std", "std_ms"),
                          ("median", "median_ms"), ("p5", "p5_ms"), ("p95", "p95_ms")):
            if key in timed:
                setattr(run, name, timed[key] / US_PER_MS)
        if run.count == 1 and "curr" in timed and run.mean_ms is None:  # `count=1 curr=X`: the single run
            run.mean_ms = run.min_ms = run.max_ms = run.median_ms = timed["curr"] / US_PER_MS
    if len(phases) >= 2:
        run.warmup_count = phases[-2]["count"]
    timings = _TIMINGS_US.search(text)
    if timings:
        run.init_ms = float(timings.group(1)) / US_PER_MS
        run.first_ms = float(timings.group(2)) / US_PER_MS
        warm = timings.group(3)
        run.warmup_mean_ms = None if "nan" in warm else float(warm) / US_PER_MS
        run.mean_ms = float(timings.group(4)) / US_PER_MS
    if compiled:
        for name, pattern in _RESULTS_MS.items():
            match = _search(pattern, text)
            if match and getattr(run, name) is None:
                setattr(run, name, float(match.group(1)))
        runs = _search(r"Inference \(avg\):[^\n]*\((\d+) runs\)", text)
        if runs and run.count is None:
            run.count = int(runs.group(1))
        warm = _search(r"Warmup \(avg\):[^\n]*\((\d+) runs\)", text)
        if warm:
            run.warmup_count = int(warm.group(1))
    if run.init_ms is None:
        init = _search(rf"Initialized session in ({NUMBER})ms", text)
        if init:
            run.init_ms = float(init.group(1))
    run.memory_mb = _memory(text)
    run.delegations = delegations(text)
    run.delegation_notes = [m.group(0).strip() for m in _DELEGATION_NOTE.finditer(text)]
    if run.mean_ms is None:
        raise ToolOutputError("no inference time in benchmark_model's output (no `count=` line of a timed phase "
                              "and no `Inference timings` or `BENCHMARK RESULTS` line)")
    return run


# ------------------------------------------------------------------------------------------------ ExecuTorch
_ITERATION = re.compile(rf"Iteration (\d+) of (\d+): ({NUMBER}) ms")
_EXECUTED = re.compile(rf"Model executed successfully(?: (\d+) time\(s\) in ({NUMBER}) ms)?\.")
_LOADED = re.compile(rf"Model loaded in ({NUMBER}) ms")
_INPUT = re.compile(r"Input (\d+): (\w+) \[([\d, ]*)\]")


def parse_executor_runner(text: str, warmup: int = 0) -> ToolRun:
    """Read ExecuTorch ``executor_runner`` (or ``pte_runner``) output.

    Current builds print one ``Iteration i of N: X ms`` line per execution: the first ``warmup`` of them
    are the warm-up and the rest are the samples. Older builds print only ``Model executed successfully
    N time(s) in X ms.``, the **total** of N executions (warm-up included): then the mean is all that is
    known. A build that prints ``Model executed successfully.`` without numbers has no timing at all.

    Args:
        text: the output.
        warmup: leading executions to leave out of the samples (the caller ran ``warmup + iters``).

    Raises:
        ToolOutputError: no timing in the text, or fewer iterations than ``warmup`` + 1.
    """
    run = ToolRun(tool="executor_runner", format="per_iteration")
    loaded = _LOADED.search(text)
    if loaded:
        run.init_ms = float(loaded.group(1))
    run.inputs = [{"dtype": dtype, "shape": [int(d) for d in dims.split(",") if d.strip()]}
                  for _, dtype, dims in _INPUT.findall(text)]
    iterations = [(int(i), int(n), float(ms)) for i, n, ms in _ITERATION.findall(text)]
    executed = _EXECUTED.search(text)
    if iterations:
        times = [ms for _, _, ms in iterations]
        if len(times) <= warmup:
            raise ToolOutputError(f"executor_runner printed {len(times)} iteration(s), not more than the {warmup} "
                                  "warm-up one(s): the run stopped early")
        run.first_ms = times[0]
        run.warmup_count = warmup
        if warmup:
            run.warmup_mean_ms = sum(times[:warmup]) / warmup
        run.samples_ms = times[warmup:]
        samples = sorted(run.samples_ms)
        run.count = len(samples)
        run.mean_ms = sum(samples) / len(samples)
        run.min_ms, run.max_ms = samples[0], samples[-1]
        middle = len(samples) // 2
        run.median_ms = samples[middle] if len(samples) % 2 else (samples[middle - 1] + samples[middle]) / 2
        if len(samples) > 1:
            run.std_ms = (sum((s - run.mean_ms) ** 2 for s in samples) / (len(samples) - 1)) ** 0.5
        return run
    if executed and executed.group(1):
        run.format = "total_only"
        run.count = int(executed.group(1))
        run.mean_ms = float(executed.group(2)) / run.count
        run.warmup_count = 0
        return run
    if executed:
        raise ToolOutputError("executor_runner ran the model but printed no time (`Model executed successfully.` "
                              "without numbers: an old build); build a newer one or tools/pte_runner")
    raise ToolOutputError("no `Iteration i of N` or `Model executed successfully N time(s)` line in "
                          "executor_runner's output")


# ---------------------------------------------------------------------------------------------- ONNX Runtime
_ORT_MS = {
    "first_ms": rf"First inference time cost: ({NUMBER}) ms",
    "mean_ms": rf"Average inference time cost(?: total)?: ({NUMBER}) ms",
}
_ORT_S = {
    "min_ms": rf"Min Latency: ({NUMBER}) s",
    "max_ms": rf"Max Latency: ({NUMBER}) s",
    "median_ms": rf"P50 Latency: ({NUMBER}) s",
    "p90_ms": rf"P90 Latency: ({NUMBER}) s",
    "p95_ms": rf"P95 Latency: ({NUMBER}) s",
    "p99_ms": rf"P99 Latency: ({NUMBER}) s",
}


def parse_onnxruntime_perf_test(text: str) -> ToolRun:
    """Read ``onnxruntime_perf_test`` output (``Average inference time cost`` in ms, older builds; ``...
    cost total``, newer; percentiles in seconds with ``-s``).

    Raises:
        ToolOutputError: no average inference time in the text.
    """
    run = ToolRun(tool="onnxruntime_perf_test", format="perf_test")
    for name, pattern in _ORT_MS.items():
        match = _search(pattern, text)
        if match:
            setattr(run, name, float(match.group(1)))
    for name, pattern in _ORT_S.items():
        match = _search(pattern, text)
        if match:
            setattr(run, name, float(match.group(1)) * MS_PER_S)
    session = _search(rf"Session creation time cost: ({NUMBER}) s", text)
    if session:
        run.init_ms = float(session.group(1)) * MS_PER_S
    requests = _search(r"Total inference requests: (\d+)", text)
    if requests:
        run.count = int(requests.group(1))
    peak = _search(r"Peak working set size: (\d+) bytes", text)
    if peak:
        run.memory_mb["peak"] = round(int(peak.group(1)) / 1e6, 3)
    if run.mean_ms is None:
        raise ToolOutputError("no `Average inference time cost` line in onnxruntime_perf_test's output")
    return run


# ------------------------------------------------ benchmark_model --result_file_path (BenchmarkResult proto)
#: field numbers of tflite.tools.benchmark.BenchmarkResult (benchmark_result.proto, proto2)
_RESULT_FIELDS = {2: "latency", 3: "memory", 4: "misc"}
_LATENCY_FIELDS = {1: "mean_ms", 2: "min_ms", 3: "max_ms", 4: "std_ms", 5: "median_ms", 6: "p5_ms", 7: "p95_ms",
                   8: "init_ms", 9: "first_ms", 10: "warmup_mean_ms"}
_MEMORY_FIELDS = {1: "init_kb", 2: "overall_kb", 3: "peak_mb"}
_MISC_FIELDS = {1: "model_size_mb", 2: "num_runs", 3: "num_warmup_runs"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ToolOutputError("the result file ends inside a number (truncated)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> dict[int, object]:
    """Protocol-buffer wire fields of one message: number -> int, float (fixed32) or bytes (last wins)."""
    import struct

    fields: dict[int, object] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], pos = _varint(data, pos)
        elif wire == 5:
            if pos + 4 > len(data):
                raise ToolOutputError("the result file ends inside a value (truncated)")
            fields[number] = struct.unpack("<f", data[pos:pos + 4])[0]
            pos += 4
        elif wire == 1:
            if pos + 8 > len(data):
                raise ToolOutputError("the result file ends inside a value (truncated)")
            fields[number] = struct.unpack("<d", data[pos:pos + 8])[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ToolOutputError("the result file ends inside a field (truncated)")
            fields[number] = data[pos:pos + size]
            pos += size
        else:
            raise ToolOutputError(f"not a BenchmarkResult proto (wire type {wire})")
    return fields


def parse_benchmark_result(data: bytes) -> ToolRun:
    """Read ``benchmark_model --result_file_path``: a binary ``tflite.tools.benchmark.BenchmarkResult``
    (latency in ms, memory footprints, run counts), decoded field by field from its wire format.

    Raises:
        ToolOutputError: an empty, truncated or foreign file, or one without an average latency.
    """
    top = _fields(data)
    run = ToolRun(tool="benchmark_model", format="result_proto")
    latency = _fields(top[2]) if isinstance(top.get(2), bytes) else {}
    for number, name in _LATENCY_FIELDS.items():
        if isinstance(latency.get(number), float):
            setattr(run, name, round(float(latency[number]), 6))
    memory = _fields(top[3]) if isinstance(top.get(3), bytes) else {}
    if isinstance(memory.get(1), int):
        run.memory_mb["init"] = memory[1] / 1024
    if isinstance(memory.get(2), int):
        run.memory_mb["overall"] = memory[2] / 1024
    if isinstance(memory.get(3), float) and memory[3] > 0:
        run.memory_mb["peak"] = round(float(memory[3]), 4)
    misc = _fields(top[4]) if isinstance(top.get(4), bytes) else {}
    if isinstance(misc.get(2), int):
        run.count = misc[2]
    if isinstance(misc.get(3), int):
        run.warmup_count = misc[3]
    if run.mean_ms is None:
        raise ToolOutputError("the benchmark_model result file holds no average latency")
    return run


PARSERS = {"benchmark_model": parse_benchmark_model, "executor_runner": parse_executor_runner,
           "onnxruntime_perf_test": parse_onnxruntime_perf_test}


def parse_tool_output(tool: str, text: str, warmup: int = 0) -> ToolRun:
    """Dispatch to the reader of ``tool`` (``warmup`` applies to per-iteration output only)."""
    if tool == "executor_runner":
        return parse_executor_runner(text, warmup)
    return PARSERS[tool](text)


__all__ = ["ToolRun", "Delegation", "ToolOutputError", "delegations", "parse_benchmark_model",
           "parse_executor_runner", "parse_onnxruntime_perf_test", "parse_benchmark_result", "parse_tool_output",
           "PARSERS"]
