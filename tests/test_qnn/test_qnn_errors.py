"""Bad input for the Snapdragon NPU paths: each one clear line, a non-zero exit, nothing written.

The option checks run before the model is loaded; the placement refusal needs the HTP compiler, so it
runs where onnxruntime-qnn is installed.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from lsnet_deploy.accelerators.qnn_socs import DEFAULT_SOC, SOCS, get_soc
from lsnet_deploy.accelerators.targets import TARGETS, get_target, targets_of
from lsnet_deploy.errors import UsageError

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]
needs_qnn = pytest.mark.skipif(importlib.util.find_spec("onnxruntime_qnn") is None,
                               reason="onnxruntime-qnn (the qnn extra) is not installed")


@pytest.mark.parametrize("args, fragment", [
    (["-f", "qnn", "--soc", "SM8660"], "unknown --soc 'SM8660'; did you mean 'SM8650'?"),
    (["-f", "onnx", "--accelerator", "hpt"], "unknown --accelerator 'hpt'; did you mean 'htp'?"),
    (["-f", "ort", "--accelerator", "htp"], "--format ort does not reach --accelerator htp"),
    (["-f", "onnx", "--soc", "SM8650"], "--format onnx does not accept --soc"),
    (["-f", "onnx", "--allow-fallback"], "--allow-fallback keeps operators an accelerator cannot take; add --accelerator"),
    (["-f", "qnn", "--allow-fallback"], "--format onnx --accelerator htp --allow-fallback"),
    (["-f", "qnn", "--accelerator", "nnapi"], "--format qnn targets the Snapdragon HTP only"),
    (["-f", "qnn", "--dynamic"], "--format qnn does not accept --dynamic"),
    (["-f", "onnx", "--accelerator", "htp", "--dynamic"], "--accelerator htp takes fixed shapes only; drop --dynamic"),
    (["-f", "qnn", "--int8"], "--int8 needs calibration images"),
])
def test_bad_options_exit_2_before_the_model_is_loaded(tmp_path, args, fragment):
    result = invoke(*args, "--weights", TINY, "-o", tmp_path / ("x.qnn.onnx" if "qnn" in args else "x.onnx"))
    assert result.exit_code == 2, result.output
    assert fragment in error_line(result)
    assert "loading" not in result.output
    assert not list(tmp_path.iterdir())


def test_an_output_named_for_qnn_is_refused_for_plain_onnx(tmp_path):
    result = invoke("-f", "onnx", "--weights", TINY, "-o", tmp_path / "m.qnn.onnx")
    assert result.exit_code == 2 and "use --format qnn for a .qnn.onnx file, or name it m.onnx" in error_line(result)


def test_the_missing_qnn_extra_names_the_pip_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # importing it now raises ImportError
    for args in (["-f", "qnn", "-o", tmp_path / "x.qnn.onnx"], ["-f", "onnx", "--accelerator", "htp", "-o",
                                                                 tmp_path / "x.onnx"]):
        result = invoke(*args, "--weights", TINY)
        assert result.exit_code == 1, result.output
        assert 'pip install "lsnet-deploy[qnn]"' in error_line(result)
    assert not list(tmp_path.iterdir())


def test_the_qnn_runtime_without_the_extra_names_the_pip_line(tmp_path, monkeypatch):
    from lsnet_deploy.errors import MissingDependencyError
    from lsnet_deploy.runtimes import runner_for

    model = tmp_path / "m.qnn.onnx"
    model.write_bytes(b"\x08\x07")  # never read: the extra is checked first
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)
    monkeypatch.setattr("lsnet_deploy.runtimes.qnn_runner.QnnRunner.read_metadata", classmethod(lambda cls, p: {}))
    with pytest.raises(MissingDependencyError, match=r'pip install "lsnet-deploy\[qnn\]"'):
        runner_for(model).activate()


@needs_qnn
@pytest.mark.parametrize("fmt, suffix", [pytest.param("onnx", ".onnx", marks=pytest.mark.slow), ("qnn", ".qnn.onnx")])
def test_a_model_the_htp_cannot_take_whole_is_refused_with_the_operators(tmp_path, fmt, suffix):
    # unfold_matmul leaves Gather, Transpose and Reshape nodes to the CPU on the HTP (measured)
    args = ["--accelerator", "htp"] if fmt == "onnx" else []
    result = invoke("-f", fmt, *args, "--ska", "unfold_matmul", "--weights", TINY, "-o", tmp_path / f"x{suffix}")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "cannot take the whole model" in line and "nothing was written" in line
    assert "Gather x" in line and "Transpose x" in line
    assert not list(tmp_path.iterdir())


@needs_qnn
@pytest.mark.slow
def test_allow_fallback_keeps_it_and_reports_what_falls_back(tmp_path):
    from lsnet_deploy.exporters import ExportOptions, export_model
    from lsnet_deploy.models import load_model
    from lsnet_deploy.runtimes import runner_for

    result = export_model(load_model(TINY), "onnx", tmp_path / "x.onnx",
                          ExportOptions(accelerator="htp", ska="unfold_matmul", allow_fallback=True))
    placement = result.details["placement"]
    assert not placement["whole"] and placement["partitions"] > 1
    assert set(placement["fallback_ops"]) == {"Gather", "Transpose", "Reshape"}
    assert placement["nodes_on_accelerator"] + sum(placement["fallback_ops"].values()) == placement["nodes_total"]
    assert result.details["accelerator_validation"]["passed"]  # ran on the emulator, CPU nodes on the CPU
    with runner_for(result.path, "qnn") as runner:  # the metadata lets the runtime fall back too
        assert runner.infer(conformance_case("tiny")[1][:1].numpy()).shape == (1, 10)


@needs_qnn
@pytest.mark.slow
def test_a_float16_drift_on_the_htp_is_refused_with_the_form_to_use(tmp_path):
    # hybrid's gathers on small grids compile whole but lose their numbers in the HTP's float16
    result = invoke("-f", "qnn", "--ska", "hybrid", "--weights", TINY, "-o", tmp_path / "x.qnn.onnx")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "drifts from PyTorch" in line and "use --ska tap_slices" in line
    assert not list(tmp_path.iterdir())


def test_the_soc_table():
    assert get_soc(None).name == DEFAULT_SOC == "SM8650" and get_soc("sm8550").htp_arch == 73
    assert {soc.htp_arch for soc in SOCS.values()} >= {69, 73, 75, 79}
    assert len({soc.soc_model for soc in SOCS.values()}) == len(SOCS)
    assert get_soc("SM8650").provider_options() == {"backend_type": "htp", "htp_arch": "75", "soc_model": "57"}
    with pytest.raises(UsageError, match="did you mean 'SM8750'"):
        get_soc("SM875")


def test_the_accelerator_table():
    assert get_target("QNN") is TARGETS["htp"] and TARGETS["htp"].formats == ("onnx", "qnn")
    assert [t.name for t in targets_of("executorch")] == ["xnnpack", "vulkan"]
    assert [t.name for t in targets_of("ort")] == ["nnapi", "coreml"]
    for target in TARGETS.values():
        module, function = target.probe.split(":")
        assert module.startswith("lsnet_deploy.accelerators.") and function.startswith("probe_")
        assert target.ska in (None, "tap_slices")


def test_help_lists_the_socs_and_accelerators():
    result = invoke("-h")
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    for soc in SOCS.values():
        assert f"{soc.name} ({soc.arch})" in text
    for name in TARGETS:
        assert name in text
    assert "--allow-fallback" in text and "--accelerator" in text
