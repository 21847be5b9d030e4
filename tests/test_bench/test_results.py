"""The JSON Lines results file: whole lines, damaged lines skipped and reported, a killed run keeps
everything it recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lsnet_deploy.bench.results import SCHEMA, STAT_KEYS, append_records, read_records
from lsnet_deploy.errors import UsageError


def record(label: str, median: float = 1.0) -> dict:
    stats = {key: median for key in STAT_KEYS} | {"n": 10}
    return {"schema": SCHEMA, "label": label, "model": label, "stats": stats}


def test_append_and_read_back(tmp_path):
    path = tmp_path / "r.jsonl"
    assert append_records(path, [record("a"), record("b")]) == 2
    assert append_records(path, [record("c")]) == 1
    assert append_records(path, []) == 0
    records, skipped = read_records([path])
    assert [r["label"] for r in records] == ["a", "b", "c"]
    assert skipped == []
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 3


def test_damaged_lines_are_skipped_and_reported(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [record("a")])
    with open(path, "a") as handle:           # a writer killed mid-line, then other junk
        handle.write('{"schema": "lsnet-bench/1", "label": "torn", "sta')
    append_records(path, [record("b")])       # starts on a line of its own
    with open(path, "a") as handle:
        handle.write("\n[1, 2]\n" + json.dumps({"schema": "other/1", "stats": {"median_ms": 1}}) + "\n"
                     + json.dumps({"schema": SCHEMA, "stats": {"median_ms": 1.0}}) + "\n")
    records, skipped = read_records([path])
    assert [r["label"] for r in records] == ["a", "b"]
    assert [s.line for s in skipped] == [2, 5, 6, 7]
    reasons = [s.reason for s in skipped]
    assert "not valid JSON" in reasons[0] and "not a JSON object" in reasons[1]
    assert "not an lsnet-bench result" in reasons[2] and "incomplete latency statistics" in reasons[3]
    assert str(skipped[0]).startswith(f"{path}:2: skipped")


def test_missing_or_unwritable_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_records([tmp_path / "nope.jsonl"])
    with pytest.raises(UsageError, match="cannot write results"):
        append_records(tmp_path / "no_dir" / "r.jsonl", [record("a")])
    with pytest.raises(ValueError):          # NaN is not JSON: refused before anything is written
        append_records(tmp_path / "nan.jsonl", [{"schema": SCHEMA, "stats": {"median_ms": float("nan")}}])
    assert not (tmp_path / "nan.jsonl").exists()


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)],
                         ids=["kill", "ctrl-c"])
def test_a_killed_run_keeps_what_it_recorded(tiny_onnx, tmp_path, sig, exit_code):
    """Kill (or Ctrl-C) a real lsnet-bench mid-run: the lines written before it are whole and readable."""
    out = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "lsnet_deploy.cli.bench", "run", str(tiny_onnx), "--batch", "1,1,1,1,1,1,1,1",
           "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0.4", "-o", str(out)]
    scratch = tmp_path / "tmp"  # a SIGKILL leaves the run's work folder: keep it under tmp_path, not /tmp
    scratch.mkdir()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env={**os.environ, "TMPDIR": str(scratch)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed; make it longer"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == exit_code
    records, skipped = read_records([out])
    assert skipped == []
    assert 1 <= len(records) < 8
    assert all(r["stats"]["n"] >= 3 for r in records)
    append_records(out, [record("after")])    # the file stays appendable
    records_after, skipped = read_records([out])
    assert skipped == [] and records_after[-1]["label"] == "after"
