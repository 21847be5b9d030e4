"""lsnet-bench's output paths: checked before any timing, one line on failure, nothing partial left."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lsnet_deploy.bench.results import SCHEMA, append_records
from lsnet_deploy.cli.bench import app, normalize_args
from lsnet_deploy.errors import OutputWriteError

from ..mounts import full_disk, tmpfs, visible_files

runner = CliRunner()


def bench(*args):
    return runner.invoke(app, normalize_args([str(a) for a in args]))


def refused_before_timing(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("lsnet-bench: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert "timing" not in result.stderr and "loading" not in result.stderr  # nothing was built or timed
    return lines[0]


def big_record(label: str) -> dict:
    """A record larger than one 4 KiB page."""
    return {"schema": SCHEMA, "label": label, "notes": ["x" * 100] * 60,
            "stats": {"n": 1, "median_ms": 1.0, "mean_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "min_ms": 1.0,
                      "std_ms": 0.0, "throughput": 1000.0}}


@pytest.mark.parametrize("where", ["/proc/x.jsonl", "{tmp}/no/such/r.jsonl", "{tmp}"])
def test_unwritable_output_is_refused_before_timing(tiny_onnx, tmp_path, quick, where):
    output = where.replace("{tmp}", str(tmp_path))
    refused_before_timing(bench(tiny_onnx, *quick, "-o", output), "--output")


def test_read_only_and_full_disks_are_refused_before_timing(tiny_onnx, tmp_path, quick):
    with tmpfs(tmp_path / "ro", read_only=True) as folder:
        refused_before_timing(bench(tiny_onnx, *quick, "-o", folder / "r.jsonl"), "read-only")
    with full_disk(tmp_path / "full") as folder:
        refused_before_timing(bench(tiny_onnx, *quick, "-o", folder / "r.jsonl"), "No space left on device")
        assert visible_files(folder) == []  # no empty JSONL


def test_a_disk_that_fills_during_the_run_leaves_no_partial_file(tmp_path):
    with full_disk(tmp_path / "full", free_pages=1) as folder:
        new = folder / "new.jsonl"
        with pytest.raises(OutputWriteError, match="No space left on device") as caught:
            append_records(new, [big_record("a"), big_record("b")])
        assert "\n" not in str(caught.value)
        assert visible_files(folder) == []  # the file this append created is gone
    with tmpfs(tmp_path / "small", size_kb=16) as folder:
        kept = folder / "kept.jsonl"
        append_records(kept, [big_record("a")])
        before = kept.read_bytes()
        with pytest.raises(OutputWriteError):
            append_records(kept, [big_record(str(i)) for i in range(6)])
        assert kept.read_bytes() == before  # cut back to what it held
        assert [json.loads(line)["label"] for line in kept.read_text().splitlines()] == ["a"]


def test_report_output_and_plot_paths_are_checked_first(tmp_path):
    results = tmp_path / "r.jsonl"
    append_records(results, [big_record("a")])
    with tmpfs(tmp_path / "ro", read_only=True) as folder:
        for option in ("--plot", "-o"):
            result = bench("report", results, option, folder / "chart.png")
            assert result.exit_code == 2, result.output
            assert "Traceback" not in result.output
            line = [ln for ln in result.stderr.splitlines() if "error:" in ln]
            assert len(line) == 1 and "read-only" in line[0], result.stderr
    result = bench("report", results, "--plot", "/proc/chart.png")
    assert result.exit_code == 2 and "cannot create a file in /proc" in result.stderr
