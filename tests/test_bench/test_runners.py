"""The runner contract the harness relies on, for every runtime installed here, through the harness's
own loading path (``prepare``): activate, infer a batch of the declared shape, synchronize, describe
itself, deactivate. Runtimes that cannot run here skip with the reason."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from lsnet_deploy.bench.harness import declared_input, first_inference, prepare
from lsnet_deploy.bench.plan import BenchPlan, CandidateSpec
from lsnet_deploy.errors import RuntimeUnavailableError, UsageError
from ..conftest import FOREIGN


def check_contract(item, classes: int):
    runner = item.runner
    assert runner.active
    out = runner.infer(item.input)
    runner.synchronize()
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (item.input.shape[0], classes)
    assert np.all(np.isfinite(out))
    again = runner.infer(item.input)
    np.testing.assert_allclose(again, out, rtol=1e-5, atol=1e-6)   # same input, same answer
    info = runner.info()
    assert info["runtime"] == item.spec.runtime and info.get("runtime_version")
    first_inference(item)
    assert item.output_shape == [item.input.shape[0], classes]
    runner.deactivate()
    runner.deactivate()                                             # idempotent
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(item.input)


def test_onnxruntime(tiny_onnx, tmp_path):
    spec = CandidateSpec("tiny", "ort", path=str(tiny_onnx))
    item = prepare(spec, BenchPlan([spec], threads=1), None, tmp_path)
    assert item.input.shape == (1, 3, 128, 128) and item.input.dtype == np.float32
    assert declared_input(item.runner) == ([1, 3, 128, 128], "float32")
    assert item.metadata["num_classes"] == 10 and item.metadata["input_size"] == [128, 128]
    assert item.runner.info()["threads"] == 1 and item.runner.info()["spinning"] is False
    check_contract(item, 10)


def test_executorch(tmp_path):
    pytest.importorskip("executorch.runtime", reason="ExecuTorch is not installed")
    spec = CandidateSpec("foreign", "executorch", path=str(FOREIGN / "foreign_cnn.pte"))
    item = prepare(spec, BenchPlan([spec]), None, tmp_path)
    assert item.input.shape == (1, 3, 224, 224)
    assert declared_input(item.runner) == ([1, 3, 224, 224], "float32")
    check_contract(item, 1000)


def test_torch_model(tiny_checkpoint_path, tmp_path):
    spec = CandidateSpec("tiny", "torch", weights=str(tiny_checkpoint_path))
    item = prepare(spec, BenchPlan([spec], threads=1), 2, tmp_path)
    assert item.input.shape == (2, 3, 128, 128)
    assert item.source["weights_sha256"] != "random-init" and item.source["fused"] is True
    check_contract(item, 10)


def test_torch_model_on_cuda_needs_a_gpu(tiny_checkpoint_path, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = CandidateSpec("tiny", "torch", weights=str(tiny_checkpoint_path))
    with pytest.raises(RuntimeUnavailableError, match="tiny: cannot run here: CUDA is not available"):
        prepare(spec, BenchPlan([spec], device="cuda"), None, tmp_path)


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts only on macOS")
def test_coreml(tiny_checkpoint_path, tmp_path):  # pragma: no cover - runs on macOS only
    from lsnet_deploy.exporters import export_model
    from lsnet_deploy.models import load_model

    try:
        path = export_model(load_model(tiny_checkpoint_path), "coreml", tmp_path / "tiny.mlpackage").path
    except UsageError as exc:
        pytest.skip(f"no Core ML exporter: {exc}")
    spec = CandidateSpec("tiny", "coreml", path=str(path))
    check_contract(prepare(spec, BenchPlan([spec]), None, tmp_path), 10)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed here")
def test_tensorrt(tiny_checkpoint_path, tmp_path):  # pragma: no cover - needs TensorRT and a GPU
    from lsnet_deploy.exporters import export_model
    from lsnet_deploy.models import load_model

    path = export_model(load_model(tiny_checkpoint_path), "tensorrt", tmp_path / "tiny.engine").path
    spec = CandidateSpec("tiny", "tensorrt", path=str(path))
    check_contract(prepare(spec, BenchPlan([spec], device="cuda:0"), None, tmp_path), 10)


@pytest.mark.parametrize("runtime", ["coreml", "tensorrt"])
def test_runtimes_missing_here_fail_with_one_line(tiny_onnx, tmp_path, runtime):
    """Where Core ML or TensorRT cannot run, the harness says so in one line naming the candidate."""
    if runtime == "coreml" and sys.platform == "darwin":
        pytest.skip("Core ML can run here")
    if runtime == "tensorrt" and importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    spec = CandidateSpec("tiny", runtime, path=str(tiny_onnx))
    with pytest.raises((RuntimeUnavailableError, UsageError)) as caught:
        prepare(spec, BenchPlan([spec]), None, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("tiny")
    if isinstance(caught.value, RuntimeUnavailableError):
        assert "cannot run here" in message
