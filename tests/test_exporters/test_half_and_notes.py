"""``--half`` means float16 in every format that takes it (Core ML's float16 default says why), and a
backbone's summary names its attention-bias mode."""

from __future__ import annotations

import json

import pytest
import torch

from lsnet_deploy.errors import ValidationError
from lsnet_deploy.exporters import ExportOptions, check_export, export_model
from lsnet_deploy.exporters.pipeline import BIAS_MODE_NOTES
from lsnet_deploy.exporters.registry import exporter_classes
from lsnet_deploy.exporters.validation import RANDOM_INIT_FLOAT16_HINT
from lsnet_deploy.gates import DRIFT_HINTS
from lsnet_deploy.models import create_model

from ..conftest import SMALL_BACKBONE, TRAINED_FIXTURES, invoke_export, load_trained

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
    assert result.bias_mode is None and result.to_dict()["bias_mode"] is None  # a classifier: no bias note


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


def _near_zero_logits_model():
    """A small random-init LSNet whose logits are about 1e-6 (a random head, scaled): float16 cannot hold
    them to 2e-2, the drift random-init LSNet-S showed on ExecuTorch (2.09e-2) in its extreme form."""
    model = create_model("lsnet", **SMALL_BACKBONE, img_size=64, num_classes=10).eval()
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.mul_(1e-4)
    return model


def test_float16_drift_of_random_weights_says_what_helps(tmp_path):
    """The refusal named another --ska form, which does not help near-zero logits; it now says why and what does."""
    model = _near_zero_logits_model()
    with pytest.raises(ValidationError) as refused:
        export_model(model, "onnx", tmp_path / "r.onnx", ExportOptions(half=True))
    assert RANDOM_INIT_FLOAT16_HINT in str(refused.value) and DRIFT_HINTS["float16"] not in str(refused.value)
    assert not (tmp_path / "r.onnx").exists()
    model.checkpoint_sha256 = "0" * 64  # the same drift from a checkpoint keeps the format's own hint
    with pytest.raises(ValidationError) as refused:
        export_model(model, "onnx", tmp_path / "c.onnx", ExportOptions(half=True))
    assert RANDOM_INIT_FLOAT16_HINT not in str(refused.value) and DRIFT_HINTS["float16"] in str(refused.value)
