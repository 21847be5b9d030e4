"""lsnet-export's recipe flags: written into the metadata, named in the summary, bad values refused before loading."""

from __future__ import annotations

import json

from ..conftest import conformance_case, error_line, invoke_export

TINY = str(conformance_case("tiny")[0])


def test_recipe_flags_reach_the_metadata_and_the_summary(tmp_path):
    from lsnet_deploy.artifact_metadata import read_artifact_metadata

    out = tmp_path / "tiny.onnx"
    result = invoke_export("-w", TINY, "--interpolation", "bilinear", "--crop-pct", "1.0", "--no-validate", "-o", out)
    assert result.exit_code == 0, result.output
    recipe_lines = [line for line in result.output.splitlines() if line.strip().startswith("recipe")]
    assert len(recipe_lines) == 1, result.output
    # the flags given are named as given; the fields nothing records are named as assumed
    assert "bilinear, crop 1 (center)" in recipe_lines[0] and "given on the command line" in recipe_lines[0]
    assert "assumed" in recipe_lines[0]
    meta = read_artifact_metadata(out).fields
    assert meta["interpolation"] == "bilinear" and meta["crop_pct"] == 1.0
    assert meta["mean"] == [0.485, 0.456, 0.406]


def test_a_bad_recipe_value_is_refused_in_json_before_loading(tmp_path):
    out = tmp_path / "x.onnx"
    result = invoke_export("-w", tmp_path / "missing.pth", "--interpolation", "bicubc", "--json", "-o", out)
    assert result.exit_code == 2
    payload = json.loads(next(line for line in result.output.splitlines() if line.startswith("{")))
    # the recipe is checked before the (missing) checkpoint is opened
    assert payload["ok"] is False and "did you mean 'bicubic'" in payload["error"], payload
    assert not out.exists()


def test_a_crop_pct_out_of_range_is_one_line(tmp_path):
    result = invoke_export("-w", TINY, "--crop-pct", "0", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "crop" in error_line(result)
    assert list(tmp_path.iterdir()) == []
