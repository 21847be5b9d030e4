"""Core ML without coremltools: the exact 1/std folding of the image input (pure PyTorch) and the options
and dependency errors raised before coremltools is needed."""

import sys

import pytest
import torch

from lsnet_deploy.constants import IMAGENET_MEAN, IMAGENET_STD
from lsnet_deploy.exporters.coreml_format import fold_input_scale
from lsnet_deploy.models import load_model
from lsnet_deploy.reparam import reparameterize

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]


def test_folding_one_over_std_into_the_first_conv_is_exact_at_the_borders():
    model = reparameterize(load_model(TINY))
    folded = fold_input_scale(model, 1 / torch.tensor(IMAGENET_STD))
    pixels = torch.randint(0, 256, (2, 3, 128, 128)).float()
    centred = pixels / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)  # what the image input computes
    with torch.no_grad():
        expected = model(centred / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        got = folded(centred)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("args, fragment", [
    (["--dynamic"], "does not accept --dynamic"),
    (["--opset", "18"], "--format coreml does not accept --opset"),
    (["--int8", "--half", "--calib", "."], "--half and --int8 are exclusive"),
    (["--dla-core", "0"], "--format coreml does not accept --dla-core"),
    (["--target", "iOS14"], "too old for ML programs"),
    (["--target", "android13"], "is not a Core ML deployment target"),
    (["--batch", "2"], "use --tensor-input for --batch 2"),
])
def test_options_core_ml_does_not_take_exit_2(tmp_path, args, fragment):
    result = invoke("--format", "coreml", "--weights", TINY, "-o", tmp_path / "x.mlpackage", *args)
    assert result.exit_code == 2, result.output
    assert fragment in error_line(result)
    assert not list(tmp_path.iterdir())


def test_missing_coremltools_names_the_pip_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # importing it now raises ImportError
    result = invoke("--format", "coreml", "--weights", TINY, "-o", tmp_path / "x.mlpackage")
    assert result.exit_code == 1, result.output
    assert 'pip install "lsnet-deploy[coreml]"' in error_line(result)
    assert not list(tmp_path.iterdir())
