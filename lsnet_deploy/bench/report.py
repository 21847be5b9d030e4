"""Tables from results files: one row per device, runtime, artifact, precision, batch and input size.

A row's model is the name it was benchmarked under (the file stem); when two different artifacts
(told apart by SHA-256) of one name would share a row (``lsnet_t.onnx`` and ``lsnet_t.ort`` on ONNX
Runtime), that name is replaced by the file name with its suffix everywhere (and a short hash if the
file names agree too), so a row never averages two artifacts and its label never depends on the order
of the command line.

Records from any number of files and machines merge into one table. Several records of the same row
(repeated runs) are combined by their median. By default each row is compared with the first candidate
of the run that measured it (what ``lsnet-bench A B`` prints): the median of the per-run ratios, drift
cancelling because the two were timed interleaved. With ``--baseline DIMENSION=VALUE`` each row is
compared with the row that differs only in that dimension (another model, runtime, precision or device;
for runtime, precision and device, a row of the same architecture when the file names differ, as
``m.onnx`` and ``m.int8.onnx`` do). When both rows were measured interleaved in the same run the ratio
is paired as above; otherwise it is the ratio of medians from different runs and is marked ``*``,
because the machine may have changed between them. Accuracy measured with ``--data`` (top-1 and the
agreement with the checkpoint) is kept as columns.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..errors import UsageError

DIMENSIONS = ("device", "runtime", "model", "precision")
#: the default comparison: each row against the first candidate of the run that measured it
PER_RUN = "run"
UNPAIRED_MARK = "*"


def _short_cpu(name: str) -> str:
    for noise in ("(R)", "(TM)", "(tm)", " CPU", " Processor", "-Core"):
        name = name.replace(noise, "")
    return " ".join(name.split("@")[0].split())


def device_label(record: dict) -> str:
    """``AMD EPYC (vm)``, ``NVIDIA H100 80GB HBM3 (gpu-box)``, ``Orin ... (MAXN, clocks locked)``,
    ``Qualcomm SM8650 (Pixel 9, cores f0)`` for a phone run (its device record names the cores)."""
    machine = record.get("machine") or {}
    phone = record.get("phone")
    if isinstance(phone, dict):
        cores = phone.get("cores") or {}
        where = f"{record.get('device_name') or phone.get('serial') or '?'}"
        extras = [f"cores {cores['mask']}" if cores.get("mask") and phone.get("pinned") else "unpinned"]
        if record.get("device") not in (None, "cpu"):
            extras.insert(0, str(record["device"]))
        return f"{where} [{phone.get('serial', '?')}, {', '.join(extras)}]"
    name = record.get("device_name") or record.get("device") or "?"
    if not str(record.get("device", "")).startswith("cuda"):
        name = _short_cpu(name)
    extras = [machine.get("hostname") or "?"]
    jetson = machine.get("jetson") or {}
    if jetson.get("power_mode"):
        extras.append(str(jetson["power_mode"]))
        locked = jetson.get("clocks_locked")
        extras.append("clocks locked" if locked else "clocks not locked" if locked is False else "clocks unknown")
    return f"{name} ({', '.join(extras)})"


def runtime_label(record: dict) -> str:
    """``ort cpu 2t``, ``executorch 2t``, ``torch cuda:0``, ``tensorrt cuda:0``."""
    parts = [str(record.get("runtime", "?"))]
    provider = record.get("provider")
    if provider:
        parts.append(str(provider).replace("ExecutionProvider", "").lower())
    if str(record.get("device", "cpu")).startswith("cuda"):
        parts.append(str(record["device"]))
    elif record.get("threads"):
        parts.append(f"{record['threads']}t")
    return " ".join(parts)


def input_label(record: dict) -> str:
    shape = record.get("input_shape") or []
    return f"{shape[2]}x{shape[3]}" if len(shape) == 4 else "?"


def artifact_id(record: dict) -> str:
    """What was timed: the artifact's SHA-256, or for a model the weights and how they were prepared."""
    source = record.get("source") or {}
    if source.get("kind") == "model":
        parts = (source.get("weights_sha256"), source.get("model"), source.get("exported_to"),
                 source.get("ska_form"), source.get("fused"))
        return "model:" + ":".join(str(p) for p in parts)
    return str(source.get("sha256") or source.get("path") or record.get("model", "?"))


