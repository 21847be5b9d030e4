"""lsnet-export --format litert: .tflite flatbuffers from litert-torch, run here for real with LiteRT (XNNPACK).

A tiny export converts in about ten seconds, so the module shares its float32 and float16 exports.
The missing-extra case runs without converting anything.
"""

import json
import sys

import numpy as np
import pytest

from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.metadata import schema_problems
from lsnet_deploy.models import load_model

from ..conftest import FOREIGN, conformance_case, error_line, invoke_export as invoke

TINY, TINY_X, TINY_Y = conformance_case("tiny")


def _litert():
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install \"lsnet-deploy[litert]\")")
    pytest.importorskip("ai_edge_litert.interpreter",
                        reason="ai-edge-litert is not installed (pip install \"lsnet-deploy[litert]\")")
    # until exporters/__init__.py and runtimes/__init__.py import them, importing registers both
    from lsnet_deploy.exporters import litert_format  # noqa: F401
    from lsnet_deploy.runtimes import litert_runner

    return litert_runner.LiteRTRunner


@pytest.fixture(scope="module")
def runner_class():
    return _litert()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, runner_class):
    path = tmp_path_factory.mktemp("litert") / "tiny.tflite"
    return path, export_model(load_model(TINY), "litert", path, ExportOptions(batch=TINY_X.shape[0]))


def test_float32_reproduces_the_reference(tiny_export, runner_class):
    path, result = tiny_export
    assert result.precision == "float32" and result.validation.passed
    with runner_class(path, threads=2) as runner:
        got = runner.infer(TINY_X.numpy())
        assert runner.input_metadata() == ([2, 3, 128, 128], "float32")
        assert runner.info()["delegate"] == "xnnpack" and runner.info()["threads"] == 2
    np.testing.assert_allclose(got, TINY_Y.numpy(), rtol=0, atol=1e-3 * float(TINY_Y.abs().max()))


def test_export_reports_one_xnnpack_partition(tiny_export, runner_class):
    _, result = tiny_export
    assert result.details["delegate_partitions"] == 1 and result.details["ops_outside_delegate"] == 0
    with runner_class(tiny_export[0], threads=1, xnnpack=False) as runner:  # TFLite's own kernels only
        plain = runner.delegation()
    assert plain["delegate_partitions"] == 0 and plain["ops_outside_delegate"] > 20
    assert plain["outside_ops"]["CONV_2D"] > 5


def test_metadata_is_embedded_and_reads_back(tiny_export, runner_class):
    from lsnet_deploy.artifact_metadata import read_artifact_metadata

    path, result = tiny_export
    stored = runner_class.read_metadata(path)
    assert stored == result.metadata
    decoded = {key: json.loads(value) for key, value in stored.items()}  # every value is JSON
    assert schema_problems(stored) == []
    assert decoded["input_shape"] == [2, 3, 128, 128] and decoded["precision"] == "float32"
    assert read_artifact_metadata(path).found


def test_half_keeps_float32_io_within_float16_tolerance(tmp_path, runner_class):
    path = tmp_path / "tiny16.tflite"
    result = export_model(load_model(TINY), "litert", path, ExportOptions(batch=TINY_X.shape[0], half=True))
    assert result.precision == "float16" and result.details["float16_constants"] > 0
    with runner_class(path, threads=2) as runner:
        assert runner.input_metadata()[1] == "float32"
        got = runner.infer(TINY_X.numpy())
    np.testing.assert_allclose(got, TINY_Y.numpy(), rtol=0, atol=2e-2 * float(TINY_Y.abs().max()))
    assert json.loads(runner_class.read_metadata(path)["precision"]) == "float16"


def test_runner_runs_a_foreign_model(runner_class):
    peer = FOREIGN / "foreign_cnn.tflite"
    with runner_class(peer, threads=2) as runner:
        shape, dtype = runner.input_metadata()
        out = runner.infer(np.zeros(shape, dtype=np.float32))
    assert out.shape == (1, 1000) and np.isfinite(out).all()
    assert runner_class.read_metadata(peer) is None


def test_other_suffix_is_a_usage_error(tmp_path):
    result = invoke("-f", "litert", "--weights", TINY, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2, result.output
    assert "tiny.tflite" not in error_line(result) and "x.tflite" in error_line(result)
    assert not list(tmp_path.iterdir())


def test_int8_with_half_is_refused(tmp_path):
    result = invoke("-f", "litert", "--int8", "--half", "--calib", tmp_path, "--weights", TINY,
                    "-o", tmp_path / "x.tflite")
    assert result.exit_code == 2 and "--half and --int8 are exclusive" in error_line(result)
    assert not (tmp_path / "x.tflite").exists()


def test_missing_extra_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    result = invoke("-f", "litert", "--weights", TINY, "-o", tmp_path / "x.tflite")
    assert result.exit_code == 1, result.output
    assert 'pip install "lsnet-deploy[litert]"' in error_line(result)
    assert not list(tmp_path.iterdir())


def test_failed_conversion_keeps_the_existing_file(tmp_path, monkeypatch, runner_class):
    import litert_torch

    def broken(*args, **kwargs):
        raise RuntimeError("converter exploded\nsecond line")

    monkeypatch.setattr(litert_torch, "convert", broken)
    target = tmp_path / "x.tflite"
    target.write_bytes(b"previous")
    result = invoke("-f", "litert", "--weights", TINY, "-o", target)
    assert result.exit_code == 1 and "converter exploded" in error_line(result)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tflite"]


@pytest.mark.slow
def test_lsnet_t_reproduces_the_reference(tmp_path, runner_class):
    weights, x, y = conformance_case("lsnet_t")
    path = tmp_path / "lsnet_t.tflite"
    export_model(load_model(weights), "litert", path, ExportOptions(batch=x.shape[0], validate=False))
    with runner_class(path, threads=2) as runner:
        got = runner.infer(x.numpy())
    np.testing.assert_allclose(got, y.numpy(), rtol=0, atol=1e-3 * float(y.abs().max()))


def test_forms_litert_cannot_convert_are_refused_before_work(tmp_path):
    result = invoke("-f", "litert", "--ska", "banded_matmul", "--weights", TINY, "-o", tmp_path / "x.tflite")
    assert result.exit_code == 2 and "cannot export the 'banded_matmul' SKA form" in error_line(result)
