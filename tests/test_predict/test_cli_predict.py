"""``lsnet-predict``: tables, JSON lines, per-file errors, directories, files without metadata."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from lsnet_deploy.cli.predict import app

from .conftest import LABELS


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def folder(tmp_path, photos):
    """Two photos, a text file and a hidden file in a directory, plus a photo in a subdirectory."""
    shutil.copy(photos[0], tmp_path / "a.jpg")
    shutil.copy(photos[2], tmp_path / "b.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    shutil.copy(photos[1], tmp_path / "sub" / "c.jpg")
    return tmp_path


def test_table_for_a_directory(runner, tiny_onnx, folder):
    result = runner.invoke(app, [str(tiny_onnx), str(folder), "--topk", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "RANK", "SCORE", "CLASS", "LABEL"]
    assert len(lines) == 1 + 2 * 2  # header, 2 ranks for each of the 2 top-level images
    first = lines[1].split()
    assert first[0] == str(folder / "a.jpg") and first[1] == "1" and first[4] in LABELS
    assert lines[2].split()[0] == "2"  # later ranks leave the image column empty
    assert "skipped 1 non-image file" in result.stderr and "c.jpg" not in result.stdout


def test_json_lines_recursive(runner, tiny_onnx, folder):
    result = runner.invoke(app, [str(tiny_onnx), str(folder), "--json", "-r", "-k", "3"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(folder / n) for n in ("a.jpg", "b.png", "sub/c.jpg")]
    for record in records:
        ranks = record["predictions"]
        assert [r["rank"] for r in ranks] == [1, 2, 3]
        assert all(r["label"] == LABELS[r["index"]] for r in ranks)
        assert ranks[0]["score"] >= ranks[1]["score"] >= ranks[2]["score"] > 0


def test_bad_files_get_their_own_error_and_the_rest_still_run(runner, tiny_onnx, folder, tmp_path):
    text = folder / "notes.txt"
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\x00" * 64)
    args = [str(tiny_onnx), str(folder / "a.jpg"), str(text), str(fake), str(tmp_path / "gone.png"), str(folder / "b.png")]
    table = runner.invoke(app, args)
    assert table.exit_code == 1
    assert [line.split()[0] for line in table.stdout.splitlines()[1::5]] == [str(folder / "a.jpg"), str(folder / "b.png")]
    for expected in (f"error: {text}: not an image file", f"error: {fake}: not an image file",
                     "gone.png: no such file", "3 of 5 images could not be read"):
        assert expected in table.stderr
    lines = runner.invoke(app, [*args, "--json"]).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [("error" in r) for r in records] == [False, True, True, True, False]
    assert records[3] == {"file": str(tmp_path / "gone.png"), "error": f"{tmp_path / 'gone.png'}: no such file"}


def test_artifact_without_metadata(runner, foreign_onnx, tiny_onnx, photos):
    refused = runner.invoke(app, [str(foreign_onnx), str(photos[0])])
    assert refused.exit_code == 2
    assert "no lsnet-export metadata" in refused.stderr and "--imgsz, --mean and --std" in refused.stderr
    args = [str(photos[0]), "--json", "--imgsz", "128", "--mean", "imagenet", "--std", "0.229,0.224,0.225"]
    foreign = runner.invoke(app, [str(foreign_onnx), *args])
    assert foreign.exit_code == 0, foreign.output
    assert "has no lsnet-export metadata; preprocessing 128x128, crop 0.9 bicubic" in foreign.stderr
    original = json.loads(runner.invoke(app, [str(tiny_onnx), *args[:2]]).stdout)
    record = json.loads(foreign.stdout)
    assert [r["index"] for r in record["predictions"]] == [r["index"] for r in original["predictions"]]
    assert [r["score"] for r in record["predictions"]] == [r["score"] for r in original["predictions"]]
    assert all(r["label"] is None for r in record["predictions"])


def test_overriding_the_metadata_is_announced(runner, tiny_onnx, photos):
    result = runner.invoke(app, [str(tiny_onnx), str(photos[0]), "--crop-pct", "1.0"])
    assert result.exit_code == 0 and "warning: --crop-pct replaces the artifact's crop_pct (0.9)" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["missing.onnx", "x.jpg"], "missing.onnx: no such file"),
    (["{onnx}", "{empty}"], "no images to classify"),
    (["{onnx}", "{photo}", "--topk", "0"], "--topk must be at least 1"),
    (["{onnx}", "{photo}", "--imgsz", "12x"], "--imgsz '12x'"),
    (["{onnx}", "{photo}", "--runtime", "onnxrt"], "unknown runtime 'onnxrt'"),
])
def test_usage_errors_exit_2_with_one_line(runner, tiny_onnx, photos, tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(onnx=tiny_onnx, empty=empty, photo=photos[0]) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
