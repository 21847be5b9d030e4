"""Exporting backbones (one output per stage), a user's model around an LSNet, and classifiers with their
embedding: outputs named and described, each validated, reference tensors reproduced within 1e-3."""

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lsnet_deploy.errors import UsageError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.exporters.pipeline import BIAS_MODE_NOTES
from lsnet_deploy.metadata import decode_metadata, schema_problems
from lsnet_deploy.models import create_model, load_model
from lsnet_deploy.models.outputs import ClassifierOutputs
from lsnet_deploy.models.ska import SKA

from ..conftest import (ARTIST, DENSE, SMALL_BACKBONE as SMALL, error_line, invoke_export, needs_artist,
                       needs_dense, relative_error)

EXPORT_TOLERANCE = 1e-3  # float32 artifacts (conformance READMEs)


def _run_onnx(path, x: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()], session.run(None, {"input": x})


@needs_dense
def test_detector_backbone_exports_to_onnx_with_named_validated_stages(tmp_path):
    import onnx

    io = torch.load(DENSE / "det_small_320x448.io.pt", weights_only=True)
    model = load_model(DENSE / "det_small.pth", features_only=True, img_size=(320, 448))
    result = export_model(model, "onnx", tmp_path / "det.onnx", ExportOptions(batch=2))
    assert set(result.validation.reports) == {"stage1", "stage2", "stage3", "stage4"}
    assert all(r.max_rel <= EXPORT_TOLERANCE for r in result.validation.reports.values())

    names, outputs = _run_onnx(result.path, io["input"].numpy())
    assert names == ["stage1", "stage2", "stage3", "stage4"]
    for out, ref in zip(outputs, io["outputs"]):
        assert relative_error(torch.from_numpy(out), ref) <= EXPORT_TOLERANCE
    # the (N, N) bias was resized at build time: no cubic Resize in the graph
    graph = onnx.load(str(result.path)).graph
    modes = [a.s for n in graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"]
    assert b"cubic" not in modes

    meta = decode_metadata(result.metadata)
    assert schema_problems(result.metadata) == []
    assert meta["task"] == "feature-extraction" and meta["num_classes"] == 0
    assert [(o["name"], o["stride"], o["channels"]) for o in meta["outputs"]] == [
        ("stage1", 8, 32), ("stage2", 16, 64), ("stage3", 32, 96), ("stage4", 64, 128)]
    assert meta["outputs"][3]["shape"] == [2, 128, 5, 7]
    assert meta["attention_bias"] == {"mode": "matrix", "table_grid": [14, 14], "grid": [5, 7]}


# LiteRT takes the same multi-output path (one output per stage, read back in output order); its export costs
# half a minute, so ExecuTorch stands for the mobile runtimes here
@pytest.mark.parametrize("fmt, suffix", [("executorch", ".pte")])
def test_backbone_exports_to_mobile_runtimes(tmp_path, fmt, suffix):
    model = create_model("lsnet", **SMALL, features_only=True, out_indices=(1, 3), bias_mode="matrix",
                         attention_grid=14, img_size=(64, 96)).eval()
    result = export_model(model, fmt, tmp_path / f"backbone{suffix}", ExportOptions())
    assert list(result.validation.reports) == ["stage2", "stage4"]
    assert result.validation.passed and result.validation.max_rel <= EXPORT_TOLERANCE
    assert [o["stride"] for o in decode_metadata(result.metadata)["outputs"]] == [16, 64]


class TinyDetector(nn.Module):
    """A user's detector: an LSNet backbone, a two-level FPN and a shared head, returning a dict."""

    def __init__(self):
        super().__init__()
        self.backbone = create_model("lsnet", **SMALL, features_only=True, out_indices=(2, 3), img_size=(128, 192))
        self.lateral = nn.ModuleList(nn.Conv2d(c, 16, 1) for c in self.backbone.feature_info.channels())
        self.head = nn.Conv2d(16, 5, 3, padding=1)

    def forward(self, x):
        c3, c4 = self.backbone(x)
        p4 = self.lateral[1](c4)
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        return {"p3": self.head(p3), "p4": self.head(p4)}


def test_users_model_around_an_lsnet_exports_with_every_output_validated(tmp_path):
    detector = TinyDetector().eval()
    with torch.no_grad():
        for bn in (m for m in detector.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2)
    result = export_model(detector, "onnx", tmp_path / "detector.onnx", ExportOptions(ska="onehot_conv"))
    assert list(result.validation.reports) == ["p3", "p4"] and result.validation.passed
    meta = decode_metadata(result.metadata)
    assert [(o["name"], o["stride"]) for o in meta["outputs"]] == [("p3", 32), ("p4", 64)]
    assert meta["ska_form"] == "onehot_conv" and meta["task"] == "feature-extraction"
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 192), dtype=np.float32)
    names, outputs = _run_onnx(result.path, x)
    with torch.no_grad():
        expected = detector(torch.from_numpy(x))
    assert names == ["p3", "p4"]
    for name, out in zip(names, outputs):
        assert relative_error(torch.from_numpy(out), expected[name]) <= EXPORT_TOLERANCE


