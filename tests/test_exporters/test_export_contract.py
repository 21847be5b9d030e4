"""What every export promises, whatever the format: output suffixes, the metadata schema, validation
against the user's own model, JSON on failure, help generated from the registries."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from lsnet_deploy.errors import UsageError, ValidationError
from lsnet_deploy.exporters import ExportOptions, available_formats, export_model, get_exporter
from lsnet_deploy.metadata import SCHEMA, decode_metadata, schema_problems
from lsnet_deploy.models import load_model
from lsnet_deploy.models.ska import EXPORTABLE_SKA_FORMS

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY)


@pytest.mark.parametrize("name, fmt, hint", [("model.pte", "onnx", "--format executorch"),
                                              ("model.onnx", "executorch", "--format onnx"),
                                              ("x.coreml", "coreml", "x.mlpackage"),
                                              ("weights.pth", "ort", "weights.ort")])
def test_an_output_suffix_of_another_format_is_a_usage_error_before_any_work(tmp_path, name, fmt, hint):
    result = invoke("--format", fmt, "--weights", TINY, "-o", tmp_path / name)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "does not end in" in line and hint in line, line
    assert "loading" not in result.output  # refused before the model was even read
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".engine", ".plan", ".trt"])
def test_every_suffix_a_runtime_reads_is_accepted(tmp_path, suffix):
    from lsnet_deploy.exporters.pipeline import check_output

    check_output(tmp_path / f"model{suffix}", get_exporter("tensorrt"))  # no error


def test_a_failed_json_export_still_prints_one_json_object(tmp_path):
    result = invoke("--weights", TINY, "--json", "--batch", 2, "-f", "coreml", "-o", tmp_path / "m.mlpackage")
    assert result.exit_code == 2
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is False and report["exit_code"] == 2 and "--tensor-input" in report["error"]


def test_labels_that_do_not_match_the_classes_are_refused(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    result = invoke("--weights", TINY, "--labels", labels, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "2 labels given but the model has 10 classes" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt"]


def test_ort_takes_a_dynamic_batch(tmp_path, tiny):
    import onnxruntime as ort

    result = export_model(tiny, "ort", tmp_path / "tiny.ort", ExportOptions(dynamic=True))
    assert result.validation.passed and result.validation.samples > 8  # the extra batch of 3 ran
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, *tiny.img_size)
    out = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = tiny.eval()(x)
    torch.testing.assert_close(torch.from_numpy(out), expected, atol=1e-3 * float(expected.abs().max()), rtol=0)


def test_validation_compares_with_the_users_model_not_the_prepared_copy(tmp_path, tiny, monkeypatch):
    """A fusion bug that the runtime reproduces faithfully must still fail validation."""
    from lsnet_deploy.exporters import prepare
    from lsnet_deploy.reparam import reparameterize

    def broken_fusion(model):
        fused = reparameterize(model)
        with torch.no_grad():
            fused.head.bias.add_(0.5)  # what a wrong BatchNorm fold of the classifier would do
        return fused

    monkeypatch.setattr(prepare, "reparameterize", broken_fusion)
    with pytest.raises(ValidationError, match="drifts from PyTorch"):
        export_model(tiny, "onnx", tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_loader_notes_reach_the_result(tmp_path, tiny):
    model = load_model(TINY)
    model.load_notes = ["input size not recorded in the checkpoint; assumed the published 224"]
    result = export_model(model, "onnx", tmp_path / "x.onnx", ExportOptions(validate=False))
    assert result.notes == model.load_notes and result.to_dict()["notes"] == model.load_notes


def _onnx_map(path):
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _pte_map(path):
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(path))
    return json.loads(program.load_method("lsnet_metadata").execute([])[0])


def _coreml_map(path):
    import coremltools as ct

    return dict(ct.utils.load_spec(str(path)).description.metadata.userDefined)


@pytest.mark.parametrize("fmt, read", [("onnx", _onnx_map), ("ort", None), ("executorch", _pte_map),
                                       ("coreml", _coreml_map)])
def test_every_format_stores_the_documented_schema_only(tmp_path, tiny, fmt, read):
    labels = [f"class {i}" for i in range(tiny.num_classes)]
    result = export_model(tiny, fmt, tmp_path / f"tiny{get_exporter(fmt).suffix}",
                          ExportOptions(labels=labels))
    if read is None:
        import onnxruntime as ort

        stored = dict(ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
                      .get_modelmeta().custom_metadata_map)
    else:
        stored = read(result.path)
    assert schema_problems(stored) == []  # every value JSON, every key documented, every type right
    assert not any(key.startswith("onnxsim") for key in stored)
    decoded = decode_metadata(stored)
    assert decoded["schema"] == 2 and decoded["labels"] == labels and decoded["model"] == "lsnet"
    assert decoded["weights_source"] == "tiny.pth"  # a file name, never the exporting machine's directory
    assert "output" not in decoded and decoded["output_name"] == "logits"
    arch = decoded["architecture"]
    assert arch["key_dim"][:3] == [None, None, None] and arch["key_dim"][3] == tiny.key_dim[3]
    if fmt == "coreml":
        assert sorted(p.name for p in result.path.iterdir()) == ["Data", "Manifest.json"]
        assert decoded["classifier"] is True and decoded["input_kind"] == "image"


def test_the_schema_table_in_the_docs_lists_every_key():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "metadata.md").read_text()
    for key, (kind, _) in SCHEMA.items():
        assert f"`{key}` | {kind} |" in text, key


def test_schema_problems_names_what_is_wrong():
    problems = schema_problems({"model": "lsnet", "onnxsim.version": '"0.4"', "num_classes": '"10"'})
    assert problems == ["model: value 'lsnet' is not JSON", "onnxsim.version: not a documented key",
                        "num_classes: '10' is not integer"]


def test_help_is_generated_from_the_registries():
    result = invoke("-h")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in available_formats():
        exporter = get_exporter(name)
        assert name in text and exporter.suffix in text
        assert all(alias in text for alias in exporter.aliases)
        assert f"{exporter.ska_auto} for {name}" in text
    for form in EXPORTABLE_SKA_FORMS:
        assert form in text


def test_a_usage_error_is_raised_for_labels_in_the_api(tmp_path, tiny):
    with pytest.raises(UsageError, match="one label per class"):
        export_model(tiny, "onnx", tmp_path / "x.onnx", ExportOptions(labels=["a"]))


def test_third_party_chatter_is_silenced_on_the_command_line(tmp_path):
    """coremltools, torchao and torch print a dozen harmless notices on import; the tool prints its own lines."""
    import subprocess
    import sys

    pytest.importorskip("coremltools")
    run = subprocess.run([sys.executable, "-c", "from lsnet_deploy.cli.export import main; main()", "-f", "coreml",
                          "--weights", str(TINY), "-o", str(tmp_path / "x.mlpackage")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("lsnet-export: ") for line in lines), run.stderr


@pytest.mark.parametrize("command", ["lsnet_deploy.cli.export", "lsnet_deploy.cli.bench", "lsnet_deploy.cli.predict"])
def test_every_command_takes_dash_h(command):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", f"from {command} import main; main()", "-h"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Usage:" in run.stdout, run.stdout + run.stderr
