"""lsnet-export --format coreml: ML programs checked on any OS, predictions compared on macOS only.

Off macOS the converted program itself is inspected (inputs, outputs, preprocessing constants, ranks,
operators, metadata); the number comparison with PyTorch skips with a reason. The three variants are
converted at full size too (about 15 s each here).
"""

import json
import sys

import numpy as np
import pytest
import torch

ct = pytest.importorskip("coremltools", reason='coremltools is not installed (pip install "lsnet-deploy[coreml]")')

from coremltools.proto import FeatureTypes_pb2, MIL_pb2  # noqa: E402

from lsnet_deploy import __version__  # noqa: E402
from lsnet_deploy.errors import RuntimeUnavailableError  # noqa: E402
from lsnet_deploy.exporters import ExportOptions, export_model  # noqa: E402
from lsnet_deploy.exporters.coreml_format import (  # noqa: E402
    FLOAT16_DEFAULT_NOTE, MAX_RANK, CoreMLExporter, program_summary)
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model, load_model  # noqa: E402
from lsnet_deploy.models.lsnet import IMAGENET_MEAN, IMAGENET_STD, LSConv  # noqa: E402
from lsnet_deploy.reparam import reparameterize  # noqa: E402
from lsnet_deploy.runtimes.coreml_runner import CoreMLOptions, CoreMLRunner  # noqa: E402

from ..conftest import conformance_case, error_line, invoke_export as invoke  # noqa: E402

TINY, TINY_X, TINY_Y = conformance_case("tiny")
LABELS = [f"class {i}" for i in range(10)]
ON_MAC = sys.platform == "darwin"
slow = pytest.mark.slow
# what LSNet's program is made of; anything else (a gather, a resize, a loop) is a regression
EXPECTED_OPS = {"add", "batch_norm", "cast", "classify", "conv", "linear", "matmul", "mul", "real_div",
                "reduce_mean", "reduce_sum", "relu", "reshape", "sigmoid", "softmax", "split", "sqrt", "square",
                "sub", "transpose", "slice_by_index", "pad", "rsqrt", "instance_norm"}


def main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def const_values(spec, name: str) -> list[float]:
    for op in main_block(spec).operations:
        if op.type == "const" and op.outputs[0].name == name:
            return list(op.attributes["val"].immediateValue.tensor.floats.values)
    raise KeyError(name)


def ops_reading(spec, var: str) -> list:
    return [op for op in main_block(spec).operations
            if any(arg.name == var for binding in op.inputs.values() for arg in binding.arguments)]


@pytest.fixture(scope="module")
def image_classifier(tmp_path_factory):
    """The default package (image input, float16, iOS 16) with labels."""
    path = tmp_path_factory.mktemp("coreml") / "tiny.mlpackage"
    result = export_model(load_model(TINY), "coreml", path, ExportOptions(labels=LABELS))
    return path, result, ct.utils.load_spec(str(path))


@pytest.fixture(scope="module")
def tensor_float32(tmp_path_factory):
    """--tensor-input, float32 compute, iOS 17, plain logits."""
    path = tmp_path_factory.mktemp("coreml") / "tiny32.mlpackage"
    options = ExportOptions(batch=2, format_options=CoreMLOptions(image_input=False, deployment_target="ios17",
                                                                  float32=True))
    result = export_model(load_model(TINY), "coreml", path, options)
    return path, result, ct.utils.load_spec(str(path))


def test_default_is_an_image_input_with_the_normalization_inside(image_classifier):
    _, result, spec = image_classifier
    (inp,) = spec.description.input
    assert inp.name == "image" and inp.type.WhichOneof("Type") == "imageType"
    assert (inp.type.imageType.width, inp.type.imageType.height) == (128, 128)
    assert inp.type.imageType.colorSpace == FeatureTypes_pb2.ImageFeatureType.RGB
    (scale_op,) = ops_reading(spec, "image")
    assert scale_op.type == "mul"
    np.testing.assert_allclose(const_values(spec, scale_op.inputs["y"].arguments[0].name), [1 / 255], rtol=1e-6)
    (bias_op,) = ops_reading(spec, scale_op.outputs[0].name)
    assert bias_op.type == "add"
    np.testing.assert_allclose(const_values(spec, bias_op.inputs["y"].arguments[0].name),
                               [-m for m in IMAGENET_MEAN], rtol=1e-6)
    if not ON_MAC:
        assert result.validation is None and "only on macOS" in result.validation_skipped


def test_labels_give_a_classifier_that_keeps_float32_logits(image_classifier):
    _, result, spec = image_classifier
    outputs = {o.name: o.type for o in spec.description.output}
    assert set(outputs) == {"classLabel", "classLabel_probs", "logits"}
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert outputs["logits"].multiArrayType.dataType == FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert list(outputs["logits"].multiArrayType.shape) == [1, 10]
    assert result.details["classifier"] and json.loads(result.metadata["classifier"]) is True
    assert json.loads(result.metadata["labels"]) == LABELS


