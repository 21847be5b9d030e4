"""lsnet-export --format executorch: XNNPACK-lowered .pte programs, run here for real through ExecuTorch.

Each export of the tiny checkpoint takes tens of seconds (ExecuTorch's lowering passes), so the module
shares its exports; one full-size lsnet_t export (about a minute) checks that nothing is left outside
the delegate on the real network.
"""

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("executorch.runtime", reason="ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")

from lsnet_deploy.exporters.base import Written
from lsnet_deploy.exporters import ExportOptions, export_model  # noqa: E402
from lsnet_deploy.exporters.executorch_format import METADATA_METHOD  # noqa: E402
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly  # noqa: E402
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model, load_model  # noqa: E402
from lsnet_deploy.reparam import reparameterize  # noqa: E402
from lsnet_deploy.runtimes.executorch_runner import ExecuTorchRunner  # noqa: E402

from ..conftest import conformance_case, error_line, invoke_export as invoke  # noqa: E402

TINY, TINY_X, TINY_Y = conformance_case("tiny")
slow = pytest.mark.slow


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


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """The default export (float32, --ska auto) at the conformance batch size."""
    path = tmp_path_factory.mktemp("executorch") / "tiny.pte"
    result = export_model(load_model(TINY), "executorch", path, ExportOptions(batch=TINY_X.shape[0]))
    return path, result


def test_default_export_is_one_delegate_and_reproduces_the_reference(tiny_export):
    path, result = tiny_export
    assert result.ska_form == "tap_slices" and result.precision == "float32"
    assert result.details["ops_outside_delegate"] == 0, result.details["outside_ops"]
    assert result.details["delegate_calls"] == 1 and result.details["delegated_ops"] > 100
    assert result.validation.passed and result.validation.max_rel <= 1e-3
    with ExecuTorchRunner(path) as pte:
        got = pte.infer(TINY_X.numpy())
    # the reference implementation's own output, not just our PyTorch model's
    np.testing.assert_allclose(got, TINY_Y.numpy(), rtol=0, atol=1e-3 * float(TINY_Y.abs().max()))


def test_metadata_rides_in_a_constant_method(tiny_export):
    from executorch.runtime import Runtime

    path, result = tiny_export
    program = Runtime.get().load_program(str(path))
    assert program.method_names == {"forward", METADATA_METHOD}
    (text,) = program.load_method(METADATA_METHOD).execute([])
    stored = json.loads(text)
    assert stored == result.metadata
    assert json.loads(stored["input_shape"]) == [2, 3, 128, 128] and json.loads(stored["ska_form"]) == "tap_slices"


def test_half_keeps_float32_io_and_only_the_casts_outside(tmp_path):
    path = tmp_path / "tiny16.pte"
    result = export_model(load_model(TINY), "executorch", path, ExportOptions(half=True))
    assert result.precision == "float16" and result.validation.passed
    assert result.details["delegate_calls"] == 1
    assert set(result.details["outside_ops"]) == {"dim_order_ops._to_dim_order_copy.default"}
    assert result.details["ops_outside_delegate"] == 2  # float32 -> float16 in, float16 -> float32 out
    with ExecuTorchRunner(path) as pte:
        got = pte.infer(TINY_X[:1].numpy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, TINY_Y[:1].numpy(), rtol=0, atol=2e-2 * float(TINY_Y.abs().max()))


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
    (["--int8", "--calib", "."], "does not accept --calib, --int8"),
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


def test_lowering_failure_leaves_the_previous_file(tmp_path, monkeypatch):
    import executorch.exir

    target = tmp_path / "model.pte"
    target.write_bytes(b"previous artifact")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated lowering crash\nsecond line")

    monkeypatch.setattr(executorch.exir, "to_edge_transform_and_lower", broken)
    result = invoke("--format", "executorch", "--weights", TINY, "-o", target)
    assert result.exit_code == 1, result.output
    assert "simulated lowering crash" in error_line(result) and "second line" not in result.output
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pte"]


def test_drifting_program_fails_validation_and_keeps_the_previous_file(tmp_path, monkeypatch, tiny_export):
    from lsnet_deploy.exporters.executorch_format import ExecuTorchExporter

    source, _ = tiny_export
    target = tmp_path / "model.pte"
    target.write_bytes(b"previous artifact")

    def write_prebuilt(self, model, example, path, context):
        path.write_bytes(source.read_bytes())  # skip the lowering: the same program, already built
        return Written()

    monkeypatch.setattr(ExecuTorchExporter, "write", write_prebuilt)
    original = ExecuTorchRunner._infer
    monkeypatch.setattr(ExecuTorchRunner, "_infer", lambda self, x: original(self, x) + 0.05)
    result = invoke("--format", "executorch", "--weights", TINY, "--batch", 2, "-o", target)
    assert result.exit_code == 1, result.output
    assert "drifts from PyTorch" in error_line(result)
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pte"]


@slow
def test_lsnet_t_is_fully_delegated(tmp_path):
    result = export_model(create_model("lsnet_t").eval(), "executorch", tmp_path / "lsnet_t.pte")
    assert result.details["ops_outside_delegate"] == 0 and result.details["delegate_calls"] == 1
    assert result.validation.passed
