"""The Predictor API: inputs it accepts, batching, labels, metadata it needs, and the errors users hit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lsnet_deploy import Predictor
from lsnet_deploy.errors import LsnetDeployError, UsageError
from lsnet_deploy.preprocess import Preprocessing, preprocess

from .conftest import LABELS, synthetic_photo


def _same(left, right, atol=1e-6):
    assert [p.indices for p in left] == [p.indices for p in right]
    np.testing.assert_allclose([p.scores for p in left], [p.scores for p in right], rtol=0, atol=atol)


def test_predicts_from_the_onnx_metadata_alone(tiny_onnx, photos, tiny_model):
    with Predictor(tiny_onnx) as predictor:
        assert predictor.runtime == "ort" and predictor.recipe.input_size == (128, 128)
        assert predictor.metadata_info.source == "onnx metadata" and predictor.batch == 1
        results = predictor.predict(photos, topk=3)
    assert [r.source for r in results] == [str(p) for p in photos]
    for result in results:
        assert len(result.indices) == 3 and list(result.scores) == sorted(result.scores, reverse=True)
        assert result.labels == tuple(LABELS[i] for i in result.indices) and result.label == result.labels[0]
    # the scores are the softmax of the model's logits on the recipe's tensors
    logits = tiny_model(torch.from_numpy(preprocess(photos, Preprocessing(input_size=(128, 128))))).detach().numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose([r.scores for r in results], np.sort(probs, 1)[:, ::-1][:, :3], rtol=0, atol=1e-5)


def test_every_input_form_gives_the_same_answer(tiny_onnx, photos):
    path = photos[2]  # PNG, so the decoded array is exactly the file
    pixels = np.asarray(Image.open(path).convert("RGB"))
    with Predictor(tiny_onnx) as predictor:
        tensor = predictor.preprocess(path)
        expected = predictor.predict(path)
        forms = [predictor.predict([path]), predictor.predict(str(path)), predictor.predict(Image.open(path)),
                 predictor.predict(pixels), predictor.predict(tensor), predictor.predict(tensor[None]),
                 predictor.predict(torch.from_numpy(tensor)), predictor.predict([torch.from_numpy(tensor)])]
        np.testing.assert_allclose(predictor.logits([tensor]), predictor.logits(path), rtol=0, atol=0)
    for result in forms:
        _same(result, expected, atol=0)
    assert forms[3][0].source is None and expected[0].source == str(path)


def test_fixed_batch_artifact_is_padded_and_chunked(tiny_onnx, tiny_ort_batch2, photos):
    with Predictor(tiny_ort_batch2) as batched, Predictor(tiny_onnx) as single:
        assert batched.batch == 2 and batched.metadata_info.found and batched.labels is None
        three = photos[:3]  # one full batch of 2, then one padded
        _same(batched.predict(three), single.predict(three))
        assert batched.logits(three).shape == (3, 10)


def test_dynamic_models_batch_by_batch_size(tiny_model, photos):
    with Predictor(tiny_model, batch_size=3) as chunked, Predictor(tiny_model) as whole:
        assert chunked.batch is None and chunked.batch_size == 3 and whole.batch_size == 8
        _same(chunked.predict(photos * 2), whole.predict(photos * 2))


def test_labels_can_be_replaced(tiny_onnx, photos, tmp_path):
    names = [f"name {i}" for i in range(10)]
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(names))
    with Predictor(tiny_onnx, labels=labels_file) as predictor:
        result = predictor.predict(photos[0], topk=2)[0]
    assert result.labels == tuple(names[i] for i in result.indices)
    with pytest.raises(UsageError, match="3 labels given but the model has 10 classes"):
        Predictor(tiny_onnx, labels=["a", "b", "c"])


def test_topk_is_capped_and_checked(tiny_onnx, photos):
    with Predictor(tiny_onnx) as predictor:
        everything = predictor.predict(photos[0], topk=50)[0]
        assert sorted(everything.indices) == list(range(10))
        assert sum(everything.scores) == pytest.approx(1.0, abs=1e-9)
        with pytest.raises(UsageError, match="topk must be at least 1"):
            predictor.predict(photos[0], topk=0)


def test_preprocessed_arrays_of_the_wrong_shape_are_refused(tiny_onnx):
    with Predictor(tiny_onnx) as predictor:
        with pytest.raises(UsageError, match=r"shape \(3, 128, 128\) per sample"):
            predictor.predict(np.zeros((3, 224, 224), np.float32))
        with pytest.raises(UsageError, match="not an image file"):
            predictor.predict(__file__)


def test_a_file_without_metadata_needs_the_recipe(foreign_onnx, tiny_onnx, photos):
    with pytest.raises(UsageError) as info:
        Predictor(foreign_onnx)
    message = str(info.value)
    for expected in ("no lsnet-export metadata", "foreign.onnx.json", "--imgsz, --mean and --std", "[1, 3, 128, 128]"):
        assert expected in message
    with pytest.raises(UsageError, match="pass --std"):
        Predictor(foreign_onnx, imgsz=128, mean="imagenet")
    with Predictor(foreign_onnx, imgsz=128, mean="imagenet", std=[0.229, 0.224, 0.225]) as foreign, \
            Predictor(tiny_onnx) as original:
        assert not foreign.metadata_info.found and foreign.labels is None
        _same(foreign.predict(photos), original.predict(photos), atol=0)


def test_recipe_overrides_and_their_checks(tiny_onnx):
    with Predictor(tiny_onnx, crop_pct=1.0, mean=0.5, std="0.5 0.5 0.5") as predictor:
        assert predictor.recipe.crop_pct == 1.0 and predictor.recipe.mean == (0.5, 0.5, 0.5)
        assert predictor.overridden == ["crop_pct", "mean", "std"]
    with pytest.raises(UsageError, match="takes 128x128 inputs .* pass --imgsz 128,128"):
        Predictor(tiny_onnx, imgsz=224)
    with pytest.raises(UsageError, match="0-255 pixel units"):
        Predictor(tiny_onnx, mean=[123.7, 116.3, 103.5])
    with pytest.raises(UsageError, match="not a list of numbers"):
        Predictor(tiny_onnx, std="wide")


def test_missing_and_unknown_artifacts(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        Predictor(tmp_path / "nope.onnx")
    odd = tmp_path / "model.bin2"
    odd.write_bytes(b"x")
    with pytest.raises(UsageError, match="cannot tell the runtime"):
        Predictor(odd)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x01garbage")
    with pytest.raises(LsnetDeployError, match="cannot load"):
        Predictor(broken)


def test_tensorrt_engines_need_tensorrt(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here; the refusal is for machines without it")
    engine = tmp_path / "lsnet_t.engine"
    engine.write_bytes(b"not a real engine")
    (tmp_path / "lsnet_t.engine.json").write_text('{"metadata": {"input_size": "[224, 224]"}}')
    with pytest.raises(LsnetDeployError, match="(?i)tensorrt"):
        Predictor(engine)


def test_core_ml_needs_apple_hardware(tmp_path):
    if sys.platform == "darwin":
        pytest.skip("Core ML runs here; the refusal is for other systems")
    package = tmp_path / "model.mlpackage"
    package.mkdir()
    with pytest.raises(LsnetDeployError, match="only on macOS"):
        Predictor(package)


def test_a_checkpoint_or_module_runs_through_pytorch(tiny_checkpoint, tiny_model, photos):
    with Predictor(tiny_checkpoint, imgsz=128) as from_file, Predictor(tiny_model) as from_module:
        assert from_file.runtime == "torch" and from_file.recipe.input_size == (128, 128)
        _same(from_file.predict(photos), from_module.predict(photos), atol=0)
    with pytest.raises(UsageError, match="export it to run it with ort"):
        Predictor(tiny_model, runtime="ort")
    with pytest.raises(UsageError, match="preprocessing is unknown: pass --imgsz, --mean and --std"):
        Predictor(torch.nn.Conv2d(3, 4, 3))


def test_import_stays_light_and_predictor_loads_lazily():
    code = ("import sys, lsnet_deploy; heavy = {'onnx', 'onnxruntime', 'executorch', 'coremltools', 'PIL', "
            "'lsnet_deploy.predict'} & set(sys.modules); assert not heavy, heavy; "
            "from lsnet_deploy import Predictor; assert Predictor.__module__ == 'lsnet_deploy.predict'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_uint8_batches_and_tensor_batches(tiny_onnx):
    pictures = np.stack([np.asarray(synthetic_photo(150, 150, seed=s)) for s in range(3)])  # (N, H, W, 3) uint8
    with Predictor(tiny_onnx) as predictor:
        from_pixels = predictor.predict(pictures)
        tensors = np.stack([predictor.preprocess(p) for p in pictures])
        _same(from_pixels, predictor.predict(tensors), atol=0)
        assert len(from_pixels) == 3


def test_a_corrupt_file_in_a_batch_gets_its_own_error_entry(tiny_onnx, photos, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    batch = [photos[0], corrupt, photos[1]]
    with Predictor(tiny_onnx) as predictor:
        results = predictor.predict(batch, topk=3, errors="return")
        good = predictor.predict([photos[0], photos[1]], topk=3)
        with pytest.raises(LsnetDeployError, match="corrupt.jpg") as caught:
            predictor.predict(batch, topk=3, errors="raise")
        with pytest.raises(UsageError, match="errors must be one of"):
            predictor.predict(batch, errors="ignore")
    assert "\n" not in str(caught.value)
    assert [r.source for r in results] == [str(p) for p in batch]
    assert [r.ok for r in results] == [True, False, True]
    _same([results[0], results[2]], good, atol=0)
    failed = results[1]
    assert failed.error and "corrupt.jpg" in failed.error and "\n" not in failed.error
    assert failed.indices == () and failed.scores == () and failed.labels is None and failed.label is None
    assert failed.to_dict() == {"file": str(corrupt), "error": failed.error}
    with pytest.raises(LsnetDeployError, match="no prediction for .*corrupt.jpg"):
        failed.index
