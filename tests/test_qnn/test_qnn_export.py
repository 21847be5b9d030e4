"""``--format qnn`` and ``--accelerator htp`` on Qualcomm's HTP compiler and x86 HTP emulator (onnxruntime-qnn).

The conformance ``tiny`` model is compiled for the HTP (v75 by default, v69 as the older generation), run
on the emulator with CPU fallback disabled, and compared with the reference implementation's output with
float16 tolerances (the HTP computes float models in float16). Its lsnet metadata must survive in the
EPContext model, the ``qnn`` runtime must be picked for it by suffix and by content, and the placement
report must say the whole model is on the HTP.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lsnet_deploy.accelerators.qnn_socs import QnnOptions
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.metadata import decode_metadata
from lsnet_deploy.models import load_model
from lsnet_deploy.verify import TOLERANCES

from ..conftest import CIFAR_TEST, conformance_case, error_line, invoke_export, relative_error

pytest.importorskip("onnxruntime_qnn", reason="onnxruntime-qnn (the qnn extra) is not installed")

TINY, TINY_INPUT, TINY_OUTPUT = conformance_case("tiny")
#: the HTP runs float models in float16: the float16 bound of every format's validation
FP16_TOLERANCE = TOLERANCES["float16"]


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY)


# HTP v75 (the default) and v69, the oldest generation offered (slow: a second compile and emulation)
@pytest.fixture(scope="module", params=["SM8650", pytest.param("SM8450", marks=pytest.mark.slow)])
def tiny_qnn(request, tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"qnn_{request.param}") / "tiny.qnn.onnx"
    options = ExportOptions(batch=TINY_INPUT.shape[0], format_options=QnnOptions(soc=request.param))  # the conformance batch
    return request.param, export_model(tiny, "qnn", path, options)


def test_the_conformance_case_runs_whole_on_the_emulated_htp(tiny_qnn):
    from lsnet_deploy.runtimes import runner_for

    soc, result = tiny_qnn
    assert result.precision == "float16" and result.ska_form == "tap_slices"
    assert result.validation.passed and result.validation.max_rel <= FP16_TOLERANCE
    placement = result.details["placement"]
    assert placement["whole"] and placement["partitions"] == 1 and placement["fallback_ops"] == {}
    assert placement["nodes_on_accelerator"] == placement["nodes_total"] > 100
    assert soc in placement["tool"]
    with runner_for(result.path) as runner:  # the qnn runtime, picked by the .qnn.onnx suffix
        assert runner.runtime == "qnn" and runner.soc.name == soc
        out = runner.infer(TINY_INPUT.numpy())
    import torch

    error = relative_error(torch.from_numpy(out), TINY_OUTPUT)
    assert error <= FP16_TOLERANCE, error
    assert np.argmax(out, 1).tolist() == TINY_OUTPUT.argmax(1).tolist()


def test_the_epcontext_model_is_one_file_with_the_metadata(tiny_qnn):
    import onnx

    soc, result = tiny_qnn
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["tiny.qnn.onnx"]  # binary embedded
    model = onnx.load(str(result.path))
    assert [node.op_type for node in model.graph.node] == ["EPContext"]
    assert dict((a.name, a.i) for a in model.graph.node[0].attribute if a.type == a.INT)["embed_mode"] == 1
    stored = decode_metadata({p.key: p.value for p in model.metadata_props})
    assert stored["num_classes"] == 10 and stored["precision"] == "float16" and stored["ska_form"] == "tap_slices"
    assert stored["accelerator"] == {"name": "htp", "soc": soc}
    assert stored["qnn"]["soc"] == soc and stored["qnn"]["htp_arch"] in (75, 69)
    assert stored["mean"] == decode_metadata(result.metadata)["mean"]


def test_an_epcontext_file_named_onnx_is_recognised_and_plain_ort_refuses_it(tiny_qnn, tmp_path):
    from lsnet_deploy.errors import RuntimeUnavailableError
    from lsnet_deploy.runtimes import runner_for, runtime_for_path

    plain = tmp_path / "model.onnx"
    shutil.copy(tiny_qnn[1].path, plain)
    assert runtime_for_path(plain) == "qnn"
    with pytest.raises(RuntimeUnavailableError) as caught:
        runner_for(plain, "ort").activate()
    message = str(caught.value)
    assert "\n" not in message and "QNN EPContext model" in message
    assert "--runtime qnn" in message and 'pip install "lsnet-deploy[qnn]"' in message


def test_predict_on_the_command_line_names_the_qnn_runtime_for_ort(tiny_qnn, tmp_path):
    from typer.testing import CliRunner

    from lsnet_deploy.cli.predict import app

    picture = next((CIFAR_TEST / "cat").glob("*.jpg"))
    result = CliRunner().invoke(app, [str(tiny_qnn[1].path), str(picture), "--runtime", "ort"])
    assert result.exit_code != 0 and "--runtime qnn" in error_line(result)


def test_onnx_for_the_htp_is_a_plain_onnx_checked_by_the_htp_compiler(tiny, tmp_path):
    result = export_model(tiny, "onnx", tmp_path / "tiny.onnx", ExportOptions(accelerator="qnn"))
    assert result.ska_form == "tap_slices"  # the accelerator's form, not onnx's hybrid
    assert result.validation.passed  # float32 on ONNX Runtime's CPU EP
    emulated = result.details["accelerator_validation"]
    assert emulated["passed"] and emulated["tolerance"] == FP16_TOLERANCE
    assert result.details["placement"]["whole"] and result.details["placement"]["accelerator"] == "htp"
    assert json.loads(result.metadata["accelerator"]) == {"name": "htp"}


@pytest.mark.slow
def test_cli_reports_the_placement_in_json(tmp_path):
    result = invoke_export("-f", "qnn", "--weights", TINY, "--soc", "sm8550", "-o", tmp_path / "t.qnn.onnx",
                           "--json", "--no-validate")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["format"] == "qnn" and report["details"]["soc"] == "SM8550"
    assert report["details"]["htp_arch"] == "v73" and report["details"]["placement"]["whole"] is True
    assert "LIBNATIVE" not in result.stdout  # the emulator's banner is kept off stdout
