"""Backbone exports with dynamic height and width (``--dynamic-hw``): the ``matrix`` attention bias resized in
the graph by a Resize that is PyTorch's bicubic, checked against the reference detection code's outputs at two
input sizes, and the combinations that cannot work refused in one line."""

import numpy as np
import pytest
import torch

from lsnet_deploy.errors import UsageError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.metadata import decode_metadata, schema_problems
from lsnet_deploy.models import create_model, load_model

from ..conftest import DENSE, error_line, invoke_export, needs_dense

EXPORT_TOLERANCE = 1e-3  # float32 artifacts, relative to each output's largest magnitude
CASES = ["det_small_320x448", "det_small_512x512"]
#: torch's F.interpolate(mode="bicubic", align_corners=False) as ONNX Resize attributes
BICUBIC = {"mode": b"cubic", "cubic_coeff_a": -0.75, "coordinate_transformation_mode": b"half_pixel",
           "exclude_outside": 0, "antialias": 0}


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    """det_small exported once with dynamic batch, height and width (validated at two sizes on export)."""
    model = load_model(DENSE / "det_small.pth", features_only=True, img_size=(320, 448))
    path = tmp_path_factory.mktemp("dynamic_hw") / "det_small.onnx"
    result = export_model(model, "onnx", path, ExportOptions(dynamic=True, dynamic_hw=True))
    return path, result


@needs_dense
def test_dynamic_hw_onnx_reproduces_the_reference_at_two_sizes(dynamic_onnx):
    import onnxruntime as ort

    path, result = dynamic_onnx
    assert result.ska_form == "onehot_conv"  # ONNX's auto (hybrid) gathers grid-specific indices
    assert result.validation is not None and result.validation.passed
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    for case in CASES:
        io = torch.load(DENSE / f"{case}.io.pt", weights_only=True)
        outputs = session.run(None, {"input": io["input"].numpy()})
        assert len(outputs) == len(io["outputs"]) == 4
        for stage, (out, ref) in enumerate(zip(outputs, io["outputs"])):
            ref = ref.numpy()
            assert out.shape == ref.shape, (case, stage)
            assert np.abs(out - ref).max() / np.abs(ref).max() <= EXPORT_TOLERANCE, (case, stage)
    meta = decode_metadata(result.metadata)
    assert schema_problems(result.metadata) == []
    assert [o["shape"] for o in meta["outputs"]] == [[-1, c, -1, -1] for c in (32, 64, 96, 128)]


@needs_dense
def test_dynamic_hw_resize_is_pytorch_bicubic(dynamic_onnx):
    import onnx
    from onnx import helper

    proto = onnx.load(str(dynamic_onnx[0]))
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 1  # det_small's one attention block: the bias resize, nothing else resized
    for node in resizes:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name, value in BICUBIC.items():
            assert attributes.get(name, 0 if name in ("exclude_outside", "antialias") else None) == value, name


def test_dynamic_hw_refusals_are_one_line(tmp_path):
    backbone = create_model("lsnet_t", features_only=True, bias_mode="matrix", img_size=128)
    out = tmp_path / "x.onnx"
    for fmt, suffix in (("executorch", ".pte"), ("litert", ".tflite"), ("tensorrt", ".engine")):
        with pytest.raises(UsageError, match=f"--format {fmt} does not accept --dynamic-hw") as caught:
            export_model(backbone, fmt, tmp_path / f"x{suffix}", ExportOptions(dynamic_hw=True))
        assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="grid-specific index"):
        export_model(backbone, "onnx", out, ExportOptions(dynamic_hw=True, ska="banded_matmul"))
    table = create_model("lsnet_t", features_only=True, bias_mode="table", img_size=128)
    with pytest.raises(UsageError, match="--bias-mode matrix"):
        export_model(table, "onnx", out, ExportOptions(dynamic_hw=True))
    with pytest.raises(UsageError, match="backbones only"):
        export_model(create_model("lsnet_t", img_size=128), "onnx", out, ExportOptions(dynamic_hw=True))

    refused = invoke_export("--dynamic-hw", "-o", out)
    assert refused.exit_code == 2 and "backbones only" in error_line(refused)
    refused = invoke_export("--task", "features", "--bias-mode", "table", "--dynamic-hw", "-o", out)
    assert refused.exit_code == 2 and "--bias-mode matrix" in error_line(refused)
    refused = invoke_export("--task", "features", "--dynamic-hw", "-f", "executorch", "-o", tmp_path / "x.pte")
    assert refused.exit_code == 2 and "does not accept --dynamic-hw" in error_line(refused)
    refused = invoke_export("--task", "features", "--dynamic-hw", "--ska", "hybrid", "-o", out)
    assert refused.exit_code == 2 and "grid-specific index" in error_line(refused)
    assert not out.exists()


def test_dynamic_hw_is_in_the_help():
    result = invoke_export("-h")
    assert result.exit_code == 0 and "--dynamic-hw" in result.output
