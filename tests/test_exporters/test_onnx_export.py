"""lsnet-export --format onnx/ort through the CLI: exactness, metadata, dynamic batch, every SKA form."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from lsnet_deploy.cli.export import app
from lsnet_deploy.metadata import decode_metadata
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, load_model
from lsnet_deploy.models.checkpoint import file_sha256

from ..conftest import conformance_case

runner = CliRunner()


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_artifact(path, x: torch.Tensor) -> np.ndarray:
    sess = session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def export(*args):
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    path, _, _ = conformance_case("tiny")
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    labels = tmp_path_factory.mktemp("labels") / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(10)))
    export("--weights", path, "--output", out, "--labels", labels)
    return out


@pytest.mark.parametrize("case", ["tiny", "tiny_distill"])
def test_onnx_reproduces_the_conformance_output(tmp_path, case):
    path, x, expected = conformance_case(case)
    out = tmp_path / f"{case}.onnx"
    export("--weights", path, "--batch", 2, "--output", out)
    got = run_artifact(out, x)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-3 * float(expected.abs().max()))


@pytest.mark.parametrize("form", [f for f in EXPORTABLE_SKA_FORMS if f != "hybrid"])  # hybrid: the default
def test_every_ska_form_exports_and_validates(tmp_path, form):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / f"{form}.onnx"
    result = export("--weights", path, "--ska", form, "--batch", 2, "--output", out, "--json")
    report = json.loads(result.stdout)
    assert report["ska_form"] == form and report["validation"]["passed"]
    np.testing.assert_allclose(run_artifact(out, x), expected.numpy(), atol=1e-3 * float(expected.abs().max()))


def test_metadata_is_present_and_correct(tiny_onnx):
    props = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    meta = decode_metadata(props)
    path, _, _ = conformance_case("tiny")
    assert meta["producer"] == "lsnet-deploy" and meta["model"] == "lsnet"
    assert meta["input_size"] == [128, 128] and meta["input_shape"] == [1, 3, 128, 128]
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]
    assert meta["interpolation"] == "bicubic" and meta["crop_pct"] == 0.9 and meta["resize_size"] == [142, 142]
    assert meta["num_classes"] == 10 and meta["labels"] == [f"class {i}" for i in range(10)]
    assert meta["ska_form"] == "hybrid" and meta["fused"] is True and meta["precision"] == "float32"
    assert meta["weights_sha256"] == file_sha256(path)
    assert meta["architecture"]["embed_dim"] == [16, 32, 48, 64]
    # the app-facing names match the graph
    model = onnx.load(str(tiny_onnx))
    assert model.graph.input[0].name == meta["input_name"] == "input"
    assert model.graph.output[0].name == meta["output_name"] == "logits"


def test_dynamic_batch_runs_at_batch_3(tmp_path):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / "dyn.onnx"
    export("--weights", path, "--dynamic", "--output", out)
    x3 = torch.cat([x, x[:1]])
    got = run_artifact(out, x3)
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got[:2], expected.numpy(), atol=1e-3 * float(expected.abs().max()))
    assert decode_metadata({p.key: p.value for p in onnx.load(str(out)).metadata_props})["batch"] == "dynamic"


def test_fixed_batch_2(tmp_path):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / "b2.onnx"
    export("--weights", path, "--batch", 2, "--output", out)
    np.testing.assert_allclose(run_artifact(out, x), expected.numpy(), atol=1e-3 * float(expected.abs().max()))


def test_ort_artifact_loads_in_onnxruntime(tmp_path):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / "tiny.ort"
    export("-f", "ort", "--weights", path, "--output", out)
    assert out.read_bytes()[4:8] == b"ORTM"  # the flatbuffer identifier of ORT-format models
    sess = session(out)
    got = sess.run(None, {"input": x[:1].numpy()})[0]
    np.testing.assert_allclose(got, expected[:1].numpy(), atol=1e-3 * float(expected.abs().max()))
    assert sess.get_modelmeta().custom_metadata_map["model"] == '"lsnet"'


def test_unfused_reference_export_matches_too(tmp_path):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / "ref.onnx"
    export("--weights", path, "--ska", "reference", "--no-fuse", "--no-simplify", "--batch", 2, "--output", out)
    np.testing.assert_allclose(run_artifact(out, x), expected.numpy(), atol=1e-3 * float(expected.abs().max()))
    meta = decode_metadata({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta["fused"] is False and meta["ska_form"] == "reference"


def test_other_input_size(tmp_path):
    path, _, _ = conformance_case("tiny")
    out = tmp_path / "tiny160.onnx"
    export("--weights", path, "--imgsz", "160,192", "--output", out)
    ref = load_model(path, img_size=(160, 192))
    x = torch.randn(1, 3, 160, 192)
    with torch.no_grad():
        np.testing.assert_allclose(run_artifact(out, x), ref(x).numpy(), rtol=1e-4, atol=1e-5)


def test_half_precision_onnx(tmp_path):
    path, x, expected = conformance_case("tiny")
    out = tmp_path / "half.onnx"
    result = export("--weights", path, "--half", "--batch", 2, "--output", out, "--json")
    report = json.loads(result.stdout)
    assert report["precision"] == "float16" and report["validation"]["passed"]
    model = onnx.load(str(out))
    weight_types = {i.data_type for i in model.graph.initializer if len(i.dims) == 4}
    assert weight_types == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O
    np.testing.assert_allclose(run_artifact(out, x), expected.numpy(), atol=2e-2 * float(expected.abs().max()))


def test_json_output_is_one_object_and_default_output_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, _, _ = conformance_case("tiny")
    result = runner.invoke(app, ["--weights", str(path), "--json", "--no-validate"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    # a custom architecture is named after its checkpoint (tiny.pth), so two never overwrite each other
    assert report["ok"] and report["path"] == "tiny.onnx" and (tmp_path / "tiny.onnx").is_file()
    assert report["validation"] is None and report["validation_skipped"] == "--no-validate"


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "lsnet_deploy", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--format" in result.stdout
