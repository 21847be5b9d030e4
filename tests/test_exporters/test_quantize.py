"""int8 ONNX with explicit Q/DQ nodes: calibration on images, the Q/DQ layout TensorRT needs, validation on
ONNX Runtime against float32, refusal of a collapsed calibration, and every bad --calib a user will hit."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from lsnet_deploy.errors import UsageError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.exporters.calibration import (RunningRange, batches, calibration_images, load_images,
                                                percentile_range, preprocessing_for)
from lsnet_deploy.exporters.onnx_quantize import ImageCalibrationReader, chunk_size, near_constant_histograms
from lsnet_deploy.metadata import decode_metadata
from lsnet_deploy.preprocess import Preprocessing, preprocess

from ..conftest import conformance_case, error_line, inject_int8_outlier, invoke_export as invoke

TINY = str(conformance_case("tiny")[0])


def make_images(folder, count=24, size=(150, 136), seed=0):
    """Synthetic photos: smooth colour waves, blobs and noise, so activations vary like real pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]] / max(size)
    for i in range(count):
        waves = np.stack([np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy + rng.uniform()))
                          for _ in range(3)], -1)
        pixels = (waves * 0.5 + 0.5) * rng.uniform(60, 255, 3) + rng.normal(0, 12, waves.shape)
        cy, cx, r = rng.integers(0, size[1]), rng.integers(0, size[0]), rng.integers(8, 40)
        pixels[(yy * max(size) - cy) ** 2 + (xx * max(size) - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("calib") / "images")


# ---------------------------------------------------------------- int8 ONNX for ONNX Runtime, end to end


def test_int8_onnx_exports_validates_and_runs(tmp_path, calib_dir):
    out = tmp_path / "tiny_int8.onnx"
    result = invoke("--format", "onnx", "--weights", TINY, "--int8", "--calib", calib_dir, "--ska", "onehot_conv",
                    "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["precision"] == "int8"
    validation = report["validation"]
    # compared with PyTorch float32 on the images held out of calibration (every fifth), not on noise
    assert validation["passed"] and validation["samples"] == 4
    assert validation["top1_agreement"] >= 0.97 and validation["cosine"] > 0.99
    assert report["details"]["int8_float_layers"] == []

    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = decode_metadata({p.key: p.value for p in model.metadata_props})
    assert meta["precision"] == "int8"
    calibration = meta["int8_calibration"]
    assert (calibration["images"], calibration["held_out"], calibration["method"]) == (20, 4, "percentile 99.99")
    assert calibration["placement"] == "onnxruntime" and len(calibration["sha256"]) == 64
    assert calibration["float_layers"] == []
    # ONNX Runtime's placement: convolutions read and write int8, so its QDQ fusion runs QLinearConv
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(producers.get(n.input[0]) == "DequantizeLinear" for n in convs)
    consumers = {i: n.op_type for n in model.graph.node for i in n.input}
    assert sum(consumers.get(n.output[0]) == "QuantizeLinear" for n in convs) >= len(convs) // 2

    # ONNX Runtime runs it, float32 in and out, on the images preprocessed as the metadata says
    images = preprocess(sorted(calib_dir.glob("*.png"))[:1], Preprocessing.from_metadata(meta))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": images})[0]
    assert logits.dtype == np.float32 and logits.shape == (1, 10) and np.isfinite(logits).all()


# ---------------------------------------------------------------- collapse is refused


def broken_tiny(units: int | None = None):
    """The tiny conformance LSNet with an int8 outlier injected into its FFNs (all of them by default)."""
    from lsnet_deploy.exporters.int8_sensitivity import quantizable_units
    from lsnet_deploy.models import load_model

    model = load_model(TINY)
    ffns = [u for u in quantizable_units(model) if u.endswith(".ffn")]
    for name in ffns[:units]:
        inject_int8_outlier(model, name)
    return model, ffns


def test_no_validate_skips_the_int8_gate_with_a_warning(tmp_path, calib_dir):
    target = tmp_path / "broken.onnx"
    result = export_model(broken_tiny()[0], "onnx", target, ExportOptions(int8=True, calib=calib_dir,
                                                                          validate=False))
    assert target.exists() and result.validation is None and result.validation_skipped == "--no-validate"
    assert any("int8 accuracy gate was skipped" in w for w in result.warnings)
    # the CLI prints the warning, once, on stderr
    out = invoke("--format", "onnx", "--weights", TINY, "--int8", "--calib", calib_dir, "--no-validate",
                 "-o", tmp_path / "tiny.onnx")
    assert out.exit_code == 0, out.output
    assert out.stderr.count("warning: --no-validate: the int8 accuracy gate was skipped") == 1


def test_too_few_calibration_images_are_refused_and_few_are_warned_about(tmp_path, calib_dir):
    from lsnet_deploy.models import load_model

    few = make_images(tmp_path / "few", count=5)
    with pytest.raises(UsageError, match=r"--calib .* holds 5 image\(s\); int8 needs at least 8"):
        export_model(load_model(TINY), "onnx", tmp_path / "x.onnx", ExportOptions(int8=True, calib=few))
    assert not (tmp_path / "x.onnx").exists()
    result = export_model(load_model(TINY), "onnx", tmp_path / "y.onnx",
                          ExportOptions(int8=True, calib=calib_dir, validate=False))
    assert any("only 20 images to calibrate on" in w for w in result.warnings)
    assert any("single changed prediction fails" in w for w in result.warnings)


# ---------------------------------------------------------------- calibration data


def test_calibration_images_are_found_recursively_and_spread(tmp_path):
    make_images(tmp_path / "a", count=6, seed=1)
    make_images(tmp_path / "b" / "deeper", count=6, seed=2)
    (tmp_path / "notes.txt").write_text("not an image")
    found = calibration_images(tmp_path)
    assert len(found) == 12 and all(p.suffix == ".png" for p in found)
    spread = calibration_images(tmp_path, limit=4)
    assert [p.parent.name for p in spread] == ["a", "a", "deeper", "deeper"]
    assert spread[0] == found[0] and spread[-1] == found[-1]


def test_calibration_preprocessing_is_the_inference_preprocessing(calib_dir):
    from lsnet_deploy.metadata import build_metadata
    from lsnet_deploy.models import load_model

    metadata = build_metadata(load_model(TINY), ska_form="onehot_conv", fused=True, precision="int8", batch=2)
    paths = calibration_images(calib_dir)
    expected = preprocess(paths, Preprocessing.from_metadata(decode_metadata(metadata)))
    np.testing.assert_array_equal(load_images(paths, preprocessing_for(metadata)), expected)
    fed = []
    reader = ImageCalibrationReader("input", expected, 2)
    while (feed := reader.get_next()) is not None:
        fed.append(feed["input"])
    assert all(f.shape == (2, 3, 128, 128) for f in fed)
    np.testing.assert_array_equal(np.concatenate(fed), expected)


def test_batches_for_fixed_and_dynamic_inputs():
    images = np.arange(7, dtype=np.float32).reshape(7, 1)
    assert [b.ravel().tolist() for b in batches(images, 3)] == [[0, 1, 2], [3, 4, 5]]  # remainder dropped
    assert [b.ravel().tolist() for b in batches(images[:2], 4)] == [[0, 1, 0, 1]]  # too few: repeated
    assert [len(b) for b in batches(images, None)] == [7]


def test_activation_ranges_ignore_a_few_outliers():
    import torch

    x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))
    x[12345] = 1000.0  # one activation far out must not set the int8 scale of the rest
    low, high = percentile_range(x)
    assert 3.5 < float(high) < 4.3 and -4.3 < float(low) < -3.5  # the 99.995th percentile of N(0, 1): 3.89
    running = RunningRange().update(x).update(2 * x)
    assert running.batches == 2 and running.high == pytest.approx(1.5 * float(high), rel=0.02)
    few = percentile_range(torch.tensor([1.0, -2.0, 3.0]))  # too few values for a tail: the extremes
    assert (float(few[0]), float(few[1])) == (-2.0, 3.0)