def artifact_name(record: dict) -> str:
    """File name with suffix (``lsnet_t.onnx``), or for a model its weights file and export format."""
    source = record.get("source") or {}
    if source.get("file"):
        return str(source["file"])
    if source.get("kind") == "model":
        weights = source.get("weights")
        name = str(weights).replace("\\", "/").rsplit("/", 1)[-1] if weights else str(record.get("model", "?"))
        return f"{name} -> {source['exported_to']}" if source.get("exported_to") else name
    return str(record.get("model", "?"))


def _base_key(record: dict, model: str) -> tuple:
    return (device_label(record), runtime_label(record), model, str(record.get("precision", "?")),
            int(record.get("batch") or 0), input_label(record))


def _identity(record: dict) -> tuple[str, str]:
    return str(record.get("model", "?")), artifact_id(record)


def model_names(records: list[dict]) -> dict[tuple[str, str], str]:
    """(name, artifact id) -> the model name its rows show: the benchmarked name, unless two artifacts of
    that name would share a row; then the file name, plus a short hash where even that is shared."""
    artifacts: dict[tuple, set[str]] = {}
    for record in records:
        artifacts.setdefault(_base_key(record, str(record.get("model", "?"))), set()).add(artifact_id(record))
    clashing = {key[2] for key, ids in artifacts.items() if len(ids) > 1}
    names: dict[tuple[str, str], str] = {}
    files: dict[str, set[str]] = {}
    for record in records:
        ident = _identity(record)
        names[ident] = artifact_name(record) if ident[0] in clashing else ident[0]
        files.setdefault(names[ident], set()).add(ident[1])
    for (model, aid), name in names.items():
        if len(files[name]) > 1:
            names[(model, aid)] = f"{name}@{aid.removeprefix('model:')[:8]}"  # the SHA-256's first digits
    return names


def row_key(record: dict, names: dict[tuple[str, str], str] | None = None) -> tuple:
    """(device, runtime, model, precision, batch, input): what a row of the report stands for.

    ``names`` (from ``model_names``) tells artifacts of one name apart; without it the model is the
    benchmarked name.
    """
    model = (names or {}).get(_identity(record)) or str(record.get("model", "?"))
    return _base_key(record, model)


_KEY_INDEX = {"device": 0, "runtime": 1, "model": 2, "precision": 3}


@dataclass
class Row:
    """One line of the report."""

    key: tuple
    records: list[dict] = field(default_factory=list)
    artifact: str = ""
    ratio: float | None = None
    paired: bool = True
    is_baseline: bool = False
    #: the model of the row this one's ratio is against (per-run comparison)
    versus: str = ""

    @property
    def device(self) -> str:
        return self.key[0]

    @property
    def runtime(self) -> str:
        return self.key[1]

    @property
    def model(self) -> str:
        return self.key[2]

    @property
    def precision(self) -> str:
        return self.key[3]

    @property
    def batch(self) -> int:
        return self.key[4]

    @property
    def label(self) -> str:
        """What the row measured, e.g. ``lsnet_t.onnx (float32)``."""
        return f"{self.artifact or self.model} ({self.precision})"

    @property
    def input(self) -> str:
        return self.key[5]

    def stat(self, name: str) -> float | None:
        """The median over this row's records of one statistic (None when a record lacks it: a phone
        tool's summary without percentiles)."""
        values = [r["stats"].get(name) for r in self.records]
        return statistics.median(values) if values and all(v is not None for v in values) else None

    def accuracy(self, name: str) -> float | None:
        """The median over this row's records of one ``--data`` figure (``top1``, ``top5``, ``agreement``);
        None when no record measured it."""
        values = [(r.get("accuracy") or {}).get(name) for r in self.records]
        values = [v for v in values if isinstance(v, (int, float))]
        return statistics.median(values) if values else None

    @property
    def architecture(self) -> str | None:
        """The architecture its records name (one), else None."""
        names = {r.get("architecture") for r in self.records}
        return names.pop() if len(names) == 1 and None not in names else None

    @property
    def center_stat(self) -> str:
        """``median_ms``, or ``mean_ms`` for rows whose tool printed no median."""
        return "median_ms" if self.stat("median_ms") is not None else "mean_ms"

    @property
    def runs(self) -> int:
        return len(self.records)

    @property
    def protocols(self) -> set[str]:
        return {(r.get("settings") or {}).get("protocol", "latency") for r in self.records}


