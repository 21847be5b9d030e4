"""The small trained CIFAR-10 fixture on the emulated Snapdragon HTP, in float16 and int8, on real pictures.

Each export is gated the way every format is (``--data``/``--max-drop`` on labelled pictures, run on the
emulator) and its predictions are compared with PyTorch's on the same pictures. The emulator runs about
0.2-0.5 s per picture here, so these use ``PICTURES`` of the committed test pictures; the issue's goals (0.5
and 1 point on hundreds of pictures, LSNet-T too) are measured by ``benchmarks/qnn_goals.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsnet_deploy.exporters import ExportOptions, export_model

from ..conftest import CIFAR_CALIB, CIFAR_TEST, TRAINED_MIN_TOP1, copy_as_image_folder, load_trained

pytest.importorskip("onnxruntime_qnn", reason="onnxruntime-qnn (the qnn extra) is not installed")
pytestmark = pytest.mark.slow

#: test pictures each export is gated and compared on (spread evenly over the 1,000 committed ones)
PICTURES = 50
#: top-1 points the artifact may lose against PyTorch on them: one picture in float16, two in int8
MAX_DROP = {"float16": 100 / PICTURES, "int8": 2 * 100 / PICTURES}
#: share of the pictures on which the artifact must predict PyTorch's class
MIN_AGREEMENT = {"float16": 0.98, "int8": 0.94}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    from lsnet_deploy.accuracy import list_images

    return copy_as_image_folder([path for path, _ in list_images(CIFAR_TEST, limit=PICTURES)],
                                tmp_path_factory.mktemp("cifar_subset"))


@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_the_small_fixture_keeps_its_accuracy_on_the_htp(precision, pictures, tmp_path):
    from lsnet_deploy.accuracy import evaluate

    model = load_trained("cifar_small")
    int8 = precision == "int8"
    options = ExportOptions(int8=int8, calib=CIFAR_CALIB if int8 else None, data=pictures,
                            max_drop=MAX_DROP[precision])
    result = export_model(model, "qnn", tmp_path / "small.qnn.onnx", options)
    assert result.precision == precision and result.details["placement"]["whole"]
    accuracy = result.details["accuracy"]  # the gate ran on the emulator and passed
    assert accuracy["artifact"]["count"] == PICTURES and accuracy["drop"] <= MAX_DROP[precision]
    assert accuracy["artifact"]["top1"] >= TRAINED_MIN_TOP1
    report = evaluate(result.path, pictures, runtime="qnn", reference=model, per_class=False)
    assert report.agreement >= 100 * MIN_AGREEMENT[precision], report.agreement
    if int8:
        calibration = result.metadata["int8_calibration"]
        assert '"placement": "qnn"' in calibration and "uint16" in calibration


#: LSNet-T on the emulator costs about a second a picture: its int8 check uses fewer
LSNET_T_PICTURES = 20
#: before the GroupNorm rewrite LSNet-T's int8 agreed with float on 30% of these pictures on the HTP; after: 20 of 20
LSNET_T_MIN_AGREEMENT = 0.95
#: the number of nn.GroupNorm modules in LSNet-T (one per SKA block), each rewritten for the HTP
LSNET_T_GROUP_NORMS = 5


def test_lsnet_t_int8_on_the_htp_predicts_what_pytorch_predicts(tmp_path_factory, tmp_path):
    """The QDQ model ``--format qnn --int8`` compiles, here exported without the gate so the test measures
    the HTP itself: it failed (30% agreement) before ``group_norm_affine_as_conv``."""
    import json

    from lsnet_deploy.accuracy import evaluate, list_images

    pictures = copy_as_image_folder([path for path, _ in list_images(CIFAR_TEST, limit=LSNET_T_PICTURES)],
                                    tmp_path_factory.mktemp("cifar_lsnet_t_subset"))
    model = load_trained("cifar_lsnet_t")
    result = export_model(model, "onnx", tmp_path / "lsnet_t.int8.onnx",
                          ExportOptions(accelerator="htp", int8=True, calib=CIFAR_CALIB, validate=False))
    assert result.details["placement"]["whole"]
    calibration = json.loads(result.metadata["int8_calibration"])
    assert calibration["placement"] == "qnn" and calibration["float_layers"] == []  # all layers int8
    assert calibration["group_norm_affine_as_conv"] == LSNET_T_GROUP_NORMS
    report = evaluate(result.path, pictures, runtime="qnn", reference=model, per_class=False)
    assert report.count == LSNET_T_PICTURES
    assert report.agreement >= 100 * LSNET_T_MIN_AGREEMENT, report.agreement
