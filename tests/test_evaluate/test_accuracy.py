"""The fixture's recorded accuracy reproduces: exactly in PyTorch, within 0.5 points through ONNX."""

from __future__ import annotations

import pytest

from lsnet_deploy.accuracy import evaluate

ONNX_SUBSET = 1000  # images (evenly spread over the sorted test set) for the artifact check


@pytest.mark.slow
def test_fixture_top1_reproduces_exactly(cifar_model, cifar_test_dir, fixture_card):
    recorded = fixture_card["eval"]
    report = evaluate(cifar_model, cifar_test_dir, batch_size=recorded["batch_size"],
                      threads=recorded["eval_threads"])
    assert report.count == recorded["count"] == 5000
    assert report.unreadable == 0
    assert report.correct == recorded["correct_top1"]
    assert report.top1 == pytest.approx(recorded["top1"], abs=1e-9)
    assert report.top5 == pytest.approx(recorded["top5"], abs=1e-9)
    assert report.top1 > 50  # a trained model, far above the 10% of chance
    assert set(report.per_class) == {p.name for p in cifar_test_dir.iterdir() if p.is_dir()}
    assert all(row["count"] == 500 for row in report.per_class.values())


def test_fixture_checkpoint_keeps_training_format(fixture_checkpoint, fixture_card):
    import argparse

    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        saved = torch.load(fixture_checkpoint, map_location="cpu", weights_only=True)
    assert set(saved) == {"model", "optimizer", "epoch", "args"}
    assert saved["optimizer"] is None
    assert saved["epoch"] == fixture_card["epochs_completed"] >= 1
    assert isinstance(saved["args"].input_size, int) and saved["args"].input_size == fixture_card["input_size"]
    floats = [v for v in saved["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert fixture_checkpoint.stat().st_size < 8 * 2**20


@pytest.mark.slow
def test_onnx_accuracy_within_half_a_point(cifar_model, cifar_test_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from lsnet_deploy.exporters import export_model

    artifact = tmp_path / "cifar_small.onnx"
    export_model(cifar_model, "onnx", artifact)
    torch_report = evaluate(cifar_model, cifar_test_dir, limit=ONNX_SUBSET, batch_size=100)
    onnx_report = evaluate(artifact, cifar_test_dir, limit=ONNX_SUBSET, batch_size=100, reference=cifar_model)
    assert onnx_report.count == torch_report.count == ONNX_SUBSET
    assert abs(onnx_report.top1 - torch_report.top1) <= 0.5
    assert abs(onnx_report.top5 - torch_report.top5) <= 0.5
    assert onnx_report.agreement >= 99.0
    assert onnx_report.top1 > 50


def test_checkpoint_path_evaluates_at_its_training_size(fixture_checkpoint, cifar_model, cifar_test_dir):
    # the weights alone would give 128 px (same last-stage grid as 96); args.input_size says 96
    by_path = evaluate(fixture_checkpoint, cifar_test_dir, limit=100, reference=cifar_model)
    by_module = evaluate(cifar_model, cifar_test_dir, limit=100)
    assert by_path.count == by_module.count == 100
    assert by_path.correct == by_module.correct
    assert by_path.agreement == 100.0
    assert by_module.agreement is None
    assert "agreement" in by_path.summary() and by_path.to_dict()["agreement"] == 100.0


FORMAT_SUBSET = 500  # 50 per class


@pytest.mark.parametrize("fmt, options, package", [
    ("ort", {}, "onnxruntime"),
    ("onnx", {"half": True}, "onnxruntime"),
    ("executorch", {}, "executorch.runtime"),
    ("executorch", {"half": True}, "executorch.runtime"),
    ("litert", {}, "ai_edge_litert"),
], ids=["ort", "onnx-float16", "executorch", "executorch-float16", "litert"])
def test_every_format_that_runs_here_keeps_the_accuracy(cifar_model, cifar_test_dir, tmp_path, fmt, options,
                                                          package):
    pytest.importorskip(package, reason=f"{package} is not installed")
    from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter

    artifact = tmp_path / f"cifar_small{get_exporter(fmt).suffix}"
    export_model(cifar_model, fmt, artifact, ExportOptions(**options))
    torch_report = evaluate(cifar_model, cifar_test_dir, limit=FORMAT_SUBSET, batch_size=100)
    report = evaluate(artifact, cifar_test_dir, limit=FORMAT_SUBSET, batch_size=100 if fmt == "ort" else 1,
                      reference=cifar_model)
    assert report.count == torch_report.count == FORMAT_SUBSET
    assert abs(report.top1 - torch_report.top1) <= 0.5, (report.summary(), torch_report.summary())
    assert report.agreement >= 98.0 and report.top1 > 50
