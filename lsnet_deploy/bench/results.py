"""Benchmark results as JSON Lines: one result per line, appended whole, read back tolerantly.

Each record is written with a single ``write`` on a file opened for appending and flushed to disk
before the next measurement starts, so a crash, a kill or Ctrl-C loses at most the result being
measured. A line that is damaged anyway (a full disk, a hand edit) is reported and skipped on reading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import OutputWriteError, UsageError

SCHEMA = "lsnet-bench/1"
#: statistics every record must carry to be reported
STAT_KEYS = ("n", "median_ms", "mean_ms", "p90_ms", "p99_ms", "min_ms", "std_ms", "throughput")
#: statistics a phone tool's summary may lack (``stats.method == "tool_summary"``): None, never invented
SUMMARY_OPTIONAL = ("median_ms", "p90_ms", "p99_ms", "min_ms", "std_ms")


@dataclass(frozen=True)
class SkippedLine:
    """A line of a results file that could not be used."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped ({self.reason})"


def append_records(path: str | Path, records: Iterable[dict]) -> int:
    """Append records to a JSON Lines file, each line whole, and sync it to disk.

    If the file ends in the middle of a line (an earlier writer was killed mid-write), a newline is
    added first so the new records start on lines of their own.

    Returns:
        The number of records written.

    Raises:
        UsageError: the file cannot be opened for appending.
        OutputWriteError: a write failed (a full disk): the file is put back as it was (removed if this
            call created it), so no empty or half-written results file is left.
    """
    path = Path(path)
    lines = [json.dumps(record, sort_keys=False, allow_nan=False) + "\n" for record in records]
    if not lines:
        return 0
    existed = path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot write results to {path}: {exc.strerror}; choose another --output") from None
    size = os.fstat(fd).st_size
    try:
        prefix = "\n" if _ends_mid_line(path) else ""
        for i, line in enumerate(lines):
            data = ((prefix if i == 0 else "") + line).encode("utf-8")
            written = os.write(fd, data)
            while written < len(data):  # a short write on a regular file is rare but legal
                written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        _restore(path, fd, size, existed)
        raise OutputWriteError(f"cannot write results to {path}: {exc.strerror or exc}; free some space or choose "
                               "another --output (the file is as it was before)") from None
    finally:
        os.close(fd)
    return len(lines)


def _restore(path: Path, fd: int, size: int, existed: bool) -> None:
    """Undo a failed append: cut the file back to ``size``, or remove it if the append created it."""
    try:
        if existed:
            os.ftruncate(fd, size)
        else:
            path.unlink()
    except OSError:
        pass


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except OSError:
        return False


def read_records(paths: Iterable[str | Path]) -> tuple[list[dict], list[SkippedLine]]:
    """Read benchmark records from JSON Lines files.

    Blank lines are ignored; lines that are not JSON objects, or not lsnet-bench results, are skipped
    and returned so the caller can report them.

    Returns:
        (records in file order, skipped lines).

    Raises:
        UsageError: a file that does not exist or cannot be read.
    """
    records: list[dict] = []
    skipped: list[SkippedLine] = []
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise UsageError(f"results file {path} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read results file {path}: {exc.strerror}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                skipped.append(SkippedLine(path, number, f"not valid JSON: {exc.msg} at column {exc.colno}"))
                continue
            problem = _problem(record)
            if problem:
                skipped.append(SkippedLine(path, number, problem))
                continue
            record.setdefault("source_file", str(path))
            records.append(record)
    return records, skipped


def _problem(record) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("schema") != SCHEMA:
        return f"not an lsnet-bench result (schema {record.get('schema')!r}, expected {SCHEMA!r})"
    stats = record.get("stats")
    if not isinstance(stats, dict):
        return "no latency statistics"
    optional = SUMMARY_OPTIONAL if stats.get("method") == "tool_summary" else ()
    missing = [k for k in STAT_KEYS if not isinstance(stats.get(k), (int, float))
               and not (k in optional and k in stats and stats[k] is None)]
    if missing:
        return f"incomplete latency statistics (no {', '.join(missing)})"
    return None
