"""``--half`` means float16 in every format that takes it (Core ML's float16 default says why), and a
backbone's summary names its attention-bias mode."""

from __future__ import annotations

import json

import pytest

from lsnet_deploy.exporters import ExportOptions, check_export, export_model
from lsnet_deploy.exporters.pipeline import BIAS_MODE_NOTES
from lsnet_deploy.exporters.registry import exporter_classes

from ..conftest import TRAINED_FIXTURES, invoke_export, load_trained

# the float16 tolerance every format is held to (lsnet_deploy/gates.py through compare_outputs)
FLOAT16_TOLERANCE = 2e-2


def test_every_mobile_and_server_format_takes_half():
    """ort took every option of onnx but --half, with no reason: the float16 graph converts like any other."""
    takes_half = {name for name, cls in exporter_classes().items() if "half" in cls.supported_options}
    assert {"onnx", "ort", "executorch", "litert"} <= takes_half
    plan = check_export("ort", ExportOptions(half=True))
    assert plan.options.precision == "float16"


def test_help_says_where_the_float16_default_comes_from():
    out = invoke_export("--help").output
    flat = " ".join(out.replace("│", " ").split())
    assert "Neural Engine" in flat and "--float32" in flat


@pytest.mark.slow
def test_ort_half_is_a_float16_ort_model_within_tolerance(tmp_path):
    model = load_trained("cifar_small")
    result = export_model(model, "ort", tmp_path / "small.ort", ExportOptions(half=True))
    assert result.precision == "float16" and json.loads(result.metadata["precision"]) == "float16"
    # validated: ONNX Runtime ran the .ort file (float32 in and out) against PyTorch
    assert result.validation is not None and result.validation.max_rel <= FLOAT16_TOLERANCE
    assert result.validation.top1_agreement == 1.0


def test_classifier_checkpoint_as_backbone_names_table_mode_and_matrix(tmp_path):
    """The issue's case: a classification checkpoint as a detector backbone takes ``table``; the summary and
    --json say so and point to --bias-mode matrix for the reference detection semantics."""
    out = tmp_path / "bb.onnx"
    result = invoke_export("--task", "features", "-w", TRAINED_FIXTURES / "cifar_small.pth", "--out-indices", "3",
                           "--no-validate", "--no-simplify", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    reply = json.loads(result.output.strip().splitlines()[-1])
    assert reply["bias_mode"] == "table"
    assert BIAS_MODE_NOTES["table"] in reply["notes"] and "--bias-mode matrix" in BIAS_MODE_NOTES["table"]
    classifier = invoke_export("-w", TRAINED_FIXTURES / "cifar_small.pth", "--no-validate", "--no-simplify",
                               "-o", tmp_path / "cls.onnx", "--json")
    assert classifier.exit_code == 0, classifier.output
    assert json.loads(classifier.output.strip().splitlines()[-1])["bias_mode"] is None
