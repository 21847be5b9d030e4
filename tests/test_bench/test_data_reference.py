"""``lsnet-bench --data -w``: the checkpoint (the agreement reference) is evaluated once per run, whatever
the number of batch groups, and every evaluation shows its progress."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lsnet_deploy.cli.bench import app, normalize_args

from ..conftest import CIFAR_TEST


def test_reference_is_evaluated_once_across_batch_groups(tiny_onnx, tiny_checkpoint_path):
    args = [str(tiny_onnx), "-w", str(tiny_checkpoint_path), "--data", str(CIFAR_TEST), "--data-limit", "20",
            "--batch", "1,1", "--iters", "2", "--warmup", "1", "--warmup-time", "0", "--min-time", "0",
            "--threads", "1", "--no-save", "--json"]
    result = CliRunner().invoke(app, normalize_args(args))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(records) == 4 and {r["group"] for r in records} == {0, 1}
    assert all(r["accuracy"]["agreement_with"] == tiny_checkpoint_path.name for r in records)
    started = [line for line in result.stderr.splitlines() if "(reference) on" in line]
    assert len(started) == 1, result.stderr  # once, not once per group
    assert sum("accuracy of" in line and "on " in line for line in result.stderr.splitlines()) >= 5
