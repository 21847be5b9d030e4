"""The XNNPACK rewrites (pure PyTorch) and the ExecuTorch options checked before any ExecuTorch import.

These run whether ExecuTorch is installed or not: the rewrites are exact PyTorch module swaps, and the
option and dependency errors come before ExecuTorch is needed.
"""

import sys

import pytest
import torch
from torch import nn

from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, load_model
from lsnet_deploy.reparam import reparameterize

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]


def randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and GroupNorm affines: defaults hide folding mistakes."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=gen))
        elif isinstance(m, nn.GroupNorm):
            m.weight.data.copy_(torch.randn(m.num_channels, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_channels, generator=gen))
    return model.eval()


@pytest.mark.parametrize("form", EXPORTABLE_SKA_FORMS)
def test_rewrites_compute_the_same_function(form):
    model = randomize_norms(load_model(TINY))
    fused = reparameterize(model).set_ska(form)
    rewritten = xnnpack_friendly(fused, form)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected, got = fused(x), rewritten(x)
    # random norms amplify float rounding through the depth to ~2e-5 of the output scale; an algebra
    # mistake shows up at the scale itself
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.abs().max()))
    assert not any(isinstance(m, nn.GroupNorm) for m in rewritten.modules())


def test_rewrites_on_a_rectangular_input():
    model = randomize_norms(load_model(TINY, img_size=(96, 160)))
    fused = reparameterize(model).set_ska("tap_slices")
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected, got = fused(x), xnnpack_friendly(fused, "tap_slices")(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.abs().max()))


def test_rewrites_leave_the_input_model_alone():
    model = reparameterize(randomize_norms(load_model(TINY)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xnnpack_friendly(model, "tap_slices")
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("args, fragment", [
    (["--dynamic"], "does not accept --dynamic"),
    (["--tensor-input"], "does not accept --tensor-input"),
    (["--target", "iOS16"], "does not accept --target"),
    (["--opset", "18"], "does not accept --opset"),
    (["--workspace", "2"], "does not accept --workspace"),
    (["--max-batch", "4"], "does not accept --max-batch"),
])
def test_options_executorch_does_not_take_exit_2(tmp_path, args, fragment):
    result = invoke("--format", "executorch", "--weights", TINY, "-o", tmp_path / "x.pte", *args)
    assert result.exit_code == 2, result.output
    assert fragment in error_line(result) and "--format executorch" in error_line(result)
    assert not list(tmp_path.iterdir())


def test_missing_executorch_names_the_pip_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.exir", None)  # importing it now raises ImportError
    result = invoke("--format", "executorch", "--weights", TINY, "-o", tmp_path / "x.pte")
    assert result.exit_code == 1, result.output
    assert 'pip install "lsnet-deploy[executorch]"' in error_line(result)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("grid", [(7, 7), (4, 6), (1, 5)])
def test_tap_slice_block_on_its_grid_and_off_it(grid):
    """The masked-rows path (the block's own grid) and the padded-rows path (any other grid) both match
    the reference LS block."""
    from lsnet_deploy.exporters.xnnpack_forms import TapSliceLSConv
    from lsnet_deploy.models.lsnet import LSConv

    torch.manual_seed(0)
    block = randomize_norms(LSConv(64, resolution=grid))
    for m in block.modules():
        if isinstance(m, nn.Conv2d):  # non-zero biases everywhere, so a wrong edge tap shows
            m.bias = nn.Parameter(0.5 * torch.randn(m.out_channels)) if m.bias is None else m.bias
    block = reparameterize(block.eval())
    rewritten = TapSliceLSConv(block).eval()
    assert rewritten.grid == grid
    for size in (grid, (grid[0] + 2, grid[1] + 1)):
        x = torch.randn(2, 64, *size)
        with torch.no_grad():
            expected, got = block(x), rewritten(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=2e-5 * float(expected.abs().max()))


def test_large_depthwise_kernel_split_is_exact():
    from lsnet_deploy.exporters.xnnpack_forms import DilatedRowsDepthwise

    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 7, padding=3, groups=16).eval()
    split = DilatedRowsDepthwise(conv).eval()
    assert [tuple(p.kernel_size) for p in split.parts] == [(3, 7), (2, 7), (2, 7)]
    assert all(p.kernel_size[0] * p.kernel_size[1] <= 25 for p in split.parts)
    for size in ((14, 14), (7, 7), (3, 5), (1, 1)):
        x = torch.randn(2, 16, *size)
        with torch.no_grad():
            torch.testing.assert_close(split(x), conv(x), rtol=0, atol=1e-5)
    assert not DilatedRowsDepthwise.applies_to(nn.Conv2d(16, 16, 5, padding=2, groups=16))
    assert not DilatedRowsDepthwise.applies_to(nn.Conv2d(16, 16, 7, padding=3))