@dataclass(frozen=True)
class Baseline:
    """The rows others are compared with: those whose ``dimension`` equals ``value``."""

    dimension: str
    value: str

    @property
    def per_run(self) -> bool:
        """Each row against the first candidate of its own run (the default)."""
        return self.dimension == PER_RUN

    @classmethod
    def parse(cls, text: str, rows: list[Row]) -> "Baseline":
        """``model=mobilenetv3_large_100``, ``runtime=torch``, or a bare value looked up in every dimension.

        Raises:
            UsageError: an unknown dimension, or a value no row has.
        """
        dimension, sep, value = text.partition("=")
        if sep:
            dimension = dimension.strip().lower()
            if dimension not in _KEY_INDEX:
                raise UsageError(f"--baseline {text!r}: choose a dimension among {', '.join(DIMENSIONS)}")
            candidates = [dimension]
        else:
            value, candidates = text, list(DIMENSIONS)
        value = value.strip()
        for dim in candidates:
            values = {row.key[_KEY_INDEX[dim]] for row in rows}
            if value in values:
                return cls(dim, value)
            matches = sorted(v for v in values if value.lower() in v.lower())
            if len(matches) == 1:
                return cls(dim, matches[0])
            if len(matches) > 1:
                raise UsageError(f"--baseline {text!r} is ambiguous: it matches {dim}s {', '.join(matches)}; "
                                 f"give one exactly, e.g. --baseline {dim}={matches[0]!r}")
        known = sorted({row.key[_KEY_INDEX[d]] for row in rows for d in candidates})
        raise UsageError(f"--baseline {text!r} matches no result; known values: {', '.join(known)}")


def group_rows(records: list[dict]) -> list[Row]:
    """Rows in order of device, runtime, model, precision, batch and input size."""
    names = model_names(records)
    rows: dict[tuple, Row] = {}
    for record in records:
        key = row_key(record, names)
        rows.setdefault(key, Row(key, artifact=artifact_name(record))).records.append(record)
    return [rows[k] for k in sorted(rows)]


def _shared_center(row: Row, base: Row) -> str:
    """The statistic two rows are compared by: the median when both have it, else the mean."""
    return "median_ms" if row.center_stat == base.center_stat == "median_ms" else "mean_ms"


def _paired_ratio(row: Row, base: Row) -> float | None:
    key = _shared_center(row, base)
    base_by_run = {(r.get("run_id"), r.get("group")): r["stats"][key] for r in base.records}
    ratios = [r["stats"][key] / base_by_run[(r.get("run_id"), r.get("group"))] for r in row.records
              if (r.get("run_id"), r.get("group")) in base_by_run and base_by_run[(r.get("run_id"), r.get("group"))]]
    return statistics.median(ratios) if ratios else None


def apply_baseline(rows: list[Row], baseline: Baseline, records: list[dict] | None = None) -> None:
    """Set each row's ratio against its baseline row: the first candidate of its run (``PER_RUN``), or the
    row that differs from it only in the baseline's dimension.

    Args:
        rows: the report's rows.
        baseline: what to compare with.
        records: the records in the files' order (``PER_RUN`` takes a run's first record when none has a
            position); default: the rows' records.
    """
    if baseline.per_run:
        _apply_per_run(rows, records if records is not None else [r for row in rows for r in row.records])
        return
    index = _KEY_INDEX[baseline.dimension]
    by_key = {row.key: row for row in rows}
    for row in rows:
        base_key = row.key[:index] + (baseline.value,) + row.key[index + 1:]
        base = by_key.get(base_key) or _same_architecture(row, rows, baseline)
        row.is_baseline = row.key == base_key
        if base is None:
            row.ratio, row.paired = None, True
            continue
        paired = _paired_ratio(row, base)
        if paired is not None:
            row.ratio, row.paired = paired, True
        else:
            key = _shared_center(row, base)
            row.ratio, row.paired = row.stat(key) / base.stat(key), False


