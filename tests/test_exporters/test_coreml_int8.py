"""lsnet-export --format coreml --int8: the converted ML program is inspected for int8 (any OS).

W8A8 (the default, iOS 17): every convolution and linear layer reads an int8 weight blob through a constexpr
dequantize and takes its input through quantize -> dequantize. W8 (an explicit iOS 16 target): int8 weights,
float inputs. Layers in ``keep_float`` keep float weights and inputs. Core ML cannot run here, so the
accuracy gate is skipped with a warning, and the PyTorch simulation of the same int8 arithmetic is reported.
"""

import dataclasses
import json
import sys

import pytest

ct = pytest.importorskip("coremltools", reason='coremltools is not installed (pip install "lsnet-deploy[coreml]")')

from coremltools.proto import MIL_pb2  # noqa: E402

from lsnet_deploy.exporters import ExportOptions, export_model  # noqa: E402
from lsnet_deploy.runtimes.coreml_runner import CoreMLOptions  # noqa: E402
from lsnet_deploy.exporters.coreml_format import CoreMLExporter  # noqa: E402
from lsnet_deploy.metadata import decode_metadata  # noqa: E402
from lsnet_deploy.models import load_model  # noqa: E402

from ..conftest import conformance_case, error_line, invoke_export as invoke  # noqa: E402
from .test_quantize import make_images  # noqa: E402

TINY = conformance_case("tiny")[0]
ON_MAC = sys.platform == "darwin"
WEIGHT_DEQUANTIZE = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}
INT8 = MIL_pb2.DataType.INT8


def main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def producers(spec) -> dict:
    """Output name -> the op that makes it, in the main block."""
    return {out.name: op for op in main_block(spec).operations for out in op.outputs}


def layer_inputs(spec, op, made_by) -> tuple:
    """(the op making a conv/linear's weight, the op making its input)."""
    weight = made_by[op.inputs["weight"].arguments[0].name]
    return weight, made_by.get(op.inputs["x"].arguments[0].name)


def int8_weight_bytes(spec, weight_op, made_by) -> bool:
    """Whether a constexpr weight op's quantized data is stored as int8."""
    if weight_op.type == "constexpr_affine_dequantize":
        return weight_op.attributes["quantized_data"].type.tensorType.dataType == INT8
    data = made_by[weight_op.inputs["data"].arguments[0].name]  # constexpr_blockwise_shift_scale (iOS 18)
    return data.outputs[0].type.tensorType.dataType == INT8


def weight_bytes(package) -> int:
    return sum(p.stat().st_size for p in package.glob("Data/com.apple.CoreML/weights/*"))


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("calib") / "images", count=20)


@pytest.fixture(scope="module")
def w8a8(calib_dir, tmp_path_factory):
    """The default int8 package through the command line: image input, W8A8, iOS 17 chosen for it."""
    path = tmp_path_factory.mktemp("coreml_int8") / "tiny_int8.mlpackage"
    result = invoke("--format", "coreml", "--weights", TINY, "--int8", "--calib", calib_dir, "-o", path, "--json")
    assert result.exit_code == 0, result.output
    return path, json.loads(result.stdout.strip().splitlines()[-1]), ct.utils.load_spec(str(path))


@pytest.fixture(scope="module")
def w8_with_float_layers(calib_dir, tmp_path_factory):
    """--target iOS16 (weights-only int8), tensor input, with the head and the stem's first conv forced float."""
    path = tmp_path_factory.mktemp("coreml_int8") / "tiny_w8.mlpackage"
    keep = frozenset({"head", "patch_embed.0"})
    write = CoreMLExporter.write

    def write_keeping_float(self, model, example, target, context):
        return write(self, model, example, target, dataclasses.replace(context, keep_float=keep))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CoreMLExporter, "write", write_keeping_float)
        result = export_model(load_model(TINY), "coreml", path,
                              ExportOptions(int8=True, calib=calib_dir,
                                            format_options=CoreMLOptions(image_input=False, deployment_target="ios16")))
    return path, result, ct.utils.load_spec(str(path))