def test_ska_form_and_grids_reach_the_lsnet_inside_a_users_model():
    from lsnet_deploy.exporters.prepare import prepare_model

    prepared = prepare_model(TinyDetector().eval(), "banded_matmul", fuse=True, example=torch.zeros(1, 3, 96, 96))
    forms = {m.form for m in prepared.modules() if isinstance(m, SKA)}
    grids = {m.resolution for m in prepared.backbone.blocks2.modules() if isinstance(m, SKA)}
    assert forms == {"banded_matmul"} and grids == {(6, 6)}


@needs_artist
def test_artist_classifier_exports_logits_and_embedding(tmp_path):
    from lsnet_deploy import Predictor

    io = torch.load(ARTIST / "artist_small.io.pt", weights_only=True)
    model = ClassifierOutputs(load_model(ARTIST / "artist_small.pth", img_size=128), ("logits", "embedding"))
    result = export_model(model, "onnx", tmp_path / "artist.onnx", ExportOptions(batch=2))
    assert list(result.validation.reports) == ["logits", "embedding"]
    names, (logits, embedding) = _run_onnx(result.path, io["input"].numpy())
    assert names == ["logits", "embedding"]
    assert relative_error(torch.from_numpy(logits), io["output"]) <= EXPORT_TOLERANCE
    assert relative_error(torch.from_numpy(embedding), io["features"]) <= EXPORT_TOLERANCE
    assert decode_metadata(result.metadata)["task"] == "image-classification"
    with Predictor(result.path) as predictor:
        embedded = predictor.embed(io["input"].numpy())
        best = predictor.predict(io["input"].numpy(), topk=1)
    assert relative_error(torch.from_numpy(embedded), io["features"]) <= EXPORT_TOLERANCE
    assert [p.index for p in best] == io["output"].argmax(1).tolist()

    from PIL import Image
    from typer.testing import CliRunner

    from lsnet_deploy.cli.predict import app

    picture = tmp_path / "art.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (150, 170, 3), dtype=np.uint8)).save(picture)
    reply = CliRunner().invoke(app, [str(result.path), str(picture), "--embedding"])
    assert reply.exit_code == 0, reply.output
    line = json.loads(reply.output.strip().splitlines()[-1])
    with Predictor(result.path) as predictor:
        np.testing.assert_allclose(line["embedding"], predictor.embed(picture)[0], rtol=0, atol=1e-5)


def test_embedding_only_artifact_refuses_to_predict_classes(tmp_path):
    from lsnet_deploy import Predictor

    model = create_model("lsnet", **SMALL, feature_dim=24, num_classes=5, img_size=64).eval()
    result = export_model(ClassifierOutputs(model, ("embedding",)), "onnx", tmp_path / "e.onnx",
                          ExportOptions(validate=False, simplify=False))
    with Predictor(result.path) as predictor:
        assert predictor.embed(np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 24)
        with pytest.raises(UsageError, match="no class scores"):
            predictor.predict(np.zeros((1, 3, 64, 64), np.float32))


@needs_dense
def test_cli_exports_features_and_refuses_what_cannot_carry_them(tmp_path):
    out = tmp_path / "det.onnx"
    result = invoke_export("--task", "features", "-w", DENSE / "det_small.pth", "--imgsz", "64,96",
                           "--out-indices", "2,3", "--no-validate", "--no-simplify", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    reply = json.loads(result.output.strip().splitlines()[-1])
    assert [o["name"] for o in json.loads(reply["metadata"]["outputs"])] == ["stage3", "stage4"]
    assert any(n.startswith("ignored 2 keys outside the backbone") for n in reply["notes"])
    # a detector checkpoint defaults to matrix, the reference detection semantics, and says so
    assert reply["bias_mode"] == "matrix" and BIAS_MODE_NOTES["matrix"] in reply["notes"]

    refused = invoke_export("--task", "features", "--out-indices", "0,4", "-o", tmp_path / "x.onnx")
    assert refused.exit_code == 2 and "stages 0 to 3" in error_line(refused)
    refused = invoke_export("--task", "features", "-f", "coreml", "-o", tmp_path / "x.mlpackage")
    assert refused.exit_code == 2 and "--tensor-input" in error_line(refused)
    refused = invoke_export("-w", DENSE / "det_small.pth", "-o", tmp_path / "y.onnx")
    assert refused.exit_code == 2 and "--task features" in error_line(refused)
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
