"""The recipe a model was trained with reaches every format: its artifacts score what PyTorch scores with it.

tools/fixtures/train_cifar10.py trains on whole 32-px CIFAR-10 pictures (random resized crops of 35-100% of
the picture, centres within the picture), upsampled bicubically to the input size and normalized with
ImageNet mean/std: at test time that is bicubic, crop 1.0, ImageNet mean/std. The committed fixture's
training args do not record it (the trainer evaluated with timm's ImageNet recipe, crop 0.9: see its card),
so these tests save a copy whose args do, as a training script that records its recipe would.

On the committed pictures the two recipes give top-1 some points apart, so an artifact or gate that
quietly fell back to timm's recipe would fail here.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from lsnet_deploy.accuracy import evaluate
from lsnet_deploy.artifact_metadata import read_artifact_metadata
from lsnet_deploy.models import load_model
from lsnet_deploy.preprocess import Preprocessing
from lsnet_deploy.recipe import DEFAULT_RECIPE, Recipe, apply_recipe

#: bicubic upsampling of the whole picture, ImageNet statistics: what the fixture saw in training
TRAINING_RECIPE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bicubic",
                   "crop_pct": 1.0}
SUBSET = 500  # 50 per class of the committed 1,000 pictures
#: an artifact's top-1 may differ from PyTorch's by this many points (2 of 500 pictures; float rounding only)
TOLERANCE = 0.4
GATE_PER_CLASS = 20  # the --data gate's folder: 200 pictures
FORMATS = [
    pytest.param("onnx", "onnxruntime", id="onnx"),
    pytest.param("ort", "onnxruntime", id="ort"),
    pytest.param("litert", "ai_edge_litert", id="litert", marks=pytest.mark.slow),
    pytest.param("executorch", "executorch.runtime", id="executorch", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def recipe_checkpoint(tmp_path_factory, fixture_checkpoint):
    """The small fixture, its training args recording the recipe it was trained with."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        saved = torch.load(fixture_checkpoint, map_location="cpu", weights_only=True)
    saved["args"] = argparse.Namespace(**{**vars(saved["args"]), **TRAINING_RECIPE})
    path = tmp_path_factory.mktemp("recipe") / "cifar_small_recipe.pth"
    torch.save(saved, path)
    return path


@pytest.fixture(scope="module")
def recipe_model(recipe_checkpoint):
    return load_model(recipe_checkpoint)


@pytest.fixture(scope="module")
def pytorch_report(recipe_model, cifar_test_dir):
    return evaluate(recipe_model, cifar_test_dir, limit=SUBSET, batch_size=100, per_class=False)


def test_the_recipe_is_read_from_the_training_args_and_changes_the_accuracy(recipe_model, pytorch_report,
                                                                            cifar_model, cifar_test_dir):
    assert recipe_model.recipe == Recipe(**TRAINING_RECIPE)
    assert apply_recipe(recipe_model) == "from the checkpoint's training args"
    assert cifar_model.recipe == DEFAULT_RECIPE  # the committed fixture records none
    timm_recipe = evaluate(cifar_model, cifar_test_dir, limit=SUBSET, batch_size=100, per_class=False)
    # the two recipes must score apart, or the format tests below could not tell them apart
    assert abs(timm_recipe.top1 - pytorch_report.top1) > 2 * TOLERANCE, (timm_recipe.top1, pytorch_report.top1)


@pytest.mark.parametrize("fmt, package", FORMATS)
def test_every_format_scores_what_pytorch_scores_with_the_training_recipe(fmt, package, recipe_model, pytorch_report,
                                                                         cifar_test_dir, tmp_path):
    pytest.importorskip(package, reason=f"{package} is not installed")
    from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter

    artifact = tmp_path / f"cifar_small{get_exporter(fmt).suffix}"
    export_model(recipe_model, fmt, artifact, ExportOptions())
    meta = read_artifact_metadata(artifact).fields
    assert Preprocessing.from_metadata(meta).recipe == recipe_model.recipe  # the metadata round-trips it
    report = evaluate(artifact, cifar_test_dir, limit=SUBSET, batch_size=100 if fmt in ("onnx", "ort") else 1,
                      per_class=False)
    assert report.count == pytorch_report.count == SUBSET
    assert abs(report.top1 - pytorch_report.top1) <= TOLERANCE, (fmt, report.top1, pytorch_report.top1)


def test_the_data_gate_and_int8_calibration_follow_the_recipe(recipe_model, make_folder, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from lsnet_deploy.exporters import ExportOptions, export_model
    from lsnet_deploy.exporters.calibration import preprocessing_for

    from .conftest import CLASSES

    folder = make_folder({name: (name, GATE_PER_CLASS) for name in CLASSES})
    result = export_model(recipe_model, "onnx", tmp_path / "gated.onnx", ExportOptions(data=folder, max_drop=1.0))
    gate = result.details["accuracy"]
    expected = evaluate(recipe_model, folder, batch_size=100, per_class=False)
    assert gate["pytorch"]["top1"] == pytest.approx(expected.top1, abs=1e-9)  # measured with the model's recipe
    assert abs(gate["artifact"]["top1"] - gate["pytorch"]["top1"]) <= 1.0  # 2 of 200 pictures
    # int8 calibration and its held-out check preprocess as the metadata says: the model's recipe
    assert preprocessing_for(result.metadata) == Preprocessing.for_model(recipe_model.recipe, recipe_model.img_size)
