"""``--json`` always gives JSON on stdout: a command-line error (unknown option, bad value, missing value)
prints the same error object a failed run prints, on every command that has ``--json``."""

from __future__ import annotations

import importlib
import json

import pytest
from typer.testing import CliRunner

PENDING = "needs @app.command(cls=JsonParseErrors) in lsnet_deploy/cli/{}.py (a change for the lead)"


def cli(name: str, pending: bool = False):
    marks = [pytest.mark.xfail(strict=True, reason=PENDING.format(name))] if pending else []
    return pytest.param(name, marks=marks, id=name)


CLIS = [cli("bench"), cli("export"), cli("predict"), cli("inspect")]
#: an option taking a number (a word is a parse error), and one whose value can be left out, per command
NUMBER_OPTION = {"bench": "--iters", "export": "--opset", "predict": "--topk", "inspect": None}
VALUE_OPTION = {"bench": "--iters", "export": "--opset", "predict": "--topk", "inspect": "--soc"}


def invoke(name: str, args: list[str]):
    module = importlib.import_module(f"lsnet_deploy.cli.{name}")
    if name == "bench":
        args = module.normalize_args(args)
    return CliRunner().invoke(module.app, args)


def json_error(result) -> dict:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    payload = json.loads(lines[0])
    assert payload["ok"] is False and payload["exit_code"] == 2 and payload["error"]
    return payload


@pytest.mark.parametrize("name", CLIS)
def test_parse_errors_with_json_print_json(name, tmp_path):
    some_file = tmp_path / "m.onnx"
    some_file.write_bytes(b"")
    assert "No such option" in json_error(invoke(name, [str(some_file), "--json", "--no-such-option"]))["error"]
    if NUMBER_OPTION[name]:
        option = NUMBER_OPTION[name]
        assert option in json_error(invoke(name, [str(some_file), "--json", option, "many"]))["error"]
    option = VALUE_OPTION[name]
    assert option in json_error(invoke(name, [str(some_file), "--json", option]))["error"]


def test_without_json_stdout_stays_empty(tmp_path):
    result = invoke("bench", [str(tmp_path / "m.onnx"), "--no-such-option"])
    assert result.exit_code == 2 and result.stdout == "" and "No such option" in result.stderr


def test_a_failed_bench_run_with_json_prints_json(tmp_path):
    payload = json_error(invoke("bench", [str(tmp_path / "missing.onnx"), "--json"]))
    assert "does not exist" in payload["error"]