def _same_architecture(row: Row, rows: list[Row], baseline: Baseline) -> Row | None:
    """For a runtime, precision or device baseline: the one baseline row of the same architecture, batch,
    input and other dimensions, when the file names differ (``m.onnx`` against ``m.int8.onnx``)."""
    if baseline.dimension == "model" or row.architecture is None:
        return None
    index, model = _KEY_INDEX[baseline.dimension], _KEY_INDEX["model"]
    fixed = [i for i in range(len(row.key)) if i not in (index, model)]
    found = [other for other in rows if other.key[index] == baseline.value
             and all(other.key[i] == row.key[i] for i in fixed) and other.architecture == row.architecture]
    return found[0] if len(found) == 1 else None


def _run_of(record: dict) -> tuple | None:
    run = record.get("run_id")
    return None if run is None else (run, record.get("group"))


def _apply_per_run(rows: list[Row], records: list[dict]) -> None:
    """Each row against the first candidate of the run that measured it (its record at position 0, else the
    run's first record in the files' order): a paired ratio, as the run printed it."""
    row_of = {id(r): row for row in rows for r in row.records}
    firsts: dict[tuple, tuple[int, int, dict]] = {}
    for order, record in enumerate(records):
        run = _run_of(record)
        if run is None or id(record) not in row_of:
            continue
        position = record.get("position") if isinstance(record.get("position"), int) else 1 << 30
        if run not in firsts or (position, order) < firsts[run][:2]:
            firsts[run] = (position, order, record)
    for row in rows:
        ratios, versus = [], []
        for record in row.records:
            first = firsts.get(_run_of(record), (0, 0, None))[2]
            if first is None:
                continue
            base = row_of[id(first)]
            key = _shared_center(row, base)
            if record["stats"].get(key) is not None and first["stats"].get(key):
                ratios.append(record["stats"][key] / first["stats"][key])
                versus.append(base.model)
        row.ratio = statistics.median(ratios) if ratios else None
        row.paired = True
        row.versus = ", ".join(dict.fromkeys(versus))
        row.is_baseline = all(firsts.get(_run_of(r), (0, 0, None))[2] is r for r in row.records)


def default_baseline(records: list[dict], rows: list[Row]) -> Baseline | None:
    """The first candidate of each run (what ``lsnet-bench A B`` compares against)."""
    return Baseline(PER_RUN, "first candidate") if records else None


COLUMNS = ("Device", "Runtime", "Model", "Artifact", "Precision", "Batch", "Input", "Median ms", "p90 ms", "p99 ms",
           "Min ms", "Std ms", "img/s", "Ratio", "Runs")
#: shown when a row's ratio is against another run's first candidate than the others'
VERSUS_COLUMN = "vs"
#: shown when any row was measured with --data: (column, accuracy field)
ACCURACY_COLUMNS = (("Top-1 %", "top1"), ("Top-5 %", "top5"), ("Agree %", "agreement"))