def test_float16_by_default_float32_on_request(image_classifier, tensor_float32):
    def tensor_types(spec):
        return {out.type.tensorType.dataType for op in main_block(spec).operations for out in op.outputs
                if out.type.HasField("tensorType")}

    fp16 = MIL_pb2.DataType.FLOAT16
    _, default, default_spec = image_classifier
    _, explicit, fp32_spec = tensor_float32
    assert default.precision == "float16" and fp16 in tensor_types(default_spec)
    assert explicit.precision == "float32" and fp16 not in tensor_types(fp32_spec)
    assert explicit.details["compute_precision"] == "float32"
    # the float16 default says why in the summary's notes; float32 needs no reason
    assert FLOAT16_DEFAULT_NOTE in default.notes and "Neural Engine" in FLOAT16_DEFAULT_NOTE
    assert FLOAT16_DEFAULT_NOTE not in explicit.notes


def test_tensor_input_and_deployment_target(tensor_float32):
    _, result, spec = tensor_float32
    (inp,) = spec.description.input
    assert inp.name == "input" and list(inp.type.multiArrayType.shape) == [2, 3, 128, 128]
    assert [o.name for o in spec.description.output] == ["logits"]
    assert spec.specificationVersion == 8  # iOS 17
    assert result.details["deployment_target"] == "iOS17"
    assert json.loads(result.metadata["normalized_in_model"]) is False


@pytest.mark.parametrize("package", ["image_classifier", "tensor_float32"])
def test_ranks_and_operators_are_what_core_ml_takes(package, request):
    _, result, spec = request.getfixturevalue(package)
    summary = program_summary(spec)
    assert summary == {k: result.details[k] for k in ("mil_ops", "max_rank")}
    assert 4 <= summary["max_rank"] <= MAX_RANK
    assert set(summary["mil_ops"]) <= EXPECTED_OPS, set(summary["mil_ops"]) - EXPECTED_OPS
    assert summary["mil_ops"]["conv"] >= 40


def test_metadata_as_for_onnx(image_classifier):
    _, result, spec = image_classifier
    meta = spec.description.metadata
    assert meta.author == "lsnet-deploy" and meta.versionString == __version__
    assert "LSNet" in meta.shortDescription
    stored = dict(meta.userDefined)
    for key, value in result.metadata.items():
        assert stored[key] == value, key
    assert json.loads(stored["input_name"]) == "image" and json.loads(stored["input_kind"]) == "image"
    assert json.loads(stored["std"]) == list(IMAGENET_STD) and json.loads(stored["precision"]) == "float16"


@pytest.mark.parametrize("form", EXPORTABLE_SKA_FORMS)
def test_every_ska_form_converts_within_rank_5(form):
    block = reparameterize(LSConv(32).eval())
    block.ska.resolution = (7, 7)  # the banded forms build their gather index for the grid
    block.ska.set_form(form)
    program = torch.export.export(block, (torch.randn(1, 32, 7, 7),)).run_decompositions({})
    converted = ct.convert(program, inputs=[ct.TensorType(name="x", shape=(1, 32, 7, 7))],
                           minimum_deployment_target=ct.target.iOS16, convert_to="mlprogram")
    summary = program_summary(converted.get_spec())
    assert 4 <= summary["max_rank"] <= MAX_RANK


@pytest.mark.skipif(ON_MAC, reason="checks the behaviour off macOS")
def test_runner_off_macos_says_why():
    with pytest.raises(RuntimeUnavailableError, match="only on macOS"):
        CoreMLRunner("anything.mlpackage").activate()


@pytest.mark.skipif(not ON_MAC, reason="Core ML predicts only on macOS")
def test_predictions_match_pytorch_on_macos(image_classifier, tensor_float32):
    with CoreMLRunner(tensor_float32[0]) as package:
        got = package.infer(TINY_X.numpy())
    np.testing.assert_allclose(got, TINY_Y.numpy(), rtol=0, atol=1e-3 * float(TINY_Y.abs().max()))
    pixels = torch.randint(0, 256, (1, 3, 128, 128)).float() / 255
    x = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = load_model(TINY)(x).numpy()
    with CoreMLRunner(image_classifier[0]) as package:
        got = package.infer(x.numpy())
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-2 * float(np.abs(expected).max()))


def test_conversion_failure_keeps_the_previous_package(tmp_path, monkeypatch):
    target = tmp_path / "model.mlpackage"
    target.mkdir()
    (target / "Manifest.json").write_text("previous package")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated converter crash\nsecond line")

    monkeypatch.setattr(ct, "convert", broken)
    result = invoke("--format", "coreml", "--weights", TINY, "-o", target)
    assert result.exit_code == 1, result.output
    assert "simulated converter crash" in error_line(result) and "second line" not in result.output
    assert (target / "Manifest.json").read_text() == "previous package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mlpackage"]


def test_exporter_reports_why_it_cannot_validate_here():
    reason = CoreMLExporter().cannot_validate(None)
    if ON_MAC:
        assert reason is None
    else:
        assert isinstance(reason, str) and "macOS" in reason


@slow
@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_s", "lsnet_b"])
def test_all_three_variants_convert(tmp_path, name):
    result = export_model(create_model(name).eval(), "coreml", tmp_path / f"{name}.mlpackage")
    assert 4 <= result.details["max_rank"] <= MAX_RANK
    assert set(result.details["mil_ops"]) <= EXPECTED_OPS
