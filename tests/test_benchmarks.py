"""benchmarks/ as one set: every script imports and builds its command line, the goals table is consistent
with the scripts and with docs/measurements.md, exports are cached by what made them, and timing goes
through lsnet-bench's harness with its provenance. No timing figure is checked (that needs an idle machine).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
#: modules the scripts share (no command line of their own)
SHARED_MODULES = {"cached_export", "interleave", "peers", "profile_common"}


@pytest.fixture
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield
    for name in SCRIPTS:
        sys.modules.pop(name, None)


def _load(name: str):
    return importlib.import_module(name)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_imports_and_builds_its_command_line(name, benchmarks_on_path, monkeypatch, capsys):
    module = _load(name)
    if name in SHARED_MODULES:
        return
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_goals_table_is_consistent(benchmarks_on_path):
    goals = _load("goals")
    keys = [g.key for g in goals.GOALS]
    assert len(keys) == len(set(keys)), "duplicate goal keys"
    for g in goals.GOALS:
        assert g.limit > 0 and (BENCHMARKS / g.script).is_file(), g
    texts = {name: (BENCHMARKS / f"{name}.py").read_text() for name in SCRIPTS if name != "goals"}
    used = {key for text in texts.values() for key in re.findall(r'(?:report|goal)\("([\w.]+)"', text)}
    assert used <= set(keys), f"scripts name goals the table does not have: {used - set(keys)}"
    speed = {g.key for g in goals.GOALS if g.precision is None}
    assert speed <= used, f"speed goals no script prints: {speed - used}"
    for name, text in texts.items():  # the bounds live in the table only
        assert not re.search(r"goal <= ?\d", text), f"benchmarks/{name}.py hard-codes a goal"


def test_the_accuracy_scripts_use_the_tables_numbers(benchmarks_on_path):
    goals = _load("goals")
    assert goals.accuracy_limits("qnn_goals.py") == _load("qnn_goals").GOALS
    assert goals.accuracy_limits("arm_accuracy.py") == _load("arm_accuracy").GOAL_POINTS


def test_docs_goals_table_is_generated_from_the_table(benchmarks_on_path):
    goals = _load("goals")
    text = (REPO / "docs" / "measurements.md").read_text()
    block = re.search(r"<!-- goals:start.*?-->\n(.*?)\n<!-- goals:end -->", text, re.S)
    assert block, "docs/measurements.md has no goals block"
    assert block.group(1).strip() == goals.markdown_table(), "regenerate it: python benchmarks/goals.py --markdown"


def test_exports_are_reused_only_when_nothing_that_made_them_changed(benchmarks_on_path, tmp_path, monkeypatch):
    cache = _load("cached_export")
    built = []

    def build(path: Path) -> None:
        built.append(path.name)
        path.write_text("artifact")
        path.with_name(path.name + ".json").write_text("{}")  # a sidecar travels with it

    first = cache.cached_file(tmp_path, "m", ".onnx", {"options": {"ska": "auto"}}, build, progress=lambda _: None)
    assert cache.cached_file(tmp_path, "m", ".onnx", {"options": {"ska": "auto"}}, build,
                             progress=lambda _: None) == first
    assert len(built) == 1 and first.exists() and Path(f"{first}.json").exists()
    other = cache.cached_file(tmp_path, "m", ".onnx", {"options": {"ska": "hybrid"}}, build, progress=lambda _: None)
    assert other != first and len(built) == 2
    environment = dict(cache.environment_key())
    monkeypatch.setattr(cache, "environment_key",
                        lambda: {**environment, "versions": {**environment["versions"], "onnxruntime": "0.0"}})
    upgraded = cache.cached_file(tmp_path, "m", ".onnx", {"options": {"ska": "auto"}}, build, progress=lambda _: None)
    assert upgraded not in (first, other) and len(built) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building")]


def test_cache_key_covers_export_options_and_calibration_pictures(benchmarks_on_path, tmp_path):
    from lsnet_deploy.exporters import ExportOptions

    cache = _load("cached_export")
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.jpg").write_bytes(b"1")
    keys = {cache.cache_key({"options": ExportOptions(validate=False)}),
            cache.cache_key({"options": ExportOptions(validate=False, half=True)}),
            cache.cache_key({"options": ExportOptions(int8=True, calib=calib, validate=False)})}
    (calib / "b.jpg").write_bytes(b"2")
    keys.add(cache.cache_key({"options": ExportOptions(int8=True, calib=calib, validate=False)}))
    assert len(keys) == 4


def test_timing_goes_through_the_harness_with_provenance(benchmarks_on_path, tmp_path):
    import argparse

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = tmp_path / "conv.onnx"
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["logits"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 16, 16])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    interleave = _load("interleave")
    parser = argparse.ArgumentParser()
    interleave.add_timing_arguments(parser)
    results = tmp_path / "results.jsonl"
    args = parser.parse_args(["--rounds", "3", "--warmup", "1", "--threads", "1", "--results", str(results)])
    records = interleave.interleaved_records({"a": path, "b": path}, args)
    assert [r["label"] for r in records] == ["a", "b"]
    for record in records:
        assert record["stats"]["median_ms"] > 0 and record["runtime"] == "ort" and record["threads"] == 1
        assert record["source"]["sha256"] and record["machine"] and record["input_shape"] == [1, 3, 16, 16]
        assert record["settings"]["spinning"] is False
    assert [json.loads(line)["label"] for line in results.read_text().splitlines()] == ["a", "b"]
