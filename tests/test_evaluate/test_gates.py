"""Accuracy where users meet it: `lsnet-export --data` as a gate, `lsnet-bench --data` beside latency.

Both run the trained CIFAR-10 fixture through the artifact's own runtime on real images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lsnet_deploy.accuracy import evaluate

from ..conftest import error_line

PER_CLASS = 10  # 100 images: enough to see a gate work, small enough for the suite


@pytest.fixture
def small_folder(make_folder):
    from .conftest import CLASSES

    return make_folder({name: (name, PER_CLASS) for name in CLASSES})


def export(*args):
    from lsnet_deploy.cli.export import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_export_measures_both_accuracies_and_passes_the_gate(tmp_path, fixture_checkpoint, small_folder, cifar_model):
    out = tmp_path / "cifar.onnx"
    result = export("--weights", fixture_checkpoint, "--data", small_folder, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    accuracy = json.loads(result.stdout)["details"]["accuracy"]
    expected = evaluate(cifar_model, small_folder, per_class=False)
    assert accuracy["pytorch"]["top1"] == pytest.approx(expected.top1, abs=1e-9)  # the user's model, as loaded
    assert accuracy["artifact"]["count"] == accuracy["pytorch"]["count"] == 10 * PER_CLASS
    assert accuracy["drop"] <= 1.0 and accuracy["max_drop"] == 1.0
    assert accuracy["pytorch"]["top1"] > 40  # a trained model: far above chance (10%)


def test_a_collapsed_artifact_is_refused_even_without_validation(tmp_path, fixture_checkpoint, small_folder,
                                                                  monkeypatch):
    from lsnet_deploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner

    original = OnnxRuntimeRunner._infer
    monkeypatch.setattr(OnnxRuntimeRunner, "_infer", lambda self, x: np.roll(original(self, x), 1, axis=1))
    out = tmp_path / "cifar.onnx"
    out.write_bytes(b"previous")
    result = export("--weights", fixture_checkpoint, "--data", small_folder, "--no-validate", "-o", out)
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "top-1 on" in line and "more than --max-drop 1" in line and "nothing was written" in line
    assert out.read_bytes() == b"previous"


def test_max_drop_needs_data_and_a_bad_data_folder_fails_first(tmp_path, fixture_checkpoint):
    result = export("--weights", fixture_checkpoint, "--max-drop", "2", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "add --data" in error_line(result)
    result = export("--weights", fixture_checkpoint, "--data", tmp_path / "nowhere", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "nowhere" in error_line(result)
    assert "loading" not in result.output


def test_bench_reports_accuracy_per_candidate(tmp_path, fixture_checkpoint, small_folder, cifar_model):
    from lsnet_deploy.cli.bench import app, normalize_args
    from lsnet_deploy.exporters import ExportOptions, export_model

    artifact = export_model(cifar_model, "onnx", tmp_path / "cifar.onnx", ExportOptions(validate=False)).path
    args = normalize_args([str(artifact), "--data", str(small_folder), "--data-limit", "50", "--iters", "5",
                           "--warmup", "1", "--threads", "2", "--json", "--no-save"])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    accuracy = record["accuracy"]
    expected = evaluate(artifact, small_folder, limit=50, per_class=False)
    assert accuracy["count"] == 50 and accuracy["top1"] == pytest.approx(expected.top1, abs=1e-9)
    assert accuracy["agreement"] is None  # no checkpoint named, nothing to agree with
