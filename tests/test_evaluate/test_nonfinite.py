"""NaN or infinite weights and outputs are named as such (issue 25), never reported as a drift with
"cosine 1.000000" and the advice to try another --ska form."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lsnet_deploy.errors import CheckpointError, ValidationError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.verify import compare_outputs

from ..conftest import error_line, invoke_export


def test_nan_outputs_are_not_a_perfect_cosine():
    logits = np.random.default_rng(0).normal(size=(4, 10))
    broken = compare_outputs(np.full_like(logits, np.nan), np.full_like(logits, np.nan))
    assert not broken.passed and broken.nonfinite == "reference"
    assert "PyTorch outputs NaN or inf" in broken.summary() and "cosine 1.0" not in broken.summary()
    assert "fix the checkpoint" in broken.cause
    overflow = compare_outputs(logits, np.where(logits > 1, np.inf, logits))
    assert not overflow.passed and overflow.nonfinite == "artifact" and "overflow" in overflow.cause
    healthy = compare_outputs(logits, logits + 1e-6)
    assert healthy.passed and healthy.nonfinite is None and healthy.cause is None


def test_a_checkpoint_with_nan_weights_is_refused_at_load(tmp_path, cifar_model):
    state = copy.deepcopy(cifar_model.state_dict())
    state["blocks1.0.mixer.conv.bn.running_var"].fill_(float("nan"))
    state["head.l.weight"][0, 0] = float("inf")
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    from lsnet_deploy.models import load_model

    with pytest.raises(CheckpointError, match="NaN or infinite values in 2 tensors") as info:
        load_model(path, img_size=96)
    assert "head.l.weight" in str(info.value) and "diverged training run" in str(info.value)
    result = invoke_export("-w", path, "--imgsz", "96", "-o", tmp_path / "x.onnx")
    line = error_line(result)
    assert result.exit_code != 0 and "NaN or infinite" in line and "--ska" not in line
    assert not (tmp_path / "x.onnx").exists()


def test_an_nn_module_with_nan_weights_is_not_called_a_drift(tmp_path, cifar_model):
    model = copy.deepcopy(cifar_model)
    with torch.no_grad():
        model.head.l.weight.fill_(float("nan"))
    with pytest.raises(ValidationError) as info:
        export_model(model, "onnx", tmp_path / "x.onnx", ExportOptions())
    message = str(info.value)
    assert "PyTorch outputs NaN or inf" in message and "cosine 1.000000" not in message
    assert "fix the checkpoint" in message and "--ska" not in message
    assert not (tmp_path / "x.onnx").exists()