def test_w8a8_quantizes_every_layer_weight_and_input(w8a8):
    _, report, spec = w8a8
    made_by = producers(spec)
    layers = [op for op in main_block(spec).operations if op.type in ("conv", "linear")]
    quantized = 0
    for op in layers:
        weight, source = layer_inputs(spec, op, made_by)
        if weight.type not in WEIGHT_DEQUANTIZE:
            continue  # SKA's fixed one-hot convolution has a computed, not a learned, weight
        quantized += 1
        assert int8_weight_bytes(spec, weight, made_by), op.outputs[0].name
        assert source is not None and source.type == "dequantize", (op.outputs[0].name, source and source.type)
        assert made_by[source.inputs["input"].arguments[0].name].type == "quantize"
    ops = report["details"]["mil_ops"]
    assert quantized == report["details"]["int8_layers"] >= 50
    assert ops["quantize"] == ops["dequantize"] == quantized
    assert spec.specificationVersion == 8 and report["details"]["deployment_target"] == "iOS17"


def test_w8a8_metadata_and_result_say_what_was_done_and_what_was_not(w8a8):
    _, report, spec = w8a8
    meta = decode_metadata(dict(spec.description.metadata.userDefined))
    calibration = meta["int8_calibration"]
    assert meta["precision"] == "int8" and meta["deployment_target"] == "iOS17"
    assert calibration["scheme"] == "w8a8" and calibration["minimum_deployment_target"] == "iOS17"
    assert (calibration["images"], calibration["held_out"]) == (16, 4)
    assert calibration["method"] == "percentile 99.99, mean over batches"
    assert calibration["float_layers"] == [] and len(calibration["sha256"]) == 64
    assert json.loads(report["metadata"]["int8_calibration"]) == calibration
    # the simulated int8 arithmetic of the same layers agrees with float on the held-out images
    assert 0.75 <= report["details"]["int8_simulated_agreement"] <= 1.0
    if not ON_MAC:
        assert report["validation"] is None
        assert any("int8 accuracy gate could not run here" in w and "only on macOS" in w for w in report["warnings"])


def test_int8_weights_are_about_a_quarter_of_float32(w8a8, w8_with_float_layers):
    package, report, _ = w8a8
    parameters = sum(p.numel() for p in load_model(TINY).parameters())
    ratio = weight_bytes(package) / (4 * parameters)
    # int8 weights are 1/4 of float32; per-channel scales, float16 biases and norms, 64-byte alignment add a little
    assert 0.2 < ratio < 0.35, ratio
    # the package with two layers in float is bigger by about those layers' float16 weights
    assert weight_bytes(w8_with_float_layers[0]) > weight_bytes(package)


def test_w8_for_ios16_quantizes_weights_only_and_keeps_float_layers(w8_with_float_layers):
    _, result, spec = w8_with_float_layers
    made_by = producers(spec)
    assert spec.specificationVersion == 7 and result.details["int8_scheme"] == "w8"
    assert "quantize" not in result.details["mil_ops"] and "dequantize" not in result.details["mil_ops"]
    first_conv = next(op for op in main_block(spec).operations if op.type == "conv")
    head = next(op for op in main_block(spec).operations if op.type == "linear")
    for op in (first_conv, head):
        weight, _ = layer_inputs(spec, op, made_by)
        assert weight.type == "const", (op.outputs[0].name, weight.type)
    constexpr = [op for op in main_block(spec).operations if op.type == "constexpr_affine_dequantize"]
    assert len(constexpr) == result.details["int8_layers"] >= 50 and result.details["float_layer_count"] == 2
    assert all(int8_weight_bytes(spec, op, made_by) for op in constexpr)
    calibration = json.loads(result.metadata["int8_calibration"])
    assert calibration["scheme"] == "w8" and calibration["minimum_deployment_target"] == "iOS16"
    assert calibration["float_layers"] == ["head", "patch_embed.0"]
    assert "float" in calibration["activations"]


@pytest.mark.parametrize("target", ["iOS15", "macOS12"])
def test_int8_below_ios16_is_refused_before_any_work(target, calib_dir, tmp_path):
    out = tmp_path / "x.mlpackage"
    result = invoke("--format", "coreml", "--weights", TINY, "--int8", "--calib", calib_dir, "--target", target,
                    "-o", out)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "--int8 needs --target iOS16 or later" in line and "iOS17" in line and target in line
    assert not out.exists()


def test_int8_without_calibration_images_is_a_usage_error(tmp_path):
    result = invoke("--format", "coreml", "--weights", TINY, "--int8", "-o", tmp_path / "x.mlpackage")
    assert result.exit_code == 2 and "--calib DIR" in error_line(result)
