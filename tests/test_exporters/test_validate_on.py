"""``--validate-on host|arm``: the option's checks, its refusals before any work, and the record of the
kernels an export was gated on. The exports gated on the emulated ARM runtimes are in tests/test_arm."""

from __future__ import annotations

import json
import platform

import pytest

from lsnet_deploy.errors import RuntimeUnavailableError, UsageError
from lsnet_deploy.exporters import ExportOptions, check_export, export_model
from lsnet_deploy.models import load_model

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]


@pytest.mark.parametrize("fmt", ["coreml", "tensorrt", "qnn"])
def test_a_format_without_an_arm_build_is_refused_in_one_line_before_any_work(tmp_path, fmt):
    result = invoke("--format", fmt, "--weights", TINY, "--validate-on", "arm", "-o", tmp_path / "x")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"--format {fmt} has no ARM build" in line and "--validate-on host" in line, line
    assert "onnx" in line and "litert" in line  # the formats that do take it are named
    assert "loading" not in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_an_unknown_place_is_refused():
    with pytest.raises(UsageError, match="unknown --validate-on 'phone'; choose host or arm"):
        check_export("onnx", ExportOptions(validate_on="phone"))


def test_arm_without_validation_is_refused():
    with pytest.raises(UsageError, match="drop --no-validate"):
        check_export("onnx", ExportOptions(validate_on="arm", validate=False))


def test_arm_without_the_emulated_environment_names_the_set_up(monkeypatch):
    from lsnet_deploy.arm import environment

    def missing():
        raise RuntimeUnavailableError("no arm64 environment cached at /x; build it with `python -m lsnet_deploy.arm.setup`")

    monkeypatch.setattr(environment, "find_environment", missing)
    with pytest.raises(UsageError, match=r"--validate-on arm needs the emulated arm64 environment: .*arm\.setup"):
        check_export("litert", ExportOptions(validate_on="arm"))


@pytest.fixture(scope="module")
def host_export(tmp_path_factory):
    return export_model(load_model(TINY), "onnx", tmp_path_factory.mktemp("host") / "x.onnx")


def test_the_host_gate_records_the_kernels_it_ran_on(host_export):
    expected = {"runtime": "ort", "kernels": f"{platform.machine()} host"}
    assert host_export.details["validated_on"] == expected
    assert json.loads(json.dumps(host_export.to_dict()))["details"]["validated_on"] == expected  # in --json


def test_the_summary_says_where_it_was_gated(host_export, capsys):
    from lsnet_deploy.cli.export import _print_summary

    _print_summary(host_export, "from the checkpoint's training args")
    out = capsys.readouterr().out
    assert f"gated on    ort, {platform.machine()} host" in out
    assert "from the checkpoint's training args" in out


def test_no_record_when_nothing_was_run(tmp_path):
    result = export_model(load_model(TINY), "onnx", tmp_path / "x.onnx", ExportOptions(validate=False))
    assert "validated_on" not in result.details


def test_the_help_lists_the_formats_arm_takes():
    result = invoke("--help")
    text = " ".join(result.stdout.split())
    assert "--validate-on" in text and "formats onnx, ort, executorch, litert" in text
