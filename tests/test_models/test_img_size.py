"""Other input sizes: the attention bias table is resampled once at load time."""

import argparse
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from lsnet_deploy import reparameterize
from lsnet_deploy.errors import UsageError
from lsnet_deploy.models import create_model, load_model
from lsnet_deploy.models.resize import resample_bias_table

from ..conftest import REPO, conformance_case

#: the conformance tiny state dict wrapped with its training args (input_size 128): tests/data/sized_checkpoints
SIZED_TINY = REPO / "tests" / "data" / "sized_checkpoints" / "tiny.pth"


def test_own_size_is_bit_identical_to_loading_without_resampling():
    path, x, _ = conformance_case("tiny")
    plain, same = load_model(SIZED_TINY), load_model(path, img_size=128)  # recorded 128 vs asked for 128
    with torch.no_grad():
        assert torch.equal(plain(x), same(x))


@pytest.mark.parametrize("size", [256, (192, 256), 96, (160, 128)])
def test_other_sizes_run(size):
    path, _, _ = conformance_case("tiny")
    model = load_model(path, img_size=size)
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.img_size == (h, w)


def test_lsnet_t_at_256_and_192x256():
    path, _, _ = conformance_case("lsnet_t")
    for size in (256, (192, 256)):
        model = load_model(path, img_size=size)
        h, w = (size, size) if isinstance(size, int) else size
        with torch.no_grad():
            assert model(torch.randn(1, 3, h, w)).shape == (1, 1000)


def test_resampled_table_is_bicubic_and_identity_at_same_grid():
    table = torch.randn(3, 16)
    assert torch.equal(resample_bias_table(table, (4, 4), (4, 4)), table)
    grown = resample_bias_table(table, (4, 4), (7, 5))
    assert grown.shape == (3, 35)
    const = torch.full((2, 9), 0.25)
    torch.testing.assert_close(resample_bias_table(const, (3, 3), (6, 6)), torch.full((2, 36), 0.25))


def test_fused_checkpoint_can_be_resized_like_the_unfused_one(tmp_path):
    path, _, _ = conformance_case("tiny")
    fused = reparameterize(load_model(path, img_size=128))
    saved = tmp_path / "fused.pth"
    torch.save(fused.state_dict(), saved)
    a = reparameterize(load_model(path, img_size=192))
    b = load_model(saved, img_size=192)
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)


def _custom_at_160():
    """A custom LSNet trained at 160x160: its 3x3 last grid is also what 192 gives."""
    return create_model("lsnet", embed_dim=[16, 32, 48, 64], depth=[1, 2, 3, 4], num_heads=[2, 2, 2, 2],
                        img_size=160, num_classes=5).eval()


@pytest.mark.parametrize("input_size", [160, (3, 160, 160), [160, 160]])
def test_reference_training_checkpoint_loads_at_its_recorded_size(tmp_path, input_size):
    model = _custom_at_160()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": model.state_dict(), "optimizer": {}, "epoch": 9,
                "args": argparse.Namespace(input_size=input_size, lr=1e-3)}, path)
    loaded = load_model(path)
    assert loaded.img_size == (160, 160) and loaded.load_notes == []
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_project_metadata_in_a_checkpoint_records_the_size(tmp_path):
    model = _custom_at_160()
    torch.save({"state_dict": model.state_dict(), "lsnet_deploy": {"input_size": [160, 160]}}, tmp_path / "a.pth")
    save_file(model.state_dict(), tmp_path / "a.safetensors", metadata={"input_size": json.dumps([160, 160])})
    assert load_model(tmp_path / "a.pth").img_size == (160, 160)
    assert load_model(tmp_path / "a.safetensors").img_size == (160, 160)


def test_a_bare_custom_state_dict_with_an_ambiguous_grid_is_refused(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(_custom_at_160().state_dict(), path)
    with pytest.raises(UsageError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and "160 or 192" in message and "--imgsz" in message and "img_size=" in message


def test_img_size_overrides_the_recorded_size_and_notes_the_resampling(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": _custom_at_160().state_dict(), "args": argparse.Namespace(input_size=160)}, path)
    loaded = load_model(path, img_size=256)
    assert loaded.img_size == (256, 256)
    assert loaded.load_notes == ["attention bias resampled from 160x160 to 256x256"]
    plain = tmp_path / "plain.pth"
    torch.save(_custom_at_160().state_dict(), plain)
    assert load_model(plain, img_size=160).img_size == (160, 160)   # the ambiguity needs no guess here
    assert load_model(plain, img_size=192).load_notes == []        # same grid: nothing resampled


def test_a_published_architecture_assumes_224_and_says_so(tmp_path):
    path = tmp_path / "lsnet_t_finetune.pth"
    torch.save(create_model("lsnet_t", num_classes=7).state_dict(), path)
    loaded = load_model(path)
    assert loaded.img_size == (224, 224) and loaded.variant == "lsnet_t"
    assert loaded.load_notes == ["input size not recorded in the checkpoint; assumed the published 224 "
                                 "(pass --imgsz to choose)"]
    assert load_model(path, img_size=256).load_notes == []          # 256 shares 224's grid
    assert load_model(path, img_size=288).load_notes == ["attention bias resampled from 224x224 to 288x288"]


def test_nothing_beside_a_checkpoint_sets_its_size(conformance_dir, tmp_path):
    import shutil

    # a conformance-style cases.json beside the file used to set 128 silently; loading reads only the file
    shutil.copy(conformance_dir / "tiny.pth", tmp_path / "tiny.pth")
    shutil.copy(conformance_dir / "cases.json", tmp_path / "cases.json")
    with pytest.raises(UsageError, match="fits 96 or 128; pass --imgsz"):
        load_model(tmp_path / "tiny.pth")
    assert load_model(tmp_path / "tiny.pth", img_size=128).img_size == (128, 128)
    assert load_model(SIZED_TINY).img_size == (128, 128)  # recorded in its training args
    cli = subprocess.run([sys.executable, "-m", "lsnet_deploy", "-w", str(tmp_path / "tiny.pth"),
                          "-o", str(tmp_path / "tiny.onnx")], capture_output=True, text=True)
    assert cli.returncode == 2 and "pass --imgsz" in cli.stderr and not (tmp_path / "tiny.onnx").exists()
