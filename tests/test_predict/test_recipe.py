"""The preprocessing recipe is the user's: read from the checkpoint, overridden by the user, said when assumed.

Also the policy facts defined once (``lsnet_deploy.constants``): checkpoint suffixes and hub prefixes.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from lsnet_deploy.constants import CHECKPOINT_SUFFIXES, HUB_PREFIXES, checkpoint_suffixes_text
from lsnet_deploy.errors import CheckpointError, UsageError
from lsnet_deploy.metadata import build_metadata, decode_metadata
from lsnet_deploy.models import load_model
from lsnet_deploy.predict import Predictor
from lsnet_deploy.preprocess import Preprocessing
from lsnet_deploy.recipe import (ASSUMED_TEXT, DEFAULT_RECIPE, REFERENCE_CROP_PCT, Recipe, apply_recipe,
                                 read_recipe_card, recipe_from_training_args)

from ..conftest import CONFORMANCE

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
#: a recipe unlike timm's ImageNet one in every field
OWN = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bilinear", "crop_pct": 1.0}


@pytest.fixture(scope="module")
def tiny_state():
    return torch.load(CONFORMANCE / "tiny.pth", weights_only=True)


def save_training_checkpoint(path, state, **args):
    torch.save({"model": state, "epoch": 9, "args": argparse.Namespace(input_size=128, **args)}, path)
    return path


# ------------------------------------------------------------------------------------ read from the checkpoint


def test_recipe_recorded_in_training_args_is_the_models(tmp_path, tiny_state):
    path = save_training_checkpoint(tmp_path / "own.pth", tiny_state, lr=1e-3, **{**OWN, "mean": list(OWN["mean"])})
    model = load_model(path)
    assert model.recipe == Recipe(**OWN)
    assert model.pretrained_cfg["interpolation"] == "bilinear" and model.pretrained_cfg["crop_pct"] == 1.0
    assert apply_recipe(model) == "from the checkpoint's training args"
    meta = decode_metadata(build_metadata(model, ska_form="auto", fused=False, precision="float32", batch=1))
    assert Preprocessing.from_metadata(meta).recipe == Recipe(**OWN)  # the metadata round-trips the recipe
    assert meta["resize_size"] == [128, 128]


def test_reference_training_args_give_the_reference_eval_transform(tmp_path, tiny_state):
    # THU-MIG/lsnet main.py records no recipe fields; its build_transform follows from input_size and finetune
    common = {"train_interpolation": "bicubic", "model": "lsnet_t", "data_set": "IMNET"}
    scratch = load_model(save_training_checkpoint(tmp_path / "scratch.pth", tiny_state, finetune="", **common))
    assert scratch.recipe == Recipe(**IMAGENET, interpolation="bicubic", crop_pct=REFERENCE_CROP_PCT)
    assert int(128 / scratch.recipe.crop_pct) == int(256 / 224 * 128)  # Resize(int(256 / 224 * size))
    tuned = load_model(save_training_checkpoint(tmp_path / "tuned.pth", tiny_state, finetune="lsnet_t.pth", **common))
    assert tuned.recipe == Recipe(**IMAGENET, crop_pct=1.0, crop_mode="squash")  # Resize((size, size))
    assert apply_recipe(tuned) == "from the checkpoint's training args"


def test_partial_and_empty_training_args(tmp_path, tiny_state):
    # timm train.py leaves --interpolation '' and --crop-pct None when not set: only mean/std are recorded
    model = load_model(save_training_checkpoint(tmp_path / "timm.pth", tiny_state, mean=[0.5] * 3, std=[0.5] * 3,
                                                interpolation="", crop_pct=None))
    assert model.recipe == Recipe(mean=(0.5,) * 3, std=(0.5,) * 3)
    line = apply_recipe(model)
    assert line == ("mean, std from the checkpoint's training args; interpolation, crop_pct assumed (timm's "
                    "ImageNet eval recipe)")
    assert recipe_from_training_args(argparse.Namespace(input_size=96, min_scale=0.35)) == {}
    assert recipe_from_training_args(None) == {}


def test_a_bad_recorded_recipe_is_not_used_and_said(tmp_path, tiny_state):
    model = load_model(save_training_checkpoint(tmp_path / "bad.pth", tiny_state, interpolation="cubic-ish"))
    assert model.recipe == DEFAULT_RECIPE
    assert any("not valid" in note and "cubic-ish" in note for note in model.load_notes)
    assert apply_recipe(model).startswith(ASSUMED_TEXT)


def test_safetensors_header_records_a_recipe(tmp_path, tiny_state):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, path,
              metadata={"input_size": "128", "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]",
                        "interpolation": "bilinear", "crop_pct": "1.0"})
    model = load_model(path)
    assert model.recipe == Recipe(**OWN)
    assert apply_recipe(model) == "from the checkpoint's safetensors metadata"


# ------------------------------------------------------------------------------------ the user's values


def test_command_line_values_override_the_checkpoint_field_by_field(tmp_path, tiny_state):
    model = load_model(save_training_checkpoint(tmp_path / "own.pth", tiny_state, **OWN))
    line = apply_recipe(model, crop_pct=0.875, interpolation="BICUBIC")
    assert model.recipe == Recipe(**{**OWN, "crop_pct": 0.875, "interpolation": "bicubic"})
    assert line == "mean, std from the checkpoint's training args; interpolation, crop_pct given on the command line"
    line = apply_recipe(model, mean="imagenet", std="0.229,0.224,0.225", interpolation="bicubic", crop_pct=0.9)
    assert line == "given on the command line" and model.recipe == DEFAULT_RECIPE


def test_nothing_recorded_says_what_was_assumed(tiny_checkpoint):
    model = load_model(tiny_checkpoint)  # conformance checkpoints record their size, not their recipe
    line = apply_recipe(model)
    assert line == ("assumed timm's ImageNet eval recipe (bicubic, crop 0.9, ImageNet mean/std): nothing records "
                    "the recipe; pass --mean/--std/--interpolation/--crop-pct")
    assert model.recipe == DEFAULT_RECIPE


def test_a_card_the_user_passes(tmp_path, tiny_checkpoint):
    card = tmp_path / "config.json"  # a timm hub config.json
    card.write_text(json.dumps({"architecture": "lsnet_t", "pretrained_cfg": {**OWN, "input_size": [3, 128, 128]}}))
    assert read_recipe_card(card) == {k: list(v) if isinstance(v, tuple) else v for k, v in OWN.items()}
    model = load_model(tiny_checkpoint)
    assert apply_recipe(model, card=card, crop_pct=0.95) == ("mean, std, interpolation from the recipe card "
                                                            "config.json; crop_pct given on the command line")
    assert model.recipe == Recipe(**{**OWN, "crop_pct": 0.95})
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(UsageError, match="records no preprocessing field"):
        read_recipe_card(tmp_path / "empty.json")
    (tmp_path / "bad.json").write_text("{mean")
    with pytest.raises(UsageError, match="not JSON"):
        read_recipe_card(tmp_path / "bad.json")


@pytest.mark.parametrize("values, message", [
    ({"interpolation": "bicubc"}, "--interpolation: unknown interpolation 'bicubc'; did you mean 'bicubic'?"),
    ({"interpolation": "fancy"}, "--interpolation: unknown interpolation 'fancy' (choose from bicubic, bilinear"),
    ({"crop_pct": 0}, "--crop-pct: crop_pct must be in (0, 4], got 0"),
    ({"crop_pct": float("nan")}, "--crop-pct: crop_pct must be in"),
    ({"crop_mode": "centre"}, "--crop-mode: crop_mode 'centre' is not supported; did you mean 'center'?"),
    ({"mean": "0.5,0.5"}, "--mean needs 1 or 3 values"),
    ({"mean": "124,117,104"}, "--mean [124.0, 117.0, 104.0] looks like 0-255 pixel units"),
    ({"std": "0.2,0,0.2"}, "--std: std values must be positive"),
    ({"std": "wide"}, "--std 'wide' is not a list of numbers"),
])
def test_bad_values_are_one_clear_line(values, message, tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        apply_recipe(model, **values)
    assert "\n" not in str(caught.value)
    assert model.recipe == DEFAULT_RECIPE  # nothing set on a bad value


def test_predictor_on_a_checkpoint_preprocesses_with_its_recipe(tmp_path, tiny_state):
    path = save_training_checkpoint(tmp_path / "own.pth", tiny_state, **OWN)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    with Predictor(path) as predictor:
        assert predictor.recipe == Preprocessing((128, 128), **OWN)
        assert predictor.recipe_origin == "from the checkpoint's training args"
        own = predictor.preprocess(picture)
    with Predictor(path, crop_mode="squash") as predictor:
        assert predictor.recipe.crop_mode == "squash" and predictor.overridden == ["crop_mode"]
        assert not np.array_equal(predictor.preprocess(picture), own)


# ------------------------------------------------------------------------------------ policy facts, once


def test_every_checkpoint_suffix_load_model_takes_is_a_checkpoint_for_predictor(tmp_path, tiny_state):
    assert ".ckpt" in CHECKPOINT_SUFFIXES and ".safetensors" in CHECKPOINT_SUFFIXES
    path = save_training_checkpoint(tmp_path / "last.ckpt", tiny_state)  # Lightning's suffix
    assert load_model(path).img_size == (128, 128)
    with Predictor(path) as predictor:  # before: "cannot tell the runtime" for a .ckpt load_model accepted
        assert predictor.runtime == "torch"
        assert predictor.predict(np.zeros((3, 128, 128), np.float32), topk=1)[0].ok


def test_the_unknown_suffix_message_lists_the_suffixes(tmp_path):
    odd = tmp_path / "weights.h5"
    odd.write_bytes(b"x")
    with pytest.raises(CheckpointError, match=f"use {checkpoint_suffixes_text()}"):
        load_model(odd)
    assert checkpoint_suffixes_text() == ".pth, .pt, .bin, .ckpt, .tar or .safetensors"


def test_hub_prefixes_are_one_fact():
    from lsnet_deploy.metadata import public_source
    from lsnet_deploy.models import hub

    assert hub.HUB_PREFIXES is HUB_PREFIXES
    for prefix in HUB_PREFIXES:
        assert hub.is_hub_source(f"{prefix}org/repo") and public_source(f"{prefix}org/repo") == f"{prefix}org/repo"
    assert public_source("/home/me/weights.pth") == "weights.pth"


def test_lsnet_predict_says_a_checkpoints_recipe_and_takes_crop_mode(tmp_path, tiny_state):
    from typer.testing import CliRunner

    from lsnet_deploy.cli.predict import app

    path = save_training_checkpoint(tmp_path / "own.pth", tiny_state, **OWN)
    picture = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(picture)
    result = CliRunner().invoke(app, [str(path), str(picture), "--crop-mode", "squash", "--topk", "1"])
    assert result.exit_code == 0, result.output
    assert ("note: preprocessing bilinear, crop 1 (squash), mean [0.5, 0.5, 0.5], std [0.25, 0.25, 0.25]: from the "
            "checkpoint's training args, with the flags' changes below") in result.stderr
    assert "warning: --crop-mode replaces the artifact's crop_mode (center)" in result.stderr
    bad = CliRunner().invoke(app, [str(path), str(picture), "--interpolation", "bilinaer"])
    assert bad.exit_code == 2 and "did you mean 'bilinear'?" in bad.stderr
