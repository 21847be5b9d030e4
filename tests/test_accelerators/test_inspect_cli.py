"""lsnet-inspect: per-accelerator placement on the terminal and as JSON, and one clear line for bad input."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from lsnet_deploy.cli.inspect import app

from ..conftest import REPO, error_line

#: a 3 KB LiteRT model (committed under a suffix .gitignore does not hide)
CANARY = REPO / "tests" / "data" / "accelerators" / "gpu_refused_ops.tflite.fixture"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """A static-shape convolution + ReLU + Pad graph: both mobile EPs' checkers have a verdict on it."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install \"lsnet-deploy[onnx]\")")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"lsnet-deploy[onnx]\")")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Pad", ["r", "pads"], ["logits"], mode="constant")],
        "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 8, 8])], [weight, pads])
    path = tmp_path_factory.mktemp("inspect") / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_prints_each_accelerator_with_its_tool(small_onnx):
    result = invoke(small_onnx, "--accelerator", "nnapi", "-a", "coreml")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "small.onnx (onnx)" in out
    assert "nnapi: whole model (1 partition), 3/3 operators on it" in out
    assert "coreml: 1 partition(s), 2/3 operators on it" in out  # Core ML's MLProgram list has no Pad
    assert "falls back to the CPU: Pad x1" in out
    assert out.count("said by: onnxruntime mobile usability checker") == 2


def test_json_is_one_object_with_a_report_per_accelerator(small_onnx):
    result = invoke(small_onnx, "-a", "coreml", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["ok"] and payload["format"] == "onnx"
    (report,) = payload["accelerators"]
    assert report["accelerator"] == "coreml" and report["fallback_ops"] == {"Pad": 1}
    assert report["partitions"] == 1 and report["whole"] is False and report["verified"] is True
    assert report["tool_version"]


def test_default_asks_every_accelerator_of_the_format(small_onnx):
    from lsnet_deploy.accelerators.targets import targets_of

    result = invoke(small_onnx, "--json")
    assert result.exit_code == 0, result.output
    asked = [r["accelerator"] for r in json.loads(result.output)["accelerators"]]
    assert asked == [t.name for t in targets_of("onnx")]


def test_missing_file():
    result = invoke("no_such_model.onnx")
    assert result.exit_code == 2
    assert "no_such_model.onnx does not exist" in error_line(result)


def test_unknown_accelerator_suggests_the_closest(small_onnx):
    result = invoke(small_onnx, "-a", "coremI")
    assert result.exit_code == 2
    assert "did you mean 'coreml'" in error_line(result)


def test_accelerator_of_another_format(small_onnx):
    result = invoke(small_onnx, "-a", "vulkan", "--json")
    assert result.exit_code == 2
    payload = json.loads(result.output.splitlines()[0])
    assert payload["ok"] is False and "does not apply to small.onnx" in payload["error"]
    assert "accelerators of onnx:" in payload["error"]


def test_unknown_suffix(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0")
    result = invoke(path)
    assert result.exit_code == 2 and "cannot tell the format" in error_line(result)


def test_corrupt_file_is_one_line(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"lsnet-deploy[onnx]\")")
    path = tmp_path / "broken.onnx"
    path.write_text("not a model")
    result = invoke(path, "-a", "nnapi")
    assert result.exit_code == 2 and "not an ONNX model" in error_line(result)


def test_missing_tool_is_reported_not_raised(monkeypatch, tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(CANARY.read_bytes())
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if ai-edge-litert were not installed
    result = invoke(model, "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)["accelerators"]
    assert report["accelerator"] == "gpu" and report["partitions"] is None and not report["verified"]
    assert report["note"].startswith("not available:") and 'pip install "lsnet-deploy[litert]"' in report["note"]
    text = invoke(model)
    assert "gpu: not available:" in text.output


def test_format_table_matches_the_exporters():
    pytest.importorskip("torch", reason="the exporters need PyTorch (pip install \"lsnet-deploy[torch]\")")
    from lsnet_deploy.accelerators import FORMAT_OF_SUFFIX
    from lsnet_deploy.exporters.registry import exporter_classes

    for name, cls in exporter_classes().items():
        for suffix in cls.file_suffixes():
            if suffix in FORMAT_OF_SUFFIX:
                assert FORMAT_OF_SUFFIX[suffix] == name or name == "qnn", (suffix, name)
    for suffix, fmt in FORMAT_OF_SUFFIX.items():
        assert suffix in exporter_classes()[fmt].file_suffixes()


def test_the_soc_flag_is_the_htp_options_declaration(small_onnx):
    text = " ".join(invoke("--help").stdout.split())
    assert "--soc <str> Snapdragon SoC" in text and "Accelerators: htp." in text
    result = invoke(small_onnx, "--soc", "SM865", "-a", "htp")
    assert result.exit_code == 2
    assert "unknown --soc 'SM865'; did you mean 'SM8650'?" in error_line(result)
