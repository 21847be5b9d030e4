"""Each trained fixture's recorded accuracy reproduces: exactly in PyTorch, within 0.5 points in every format
and precision that runs here."""

from __future__ import annotations

import pytest

from lsnet_deploy.accuracy import evaluate

from ..conftest import TRAINED, TRAINED_MIN_TOP1

ONNX_SUBSET = 1000  # images (evenly spread over the sorted test set) for the artifact check


#: correct top-1 / top-5 of each fixture on the committed 1,000 test pictures (first measured 2026-12-03; the
#: cards record the whole 5,000-picture test set, which is not committed)
SUBSET_CORRECT = {"cifar_small": (851, 991), "cifar_lsnet_t": (755, 985)}
#: how far the 1,000-picture top-1 may sit from the card's 5,000-picture one (about two standard errors)
SUBSET_SAMPLING_POINTS = 2.5


@pytest.mark.slow
def test_fixture_top1_reproduces_exactly(trained, cifar_test_dir):
    recorded = trained.card["eval"]
    report = evaluate(trained.model, cifar_test_dir, batch_size=recorded["batch_size"],
                      threads=recorded["eval_threads"])
    assert report.count == 1000 and recorded["count"] == 5000
    assert report.unreadable == 0
    assert (report.correct, report.correct_top5) == SUBSET_CORRECT[trained.name]
    assert abs(report.top1 - recorded["top1"]) <= SUBSET_SAMPLING_POINTS
    assert report.top1 > TRAINED_MIN_TOP1  # a trained model, far above the 10% of chance
    assert set(report.per_class) == {p.name for p in cifar_test_dir.iterdir() if p.is_dir()}
    assert all(row["count"] == 100 for row in report.per_class.values())


def test_fixture_checkpoint_keeps_training_format(trained):
    import argparse

    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        saved = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    assert set(saved) == {"model", "optimizer", "epoch", "args"}
    assert saved["optimizer"] is None
    assert saved["epoch"] == trained.card["epochs_completed"] >= 1
    assert isinstance(saved["args"].input_size, int) and saved["args"].input_size == trained.card["input_size"]
    floats = [v for v in saved["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    # float16 state dict: two bytes a parameter (plus BatchNorm statistics and pickle framing)
    parameters = sum(p.numel() for p in trained.model.parameters())
    assert parameters == trained.card["params"]
    assert trained.checkpoint.stat().st_size < 2.1 * parameters + 2**20
    assert trained.checkpoint.stat().st_size < 24 * 2**20  # the largest (LSNet-T, 11M parameters) is 22 MB


@pytest.mark.slow
def test_onnx_accuracy_within_half_a_point(trained, cifar_test_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from lsnet_deploy.exporters import export_model

    artifact = tmp_path / f"{trained.name}.onnx"
    export_model(trained.model, "onnx", artifact)
    torch_report = evaluate(trained.model, cifar_test_dir, limit=ONNX_SUBSET, batch_size=100)
    onnx_report = evaluate(artifact, cifar_test_dir, limit=ONNX_SUBSET, batch_size=100, reference=trained.model)
    assert onnx_report.count == torch_report.count == ONNX_SUBSET
    assert abs(onnx_report.top1 - torch_report.top1) <= 0.5
    assert abs(onnx_report.top5 - torch_report.top5) <= 0.5
    assert onnx_report.agreement >= 99.0
    assert onnx_report.top1 > TRAINED_MIN_TOP1


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


#: (format, export options, package that runs it); LSNet-T (the larger fixture) skips the float16 copies of
#: formats it already runs in float32, which the small fixture covers, to keep the suite's time
FORMATS = [
    ("ort", {}, "onnxruntime"),
    ("onnx", {"half": True}, "onnxruntime"),
    ("executorch", {}, "executorch.runtime"),
    ("executorch", {"half": True}, "executorch.runtime"),
    ("litert", {}, "ai_edge_litert"),
]
FORMAT_CASES = [pytest.param(name, *case, id=f"{name}-{case[0]}{'-float16' if case[1] else ''}",
                             marks=[pytest.mark.slow] if name == "cifar_lsnet_t" else [])
                for name in TRAINED for case in FORMATS if name == "cifar_small" or not case[1]]


@pytest.mark.parametrize("trained, fmt, options, package", FORMAT_CASES, indirect=["trained"])
def test_every_format_that_runs_here_keeps_the_accuracy(trained, cifar_test_dir, tmp_path, fmt, options,
                                                          package):
    pytest.importorskip(package, reason=f"{package} is not installed")
    from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter

    artifact = tmp_path / f"{trained.name}{get_exporter(fmt).suffix}"
    export_model(trained.model, fmt, artifact, ExportOptions(**options))
    torch_report = evaluate(trained.model, cifar_test_dir, limit=FORMAT_SUBSET, batch_size=100)
    report = evaluate(artifact, cifar_test_dir, limit=FORMAT_SUBSET, batch_size=100 if fmt == "ort" else 1,
                      reference=trained.model)
    assert report.count == torch_report.count == FORMAT_SUBSET
    assert abs(report.top1 - torch_report.top1) <= 0.5, (report.summary(), torch_report.summary())
    assert report.agreement >= 98.0 and report.top1 > TRAINED_MIN_TOP1
