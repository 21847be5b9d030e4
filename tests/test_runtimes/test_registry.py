"""The runtime registry: every runner declares its facts, lookups by name and by file read them, and the
loaded artifacts report their input as Polygraphy's ``get_input_metadata`` does."""

from __future__ import annotations

import pytest

from lsnet_deploy.artifact_metadata import read_embedded_metadata
from lsnet_deploy.errors import UsageError
from lsnet_deploy.runtimes import (Runner, artifact_suffixes, canonical_runtime, get_runtime, runner_for,
                                   runtime_for_path, runtime_for_suffix, runtimes)


def test_every_runtime_declares_its_facts():
    registered = runtimes()
    assert list(registered) == ["torch", "ort", "executorch", "coreml", "tensorrt", "litert", "qnn", "ort-arm64",
                                "litert-arm64", "litert-arm64-fp16", "executorch-arm64"]
    for name, cls in registered.items():
        assert issubclass(cls, Runner) and cls.name == name and cls.title
        assert isinstance(cls.suffixes, tuple) and all(s.startswith(".") and s == s.lower() for s in cls.suffixes)
        assert isinstance(cls.aliases, tuple)
        if cls.suffixes:  # runtimes of files come from an extra; torch is a core dependency
            assert isinstance(cls.extra, str) and cls.extra
        for alias in (name, *cls.aliases):
            assert canonical_runtime(alias) == name and canonical_runtime(alias.upper()) == name
            assert get_runtime(alias) is cls
    assert registered["torch"].suffixes == ()
    assert set(registered["ort"].suffixes) == {".onnx", ".ort"}


def test_unknown_runtime_names_get_a_suggestion():
    with pytest.raises(UsageError, match=r"unknown runtime 'onnxrt'; did you mean 'onnx'\?") as caught:
        get_runtime("onnxrt")
    assert "\n" not in str(caught.value) and "tensorrt" in str(caught.value)
    with pytest.raises(UsageError, match="unknown runtime 'zzzz' \\(choose from"):
        canonical_runtime("zzzz")


@pytest.mark.parametrize("suffix", artifact_suffixes())
def test_every_suffix_finds_its_runtime(suffix, tmp_path):
    cls = runtime_for_suffix(suffix)
    assert suffix in cls.suffixes
    assert runtime_for_path(tmp_path / f"model{suffix}") == cls.name
    assert runtime_for_path(tmp_path / f"MODEL{suffix.upper()}") == cls.name
    runner = runner_for(tmp_path / f"model{suffix}", threads=1, device=None)  # built, not loaded
    assert type(runner) is cls and not runner.active and runner.runtime == cls.name


def test_unknown_suffixes_and_model_runtimes_are_refused(tmp_path):
    with pytest.raises(UsageError, match=r"cannot tell the runtime of .*model\.bin2 from its suffix; pass --runtime"):
        runtime_for_path(tmp_path / "model.bin2")
    assert runtime_for_suffix(".bin2") is None
    assert read_embedded_metadata(tmp_path / "model.bin2") is None
    with pytest.raises(UsageError, match="runs PyTorch models, not files; use --model"):
        runner_for(tmp_path / "model.onnx", "pytorch")


def test_device_rules():
    ort, et, coreml, trt, torch_ = (get_runtime(n) for n in ("ort", "executorch", "coreml", "tensorrt", "torch"))
    assert ort.resolve_device(None, None) == "cpu" and ort.resolve_device("cuda:1", None) == "cuda:1"
    assert ort.resolve_device(None, "CUDAExecutionProvider") == "cuda" and ort.resolve_device("cuda", "cpu") == "cpu"
    assert ort.from_options("m.onnx", device="cuda:1").provider == "CUDAExecutionProvider"
    assert et.resolve_device(None) == "cpu" and et.resolve_device("cpu") == "cpu"
    with pytest.raises(UsageError, match="ExecuTorch \\(XNNPACK\\) runs on the CPU; drop --device cuda"):
        et.resolve_device("cuda")
    assert coreml.resolve_device("cuda") == "apple"
    assert trt.resolve_device(None) == "cuda:0" and trt.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(UsageError, match="TensorRT runs on a CUDA GPU"):
        trt.resolve_device("cpu")
    assert torch_.resolve_device("cpu") == "cpu"


def test_onnx_input_metadata(tiny_onnx):
    with runner_for(tiny_onnx, threads=1) as runner:
        shape, dtype = runner.input_metadata()
    assert shape in ([1, 3, 128, 128], [None, 3, 128, 128]) and dtype == "float32"
    assert runner.input_metadata() is None  # nothing loaded, nothing declared


def test_executorch_input_metadata(tiny_pte):
    pytest.importorskip("executorch.runtime", reason="executorch is not installed")
    assert get_runtime("et").read_metadata(tiny_pte)["input_size"] == "[128, 128]"
    with runner_for(tiny_pte) as runner:
        shape, dtype = runner.input_metadata()
    assert shape in ([1, 3, 128, 128], [None, 3, 128, 128]) and dtype == "float32"


def test_torch_input_metadata_comes_from_the_model(tiny_model):
    with get_runtime("torch")(tiny_model) as runner:
        assert runner.input_metadata() == ([None, 3, 128, 128], "float32")