def test_calibration_reader_feeds_the_quantizer_chunk_by_chunk():
    images = np.arange(10, dtype=np.float32).reshape(10, 1)
    reader = ImageCalibrationReader("input", images, 1)
    assert len(reader) == 10
    reader.set_range(4, 6)
    assert [reader.get_next()["input"].item() for _ in range(2)] == [4.0, 5.0] and reader.get_next() is None
    # the quantizer takes only chunks that divide the batches evenly
    assert [chunk_size(n, 40) for n in (200, 199, 10, 512)] == [40, 1, 10, 32]


def _near_constant_model(path):
    """x -> x * 3e-6 + 0.0625 -> 1x1 Conv: its middle tensor varies by a few millionths around 1/16 (like a
    softmax over near-uniform scores), too little for 2048 float32 histogram bins."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "weight")
    scale, offset = (numpy_helper.from_array(np.array(value, np.float32), name)
                     for name, value in (("scale", 3e-6), ("offset", 0.0625)))
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["scaled"]), helper.make_node("Add", ["scaled", "offset"], ["flat"]),
         helper.make_node("Conv", ["flat", "weight"], ["y"])], "near_constant",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], [weight, scale, offset])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_percentile_calibration_takes_a_near_constant_activation(tmp_path):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    source = tmp_path / "float.onnx"
    _near_constant_model(source)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 1, 4, 8, 8), dtype=np.float32)

    def quantize(target):
        quantize_static(str(source), str(target), ImageCalibrationReader("x", images[:, 0], 1),
                        quant_format=QuantFormat.QDQ, calibrate_method=CalibrationMethod.Percentile,
                        op_types_to_quantize=["Conv", "Add"])

    with pytest.raises(ValueError, match="finite-sized bins"):  # ONNX Runtime alone: the reason for the workaround
        quantize(tmp_path / "plain.onnx")
    with near_constant_histograms():
        quantize(tmp_path / "int8.onnx")
    quantized = onnx.load_model(str(tmp_path / "int8.onnx"))
    params = {t.name: onnx.numpy_helper.to_array(t) for t in quantized.graph.initializer}
    scale = next(v for k, v in params.items() if k.startswith("flat") and k.endswith("scale"))
    assert 0.0625 / 255 <= float(scale) <= 0.07 / 255  # a range reaching the values' 0.0625, not beyond
    session = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": images[0]})[0]
    np.testing.assert_allclose(out, 0.25, rtol=0.02)  # 4 inputs of 1/16 each, within int8 rounding
    from onnxruntime.quantization.calibrate import HistogramCollector
    assert HistogramCollector.collect_absolute_value.__name__ == "collect_absolute_value"  # restored


@pytest.mark.parametrize("case", ["missing", "file", "empty", "corrupt"])
def test_bad_calibration_directory(tmp_path, case):
    calib = tmp_path / "calib"
    if case == "file":
        calib.write_text("x")
    elif case in ("empty", "corrupt"):
        calib.mkdir()
        (calib / "readme.txt").write_text("no pictures here")
    if case == "corrupt":
        make_images(calib, count=2)
        (calib / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    expected = {"missing": "no such directory", "file": "is not a directory", "empty": "holds no images",
                "corrupt": "broken.jpg: not an image"}[case]
    with pytest.raises(UsageError, match=expected):
        load_images(calibration_images(calib), Preprocessing(input_size=(32, 32)))

    # the CLI fails before exporting anything, with one line and exit code 2
    out = tmp_path / "out.onnx"
    result = invoke("--format", "onnx", "--weights", TINY, "--int8", "--calib", calib, "-o", out)
    assert result.exit_code == 2 and expected in error_line(result), result.output
    assert "simplifying" not in result.output  # stopped before the torch export
    assert not out.exists() and not list(tmp_path.glob(".out*"))
