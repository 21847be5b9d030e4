"""lsnet-export --format executorch: XNNPACK-lowered .pte programs, run here for real through ExecuTorch.

Each export of the tiny checkpoint takes tens of seconds (ExecuTorch's lowering passes), so the module
shares its exports; one full-size lsnet_t export (about a minute) checks that nothing is left outside
the delegate on the real network.
"""

import json

import numpy as np
import pytest

pytest.importorskip("executorch.runtime", reason="ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")

from lsnet_deploy.exporters import ExportOptions, export_model  # noqa: E402
from lsnet_deploy.exporters.context import Written  # noqa: E402
from lsnet_deploy.exporters.executorch_format import METADATA_METHOD  # noqa: E402
from lsnet_deploy.models import create_model, load_model  # noqa: E402
from lsnet_deploy.runtimes.executorch_runner import ExecuTorchRunner  # noqa: E402

from ..conftest import conformance_case, error_line, invoke_export as invoke  # noqa: E402

TINY, TINY_X, TINY_Y = conformance_case("tiny")
slow = pytest.mark.slow


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


@pytest.fixture(scope="module")
def vulkan_export(tmp_path_factory):
    """--accelerator vulkan: the tiny model lowered to ExecuTorch's Vulkan backend."""
    pytest.importorskip("executorch.backends.vulkan.partitioner.vulkan_partitioner",
                        reason="ExecuTorch's Vulkan partitioner is not installed")
    path = tmp_path_factory.mktemp("vulkan") / "tiny_vulkan.pte"
    return path, export_model(load_model(TINY), "executorch", path, ExportOptions(accelerator="vulkan"))


def test_vulkan_export_is_one_delegate_and_says_it_was_not_run(vulkan_export):
    from lsnet_deploy.exporters.executorch_format import registered_backends

    path, result = vulkan_export
    assert result.ska_form == "tap_slices" and result.details["backend"] == "vulkan"
    assert (result.details["delegate_calls"], result.details["ops_outside_delegate"]) == (1, 0)
    assert result.details["delegated_ops"] > 100
    if "VulkanBackend" in registered_backends():
        assert result.validation is not None and result.validation.passed
        return
    # no Vulkan backend in this ExecuTorch runtime: written and checked for delegation, not validated
    assert result.validation is None and "has no VulkanBackend" in result.validation_skipped
    assert "validate it on a phone" in result.validation_skipped


def test_vulkan_program_loads_but_its_forward_needs_the_vulkan_backend(vulkan_export):
    from executorch.runtime import Runtime

    from lsnet_deploy.exporters.executorch_format import registered_backends

    path, result = vulkan_export
    program = Runtime.get().load_program(str(path))
    (text,) = program.load_method(METADATA_METHOD).execute([])  # the metadata needs no backend
    assert json.loads(text) == result.metadata and json.loads(result.metadata["accelerator"])["name"] == "vulkan"
    if "VulkanBackend" not in registered_backends():
        with pytest.raises(RuntimeError, match="Failed to load method forward"):
            program.load_method("forward")


@slow
def test_lsnet_t_is_one_vulkan_delegate(tmp_path):
    pytest.importorskip("executorch.backends.vulkan.partitioner.vulkan_partitioner",
                        reason="ExecuTorch's Vulkan partitioner is not installed")
    result = export_model(create_model("lsnet_t").eval(), "executorch", tmp_path / "lsnet_t_vulkan.pte",
                          ExportOptions(accelerator="vulkan", validate=False))
    assert (result.details["delegate_calls"], result.details["ops_outside_delegate"]) == (1, 0)
