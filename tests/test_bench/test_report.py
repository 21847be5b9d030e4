"""``lsnet-bench report``: grouping, baselines, paired and unpaired ratios, several machines, Markdown,
the chart."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lsnet_deploy.bench.report import PER_RUN, Baseline, build_report, group_rows, render_markdown, render_text
from lsnet_deploy.bench.results import append_records, read_records
from lsnet_deploy.cli.bench import app, normalize_args
from lsnet_deploy.errors import UsageError

runner = CliRunner()


@pytest.fixture(scope="module")
def measured(tiny_onnx, tiny_copy, tmp_path_factory):
    """Real results: tiny and tiny_copy interleaved on ORT, 1 thread."""
    out = tmp_path_factory.mktemp("report") / "here.jsonl"
    result = runner.invoke(app, normalize_args([str(tiny_onnx), str(tiny_copy), "--threads", "1", "--iters", "5",
                                                "--warmup", "1", "--warmup-time", "0", "-o", str(out)]))
    assert result.exit_code == 0, result.output
    return read_records([out])[0]


def fake_machine(records, hostname: str, scale: float, run_id: str) -> list[dict]:
    """The same records as if measured on another machine, ``scale`` times slower, in another run."""
    out = copy.deepcopy(records)
    for record in out:
        record["machine"]["hostname"] = hostname
        record["run_id"] = run_id
        for key in ("median_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms"):
            record["stats"][key] *= scale
        record["stats"]["throughput"] /= scale
    return out


def test_rows_and_paired_ratios(measured):
    rows, baseline = build_report(measured)
    assert baseline == Baseline(PER_RUN, "first candidate")
    assert [r.model for r in rows] == ["tiny", "tiny_copy"]
    first, second = rows
    assert first.is_baseline and first.ratio == 1.0 and first.paired
    expected = measured[1]["stats"]["median_ms"] / measured[0]["stats"]["median_ms"]
    np.testing.assert_allclose(second.ratio, expected, rtol=1e-9)
    assert second.paired and second.runs == 1
    assert first.runtime == "ort cpu 1t" and first.precision == "float32" and first.input == "128x128"


def test_several_machines_merge_and_unpaired_ratios_are_marked(measured):
    other = fake_machine(measured, "jetson-orin", scale=3.0, run_id="elsewhere")
    rows, _ = build_report(measured + other, baseline="device=jetson")
    assert len({r.device for r in rows}) == 2 and len(rows) == 4
    here = [r for r in rows if "jetson" not in r.device]
    for row in here:
        np.testing.assert_allclose(row.ratio, 1 / 3, rtol=1e-9)
        assert not row.paired                  # different runs: flagged
    text = render_text(rows, Baseline("device", rows[0].device))
    assert "0.33x*" in text and "measured in different runs" in text
    # the same row measured twice is combined by its median
    rows, _ = build_report(measured + fake_machine(measured, measured[0]["machine"]["hostname"], 3.0, "again"))
    assert [r.runs for r in rows] == [2, 2]


def test_runtime_and_precision_baselines(measured):
    other = copy.deepcopy(measured)
    for record in other:
        record["runtime"], record["provider"], record["threads"] = "executorch", None, 1
        record["stats"]["median_ms"] *= 2
    rows, baseline = build_report(measured + other, baseline="runtime=ort")
    assert baseline.value == "ort cpu 1t"
    et = [r for r in rows if r.runtime.startswith("executorch")]
    np.testing.assert_allclose([r.ratio for r in et], [2.0, 2.0], rtol=1e-9)
    assert all(r.paired for r in et)           # same run ids: paired ratios
    with pytest.raises(UsageError, match="matches no result"):
        build_report(measured, baseline="runtime=tensorrt")
    with pytest.raises(UsageError, match="choose a dimension"):
        build_report(measured, baseline="colour=red")
    with pytest.raises(UsageError, match="no benchmark results"):
        build_report([])
    two_threads = copy.deepcopy(measured)
    for record in two_threads:
        record["threads"] = 2
    with pytest.raises(UsageError, match="ambiguous: it matches runtimes ort cpu 1t, ort cpu 2t"):
        build_report(measured + two_threads, baseline="ort")


def test_markdown(measured):
    rows, baseline = build_report(measured, baseline="tiny_copy")
    text = render_markdown(rows, baseline)
    lines = text.splitlines()
    assert lines[0].startswith("| Device | Runtime | Model |") and lines[1].startswith("|---|")
    assert len([ln for ln in lines if ln.startswith("| ")]) == 1 + len(rows)
    assert "**tiny_copy**" in text and "1.00x" in text


def test_report_command_text_markdown_and_chart(measured, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    from PIL import Image

    here, there = tmp_path / "here.jsonl", tmp_path / "there.jsonl"
    append_records(here, measured)
    append_records(there, fake_machine(measured, "jetson-orin", 2.0, "far"))
    with open(there, "a") as handle:
        handle.write('{"schema": "lsnet-bench/1", "broken\n')
    chart, table = tmp_path / "latency.png", tmp_path / "table.md"
    result = runner.invoke(app, ["report", str(here), str(there), "--format", "markdown", "--baseline",
                                 "model=tiny", "--plot", str(chart), "-o", str(table)])
    assert result.exit_code == 0, result.output
    assert f"{there}:3: skipped (not valid JSON" in result.stderr
    assert table.read_text().count("jetson-orin") == 2
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 5                      # bars, text and axes, not a blank canvas
    assert not list(tmp_path.glob(".latency*"))  # no temporary file left behind
    text = runner.invoke(app, ["report", str(here)])
    assert text.exit_code == 0 and "tiny_copy" in text.stdout and "Ratio" in text.stdout


def test_report_errors(tmp_path, measured):
    result = runner.invoke(app, ["report", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not json\n")
    result = runner.invoke(app, ["report", str(empty)])
    assert result.exit_code == 2 and "no benchmark results" in result.stderr
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in measured))
    result = runner.invoke(app, ["report", str(good), "--format", "html"])
    assert result.exit_code == 2 and "--format" in result.stderr
    result = runner.invoke(app, ["report", str(good), "--plot", str(tmp_path / "no" / "x.png")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_group_rows_order(measured):
    shuffled = list(reversed(measured))
    assert [r.model for r in group_rows(shuffled)] == ["tiny", "tiny_copy"]


def _same_stem_other_suffix(measured):
    """``tiny.onnx`` and a ``tiny.ort`` (another file, the same stem) measured on the same runtime."""
    onnx = copy.deepcopy(measured[0])
    ort = copy.deepcopy(measured[0])
    ort["source"].update(file="tiny.ort", format="ort", path=ort["source"]["path"][:-5] + ".ort", sha256="f" * 64)
    ort["stats"]["median_ms"] *= 2
    return onnx, ort


def test_different_artifacts_of_one_name_are_different_rows(measured):
    onnx, ort = _same_stem_other_suffix(measured)
    rows = group_rows([onnx, ort])
    assert len(rows) == 2 and all(r.runs == 1 for r in rows)
    assert sorted(r.label for r in rows) == ["tiny.onnx (float32)", "tiny.ort (float32)"]
    assert sorted(r.model for r in rows) == ["tiny.onnx", "tiny.ort"]
    swapped = group_rows([ort, onnx])
    assert [(r.model, r.label, r.stat("median_ms")) for r in swapped] == \
        [(r.model, r.label, r.stat("median_ms")) for r in rows]
    text = render_text(*build_report([ort, onnx], baseline="tiny.onnx"))
    assert "tiny.ort" in text and "2.00x" in text
    # one artifact measured twice (same SHA-256) is still one row, under its plain name
    assert [r.runs for r in group_rows([onnx, copy.deepcopy(onnx)])] == [2]
    assert group_rows([onnx])[0].label == "tiny.onnx (float32)" and group_rows([onnx])[0].model == "tiny"


def test_same_file_name_in_two_directories_gets_a_hash(measured):
    a, b = copy.deepcopy(measured[0]), copy.deepcopy(measured[0])
    b["source"]["sha256"] = "ab" * 32
    models = {r.model for r in group_rows([a, b])}
    assert models == {f"tiny.onnx@{a['source']['sha256'][:8]}", "tiny.onnx@abababab"}
    assert models == {r.model for r in group_rows([b, a])}


def test_the_chart_and_staged_artifacts_get_normal_file_modes(measured, tmp_path):
    import os
    import stat

    from lsnet_deploy.atomic import current_umask, staged_output

    old = os.umask(0o022)
    try:
        assert current_umask() == 0o022
        package = tmp_path / "m.mlpackage"
        with staged_output(package, extra_suffixes=(".json",)) as tmp:
            (tmp / "Data" / "weights").mkdir(parents=True)
            (tmp / "Data" / "model.mlmodel").write_bytes(b"x")
            os.chmod(tmp / "Data" / "model.mlmodel", 0o600)
            os.chmod(tmp / "Data", 0o700)
            os.chmod(tmp, 0o700)
            side = tmp.with_name(tmp.name + ".json")
            side.write_text("{}")
            os.chmod(side, 0o600)
        modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
        assert modes == {"m.mlpackage": 0o755, "m.mlpackage/Data": 0o755, "m.mlpackage/Data/weights": 0o755,
                         "m.mlpackage/Data/model.mlmodel": 0o644, "m.mlpackage.json": 0o644}
        os.umask(0o027)
        single = tmp_path / "x.onnx"
        with staged_output(single) as tmp:
            tmp.write_bytes(b"x")
            os.chmod(tmp, 0o600)
        assert stat.S_IMODE(single.stat().st_mode) == 0o640
        pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
        from lsnet_deploy.bench.plot import plot_latency

        chart = plot_latency(group_rows(measured), tmp_path / "chart.png")
        assert stat.S_IMODE(chart.stat().st_mode) == 0o640
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------------- friction


def _as(record: dict, model: str, runtime: str, precision: str = "float32", scale: float = 1.0, **extra) -> dict:
    """``record`` as another candidate of its run: another model, runtime or precision, ``scale`` times slower."""
    out = copy.deepcopy(record)
    out.update(model=model, label=model, runtime=runtime, precision=precision, **extra)
    out["source"].update(file=f"{model}.x", sha256=model * 8)
    for key in ("median_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms"):
        out["stats"][key] *= scale
    return out


def test_every_row_of_a_run_gets_a_ratio_against_its_first_candidate(measured):
    first = measured[0]
    run = [first, _as(first, "tiny_lite", "litert", scale=2.0, position=1),
           _as(first, "tiny_pte", "executorch", scale=0.5, position=2)]
    rows, baseline = build_report(run)
    ratios = {r.model: r.ratio for r in rows}
    assert ratios == pytest.approx({"tiny": 1.0, "tiny_lite": 2.0, "tiny_pte": 0.5}, rel=1e-9)
    assert [r.model for r in rows if r.is_baseline] == ["tiny"]
    text = render_text(rows, baseline)
    assert "first candidate of the same run (tiny)" in text and " - " not in text.splitlines()[3]
    # a second run with another first candidate: the vs column says which row each ratio is against
    other = [_as(first, "mnv3", "ort", run_id="second", position=0, scale=4.0),
             _as(first, "tiny_pte", "executorch", run_id="second", position=1, scale=2.0)]
    rows, baseline = build_report(run + other)
    text = render_text(rows, baseline)
    assert " vs " in text.splitlines()[0] and "(column vs)" in text
    pte = next(r for r in rows if r.model == "tiny_pte")
    assert pte.versus == "tiny, mnv3" and pte.ratio == pytest.approx((0.5 + 0.5) / 2)


def test_precision_baseline_pairs_artifacts_of_one_architecture(measured):
    first = measured[0]
    assert first.get("architecture")
    run = [first, _as(first, "tiny.int8", first["runtime"], "int8", scale=0.5, position=1),
           _as(first, "tiny_fp16", first["runtime"], "float16", scale=0.8, position=2)]
    rows, baseline = build_report(run, baseline="precision=float32")
    assert baseline == Baseline("precision", "float32")
    assert {r.model: r.ratio for r in rows} == pytest.approx({"tiny": 1.0, "tiny.int8": 0.5, "tiny_fp16": 0.8})
    assert all(r.paired for r in rows)
    # another architecture never pairs
    foreign = _as(first, "resnet.int8", first["runtime"], "int8", position=3, architecture="resnet18")
    rows, _ = build_report(run + [foreign], baseline="precision=float32")
    assert next(r for r in rows if r.model == "resnet.int8").ratio is None


def test_accuracy_columns_are_kept(measured):
    first = copy.deepcopy(measured[0])
    first["accuracy"] = {"top1": 81.5, "top5": 98.0, "count": 200, "agreement": 100.0, "data": "cifar", "limit": None}
    second = _as(first, "tiny.int8", first["runtime"], "int8", position=1)
    second["accuracy"].update(top1=80.25, agreement=97.5)
    rows, baseline = build_report([first, second])
    for render in (render_text, render_markdown):
        text = render(rows, baseline)
        assert "Top-1 %" in text and "Agree %" in text and "81.50" in text and "80.25" in text and "97.50" in text
        assert "on --data cifar (200 images)" in text
    assert "Top-1" not in render_text(*build_report(measured))  # no --data, no accuracy columns


def test_report_command_baseline_and_accuracy(measured, tmp_path):
    first = copy.deepcopy(measured[0])
    first["accuracy"] = {"top1": 81.5, "top5": 98.0, "count": 200, "agreement": 100.0, "data": "cifar"}
    results = tmp_path / "r.jsonl"
    append_records(results, [first, _as(first, "tiny.int8", first["runtime"], "int8", scale=0.5, position=1)])
    result = runner.invoke(app, ["report", str(results), "--baseline", "precision=float32"])
    assert result.exit_code == 0, result.output
    assert "0.50x" in result.stdout and "Top-1 %" in result.stdout


def test_axis_scale():
    from lsnet_deploy.bench.plot import axis_scale

    assert axis_scale([1.2, 2.0, 618.0]) == "log"
    assert axis_scale([1.0, 9.9]) == "linear" and axis_scale([1.0, 10.0]) == "log"
    assert axis_scale([]) == "linear" and axis_scale([None, 0.0, 5.0]) == "linear"


def test_a_chart_spanning_10x_uses_a_log_axis(measured, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    from matplotlib import pyplot as plt

    from lsnet_deploy.bench.plot import plot_latency

    drawn = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (drawn.append(fig.axes[0].get_xscale()), close(fig)))
    first = measured[0]
    wide = [first, _as(first, "slow", first["runtime"], position=1, scale=618.0 / first["stats"]["median_ms"])]
    plot_latency(build_report(wide)[0], tmp_path / "wide.png")
    plot_latency(build_report(measured)[0], tmp_path / "narrow.png")
    assert drawn == ["log", "linear"]
    assert (tmp_path / "wide.png").stat().st_size > 1000