def _columns(rows: list[Row]) -> list[str]:
    """COLUMNS, with the ``vs`` column when the rows' ratios are against different rows, and the accuracy
    columns when any row measured accuracy."""
    columns = list(COLUMNS)
    if len({row.versus for row in rows if row.versus}) > 1:
        columns.insert(columns.index("Ratio") + 1, VERSUS_COLUMN)
    if any(row.accuracy("top1") is not None for row in rows):
        columns += [name for name, _ in ACCURACY_COLUMNS]
    return columns


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cells(row: Row, columns: list[str]) -> list[str]:
    if row.ratio is None:
        ratio = "-"
    else:
        ratio = f"{row.ratio:.2f}x" + ("" if row.paired else UNPAIRED_MARK)
    cells = [row.device, row.runtime, row.model + (" (paper)" if "paper" in row.protocols else ""), row.artifact,
             row.precision,
             str(row.batch), row.input, _fmt(row.stat("median_ms")), _fmt(row.stat("p90_ms")),
             _fmt(row.stat("p99_ms")), _fmt(row.stat("min_ms")), _fmt(row.stat("std_ms")),
             _fmt_rate(row.stat("throughput")), ratio, str(row.runs)]
    if VERSUS_COLUMN in columns:
        cells.insert(columns.index(VERSUS_COLUMN), row.versus or "-")
    for name, field_name in ACCURACY_COLUMNS:
        if name in columns:
            value = row.accuracy(field_name)
            cells.append("-" if value is None else f"{value:.2f}")
    return cells


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _footer(rows: list[Row], baseline: Baseline | None) -> list[str]:
    lines = []
    if baseline and baseline.per_run:
        versus = sorted({row.versus for row in rows if row.versus})
        against = f" ({versus[0]})" if len(versus) == 1 else " (column vs)" if versus else ""
        lines.append(f"Ratio: median latency / that of the first candidate of the same run{against}, timed "
                     "interleaved with it (below 1 is faster); --baseline compares across runs.")
    elif baseline:
        lines.append(f"Ratio: median latency / median latency of {baseline.dimension} {baseline.value} in the same "
                     f"{', '.join(d for d in DIMENSIONS if d != baseline.dimension)}, batch and input "
                     "(below 1 is faster).")
    if any(row.accuracy("top1") is not None for row in rows):
        data = sorted({f"{(r.get('accuracy') or {}).get('data')} ({(r.get('accuracy') or {}).get('count')} images)"
                       for row in rows for r in row.records if r.get("accuracy")})
        lines.append(f"Top-1/Top-5 %: on --data {'; '.join(data)}. Agree %: top-1 agreement with the checkpoint "
                     "(--weights) on the same images.")
    if any(r.stat(k) is None for r in rows for k in ("median_ms", "p90_ms", "p99_ms", "min_ms", "std_ms")):
        lines.append("- not printed by the device's benchmark tool (its summary has no such statistic)"
                     + ("; rows without a median are compared by their mean." if any(r.stat("median_ms") is None
                                                                                     for r in rows) else "."))
    if any(r.ratio is not None and not r.paired for r in rows):
        lines.append(f"{UNPAIRED_MARK} measured in different runs, not interleaved: the machine may have changed "
                     "in between, so read these ratios with care.")
    return lines


def render_text(rows: list[Row], baseline: Baseline | None) -> str:
    """A fixed-width table for the terminal."""
    columns = _columns(rows)
    table = [columns] + [_cells(r, columns) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    numeric = {i for i, name in enumerate(columns) if i >= columns.index("Batch") and name != VERSUS_COLUMN}
    lines = []
    for n, line in enumerate(table):
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + _footer(rows, baseline)).rstrip() + "\n"


def render_markdown(rows: list[Row], baseline: Baseline | None) -> str:
    """A GitHub-flavoured Markdown table."""
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if i < columns.index("Batch") or name == VERSUS_COLUMN else "---:"
                            for i, name in enumerate(columns)) + "|"]
    for row in rows:
        cells = [esc(c) for c in _cells(row, columns)]
        if row.is_baseline:
            cells[2] = f"**{cells[2]}**"
        lines.append("| " + " | ".join(cells) + " |")
    footer = _footer(rows, baseline)
    return "\n".join(lines + ([""] + footer if footer else [])) + "\n"


def build_report(records: list[dict], baseline: str | None = None) -> tuple[list[Row], Baseline | None]:
    """Rows with ratios against ``baseline`` (default: the model first benchmarked in the first file).

    Raises:
        UsageError: no records, or a baseline that matches nothing.
    """
    if not records:
        raise UsageError("no benchmark results to report")
    rows = group_rows(records)
    chosen = Baseline.parse(baseline, rows) if baseline else default_baseline(records, rows)
    if chosen is not None:
        apply_baseline(rows, chosen, records)
    return rows, chosen
