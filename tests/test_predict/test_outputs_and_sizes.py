"""What lsnet-predict checks before it prints a class (issue 25): the output is one vector of finite class
scores per picture, repeated labels are announced, and ``--imgsz`` sets a checkpoint's size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lsnet_deploy.cli.predict import app

from ..conftest import error_line

RECIPE = ["--imgsz", "32", "--mean", "imagenet", "--std", "imagenet"]


def onnx_graph(path, build) -> str:
    """A foreign ONNX file (no lsnet-export metadata): ``build(helper, TensorProto)`` returns (nodes,
    output value info, initializers); the input is ``x`` (1, 3, 32, 32)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes, output, initializers = build(helper, TensorProto)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [output], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return str(path)


def test_a_non_classifier_is_refused_not_given_a_class(tmp_path, photos):
    identity = onnx_graph(tmp_path / "image_to_image.onnx", lambda h, T: (
        [h.make_node("Identity", ["x"], ["y"])], h.make_tensor_value_info("y", T.FLOAT, [1, 3, 32, 32]), []))
    result = CliRunner().invoke(app, [identity, str(photos[0]), *RECIPE])
    assert result.exit_code == 2
    line = error_line(result)
    assert "[1, 3, 32, 32]" in line and "not a classifier" in line
    assert "RANK" not in result.output


def test_nan_scores_are_refused(tmp_path, photos):
    def build(h, T):
        nan = h.make_tensor("nan", T.FLOAT, [1], [float("nan")])
        nodes = [h.make_node("GlobalAveragePool", ["x"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
                 h.make_node("Mul", ["f", "nan"], ["y"])]
        return nodes, h.make_tensor_value_info("y", T.FLOAT, [1, 3]), [nan]

    broken = onnx_graph(tmp_path / "nan.onnx", build)
    result = CliRunner().invoke(app, [broken, str(photos[0]), *RECIPE])
    assert result.exit_code == 1
    assert "NaN or infinite class scores" in error_line(result)


def test_repeated_labels_are_announced_and_told_apart_by_index(tiny_onnx, photos, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["crane", "maillot", "crane", *[f"c{i}" for i in range(3, 10)]]) + "\n")
    result = CliRunner().invoke(app, [str(tiny_onnx), str(photos[0]), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert "warning: the labels give 1 name to several classes ('crane': classes 0, 2)" in result.stderr
    assert "CLASS" in result.stdout


def test_imgsz_sets_the_size_of_a_checkpoint_that_does_not_record_it(tiny_model, photos, tmp_path):
    plain = tmp_path / "plain.pth"  # a bare state dict: 96 and 128 px give the same attention grid
    torch.save(tiny_model.state_dict(), plain)
    refused = CliRunner().invoke(app, [str(plain), str(photos[0])])
    assert refused.exit_code == 2 and "pass --imgsz" in error_line(refused)
    result = CliRunner().invoke(app, [str(plain), str(photos[0]), "--imgsz", "128", "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "replaces" not in result.stderr  # the model is built at 128: nothing of its recipe is overridden
    from lsnet_deploy.predict import Predictor

    with Predictor(tiny_model) as reference:
        expected = reference.predict(photos[0], topk=1)[0]
    got = json.loads(result.stdout)["predictions"][0]
    assert got["index"] == expected.index
    np.testing.assert_allclose(got["score"], expected.score, rtol=0, atol=1e-5)
