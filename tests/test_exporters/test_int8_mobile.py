"""int8 for the mobile runtimes (ExecuTorch XNNPACK, LiteRT) on the trained CIFAR-10 fixtures.

Each fixture is exported once per format with ``--int8 --calib`` on CIFAR test images and gated with
``--data`` on 1000 other test images (never used for calibration): the artifact's top-1 there, through its
own runtime, is at most 1 point below the float32 model's, or nothing is written. (Without labels the gate is
97% top-1 agreement on 64 held-out images; a CIFAR model has enough near-ties that int8 flips 3-4 of 64 while
its accuracy stays within a point, so the labelled gate is the meaningful one here.) The
``int8_calibration`` metadata must describe the calibration set exactly, the ExecuTorch program must run
whole inside XNNPACK, and ``keep_float`` must leave the named modules without a single int8 operator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.exporters.calibration import split_calibration

from ..conftest import (CIFAR_CALIB, CIFAR_TEST, TRAINED_MIN_TOP1, TRAINED_PARAMS, error_line, invoke_export,
                        load_trained, trained_card, trained_checkpoint)

EVALUATED = 1000  # test images the accuracies are compared on (spread evenly over the sorted set)
MAX_DROP = 1.0  # top-1 points int8 may lose against float32
BELOW_RECORDED = 10.0  # int8 and float32 top-1 stay within this of the card's: far from a collapse to chance


@pytest.fixture(scope="module")
def cifar_test() -> Path:
    """The committed 1,000 CIFAR-10 test pictures (all of them are ``EVALUATED``)."""
    return CIFAR_TEST


@pytest.fixture(scope="module")
def cifar_model():
    return load_trained("cifar_small")


@pytest.fixture(scope="module")
def calib_dir(cifar_test) -> Path:
    """334 test pictures that are not among the ``EVALUATED`` ones (every 12th of the rest: 270 calibrate,
    64 held out), committed under tests/data/cifar10/calib."""
    from lsnet_deploy.accuracy import list_images

    evaluated = {(path.parent.name, path.name) for path, _ in list_images(cifar_test)}
    assert not evaluated & {(path.parent.name, path.name) for path, _ in list_images(CIFAR_CALIB)}
    return CIFAR_CALIB


@pytest.fixture(scope="module")
def eval_dir(cifar_test) -> Path:
    """The ``EVALUATED`` test images (the ``--data`` of the exports)."""
    from lsnet_deploy.accuracy import list_images

    assert len(list_images(cifar_test)) == EVALUATED
    return cifar_test


def _export(fmt, package, name, calib_dir, eval_dir, tmp_path_factory):
    pytest.importorskip(package, reason=f"{package} is not installed")
    path = tmp_path_factory.mktemp(f"int8_{fmt}") / f"{name}_int8{'.pte' if fmt == 'executorch' else '.tflite'}"
    options = ExportOptions(int8=True, calib=calib_dir, data=eval_dir, max_drop=MAX_DROP)
    return name, path, export_model(load_trained(name), fmt, path, options)


@pytest.fixture(scope="module", params=TRAINED_PARAMS)
def executorch_int8(request, calib_dir, eval_dir, tmp_path_factory):
    return _export("executorch", "executorch.runtime", request.param, calib_dir, eval_dir, tmp_path_factory)


@pytest.fixture(scope="module", params=TRAINED_PARAMS)
def litert_int8(request, calib_dir, eval_dir, tmp_path_factory):
    return _export("litert", "ai_edge_litert.interpreter", request.param, calib_dir, eval_dir, tmp_path_factory)


def _check_accuracy_and_metadata(name, path, result, runtime, calib_dir):
    from lsnet_deploy.runtimes import runner_for

    floor = max(TRAINED_MIN_TOP1, trained_card(name)["eval"]["top1"] - BELOW_RECORDED)
    assert result.precision == "int8" and result.validation is not None
    accuracy = result.details["accuracy"]  # measured by the export's own gate, through the artifact's runtime
    assert accuracy["artifact"]["count"] == accuracy["pytorch"]["count"] == EVALUATED
    assert accuracy["artifact"]["unreadable"] == 0
    assert accuracy["artifact"]["top1"] > floor and accuracy["pytorch"]["top1"] > floor
    assert accuracy["pytorch"]["top1"] - accuracy["artifact"]["top1"] <= MAX_DROP, accuracy

    stored = type(runner_for(path, runtime, threads=1)).read_metadata(path)
    assert json.loads(stored["precision"]) == "int8"
    record = json.loads(stored["int8_calibration"])
    assert record == json.loads(result.metadata["int8_calibration"])
    expected = split_calibration(calib_dir)
    assert (record["images"], record["held_out"]) == (len(expected.calibrate), len(expected.held_out)) == (270, 64)
    assert record["sha256"] == expected.sha256 and record["method"] == "percentile 99.99, mean over batches"
    assert record["float_layers"] == result.details["int8_float_layers"]


@pytest.mark.slow
def test_executorch_int8_keeps_accuracy_and_runs_whole_in_xnnpack(executorch_int8, calib_dir):
    name, path, result = executorch_int8
    _check_accuracy_and_metadata(name, path, result, "executorch", calib_dir)
    assert result.details["ops_outside_delegate"] == 0 and result.details["delegate_calls"] == 1
    assert result.details["int8_ops"] > 100  # int8 kernels, not a float program with casts
    # all-int8 passes: with SKA's products int8 (nine requantized multiply-adds per block) LSNet-T's fixture
    # missed the gate and needed 4 layers float
    assert result.details["int8_float_layers"] == []


@pytest.mark.slow
def test_litert_int8_keeps_accuracy(litert_int8, calib_dir):
    from lsnet_deploy.runtimes.litert_runner import LiteRTRunner

    name, path, result = litert_int8
    _check_accuracy_and_metadata(name, path, result, "litert", calib_dir)
    with LiteRTRunner(path, threads=2) as runner:
        assert runner.input_metadata()[1] == "float32"  # float32 in and out, as for float32 files
    # attention's activation products stay float: an int8 BATCH_MATMUL runs outside XNNPACK and splits it
    assert result.details["delegate_partitions"] == 1 and result.details["ops_outside_delegate"] == 0
    assert path.stat().st_size < 0.4 * (trained_checkpoint(name).stat().st_size * 2)  # int8 (fixture: float16)


@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_keep_float_leaves_modules_without_int8_ops(cifar_model, calib_dir, fmt):
    """Each exporter's quantization step with two modules forced float: not one int8 operator inside them
    in the graph that is lowered / converted, and the same modules are int8 when not kept (so the check
    cannot pass vacuously)."""
    pytest.importorskip("executorch.exir" if fmt == "executorch" else "litert_torch", reason=f"no {fmt} here")
    import contextlib

    import numpy as np
    import torch

    from lsnet_deploy.exporters.context import ExportContext
    from lsnet_deploy.exporters.prepare import prepare_model
    from lsnet_deploy.exporters.registry import get_exporter
    from lsnet_deploy.exporters.pt2e_int8 import int8_ops_by_module, module_path, quantize_pt2e
    from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
    from lsnet_deploy.metadata import build_metadata

    form = get_exporter(fmt).ska_auto_int8 or get_exporter(fmt).ska_auto
    assert get_exporter(fmt).int8_keep_float
    prepared = prepare_model(cifar_model, form, fuse=True)
    metadata = build_metadata(prepared, ska_form=form, fused=True, precision="int8", batch=1, labels=None)
    calibration = split_calibration(calib_dir)
    example = torch.zeros(1, 3, *cifar_model.img_size)
    rewritten = xnnpack_friendly(prepared, form)
    kept = frozenset({"blocks3.3.mixer", "head"})  # an LS block's mixer and the classifier
    assert kept <= {name for name, _ in rewritten.named_modules()}
    graphs = {}
    for keep in (frozenset(), kept):
        if fmt == "executorch":
            from lsnet_deploy.exporters.executorch_format import quantize_for_xnnpack

            with contextlib.ExitStack() as resources:
                context = ExportContext(target=Path("unused.pte"), options=ExportOptions(int8=True, calib=calib_dir),
                                        ska_form=form, metadata=metadata, reference=cifar_model,
                                        progress=lambda _: None, resources=resources, calibration=calibration,
                                        keep_float=keep)
                graphs[keep], _ = quantize_for_xnnpack(rewritten, example, context)
        else:
            from lsnet_deploy.exporters.litert_format import litert_quantizer

            images = np.asarray(calibration.images(metadata))
            graphs[keep] = quantize_pt2e(rewritten, example, images, litert_quantizer(keep), fold_quantize=False)

    def in_kept(name):
        return any(name == k or name.startswith(k + ".") for k in kept)

    all_int8 = int8_ops_by_module(graphs[frozenset()])
    assert sum(n for name, n in all_int8.items() if in_kept(name)) >= 5  # they are int8 unless kept
    if fmt == "executorch":  # SKA's own products and tap sum stay float; the LS blocks' convolutions are int8
        from lsnet_deploy.exporters.xnnpack_forms import TapSliceLSConv

        ska = [name for name, module in rewritten.named_modules() if isinstance(module, TapSliceLSConv)]
        assert ska and not [name for name in ska if all_int8.get(name)]
        assert all(all_int8.get(f"{name}.cv1") and all_int8.get(f"{name}.static") for name in ska)
    mixed = int8_ops_by_module(graphs[kept])
    assert not [name for name in mixed if in_kept(name)]
    assert sum(mixed.values()) >= 50  # the rest of the model is still int8
    convs = [n for n in graphs[kept].graph.nodes
             if str(n.target).split(".")[-2:-1] in (["conv2d"], ["linear"]) and in_kept(module_path(n))]
    assert len(convs) >= 4  # the kept modules' layers are in the graph, in float


@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_int8_bad_calibration_input_is_one_line(tmp_path, fmt):
    out = tmp_path / f"m{'.pte' if fmt == 'executorch' else '.tflite'}"
    missing = invoke_export("--format", fmt, "--int8", "-o", out)
    assert missing.exit_code == 2 and "--calib DIR" in error_line(missing)
    broken = tmp_path / "calib"
    broken.mkdir()
    (broken / "photo.jpg").write_bytes(b"not a jpeg")
    unreadable = invoke_export("--format", fmt, "--int8", "--calib", broken, "-o", out)
    assert unreadable.exit_code == 2 and "photo.jpg" in error_line(unreadable)
    assert not out.exists()
