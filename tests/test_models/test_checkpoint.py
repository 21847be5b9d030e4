"""Checkpoint loading: formats, wrappers, architecture inference, and every bad input's clear error."""

import argparse
import os
import pickle
import random

import pytest
import torch
from safetensors.torch import save_file

from lsnet_deploy.errors import CheckpointError, UnsafeCheckpointError, UsageError
from lsnet_deploy.models import create_model, infer_config, load_model

from ..conftest import CONFORMANCE, conformance_case


@pytest.fixture(scope="module")
def tiny():
    """(the reference's bare state dict file, its tensors, input, reference output) of the tiny case."""
    _, x, expected = conformance_case("tiny")
    path = CONFORMANCE / "tiny.pth"
    return path, torch.load(path, weights_only=True), x, expected


def _out(model, x):
    with torch.no_grad():
        return model(x)


COMBINATIONS = [(s, w) for s in (".pth", ".pt", ".bin") for w in ("plain", "model", "state_dict", "ddp")]
COMBINATIONS += [(".safetensors", "plain"), (".safetensors", "ddp")]  # safetensors maps cannot be nested


@pytest.mark.parametrize("suffix, wrap", COMBINATIONS)
def test_formats_and_wrappers_load_identically(tmp_path, tiny, suffix, wrap):
    _, state, x, expected = tiny
    if wrap == "ddp":
        state = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        obj = {wrap: state, "epoch": 3} if wrap in ("model", "state_dict") else state
        torch.save(obj, path)
    # a bare state dict does not record its size and tiny's 2x2 grid fits 96 and 128: name it
    out = _out(load_model(path, img_size=128), x)
    assert float((out - expected).abs().max() / expected.abs().max()) <= 1e-4


def test_reference_training_checkpoint_with_optimizer_and_args(tmp_path, tiny):
    _, state, x, expected = tiny
    model = load_model(tiny[0], img_size=128)
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "epoch": 299,
                "args": argparse.Namespace(model="lsnet_t", lr=4e-3, input_size=128)}, path)
    assert torch.equal(_out(load_model(path), x), _out(model, x))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_carrying_code_is_refused_and_never_run(tmp_path, tiny):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny[1], "hook": payload}, path)
    with pytest.raises(UnsafeCheckpointError, match="would run code"):
        load_model(path)
    assert not marker.exists()


def test_raw_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage, expected", [
    ("truncated", "truncated, corrupt"), ("empty", "is empty"), ("random bytes", "truncated, corrupt"),
    ("bytes naming no callable", "truncated, corrupt"),
    ("zeros", "truncated, corrupt"), ("text", "is a text file (it begins 'not a checkpoint at all')"),
    ("text that pops", "is a text file (it begins '0.5 0.25')"), ("json", "is a text file"),
])
def test_corrupt_files_give_a_clear_error(tmp_path, tiny, damage, expected):
    data = tiny[0].read_bytes()
    path = tmp_path / "bad.pth"
    # random bytes and zeros are refused by the weights-only unpickler ("Unsupported operand"): damaged data,
    # not code; text beginning with "0" made it pop from an empty stack
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "random bytes": random.Random(0).randbytes(4096),
                      "bytes naming no callable": b"c\x01x\n\x02y\n.",
                      "zeros": bytes(100), "text": b"not a checkpoint at all\n", "text that pops": b"0.5 0.25\n",
                      "json": b'{"model": "lsnet_t"}'}[damage])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert expected in message and not isinstance(info.value, UnsafeCheckpointError)
    assert "would run code" not in message and "pop from empty list" not in message
    assert "Traceback" not in message and "\n" not in message


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pth")
    odd = tmp_path / "weights.h5"
    odd.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        load_model(odd)


def test_not_an_lsnet_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, path)
    with pytest.raises(CheckpointError, match="not an LSNet state dict"):
        load_model(path)


def test_mismatched_state_dict_names_keys_and_closest_variant(tmp_path):
    state = create_model("lsnet_t").state_dict()
    del state["blocks3.4.ffn.m.pw1.c.weight"]
    state["blocks3.2.mixer.conv.c.weight"] = torch.zeros(256, 1, 5, 5)
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "damaged.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    for fragment in ("1 missing: blocks3.4.ffn.m.pw1.c.weight", "1 unexpected: extra.weight",
                     "blocks3.2.mixer.conv.c.weight (256, 1, 5, 5) vs (256, 1, 3, 3)", "closest to lsnet_t"):
        assert fragment in message


def test_weights_of_another_variant_are_refused_by_name(tmp_path):
    path = tmp_path / "t.pth"
    torch.save(create_model("lsnet_t").state_dict(), path)
    with pytest.raises(CheckpointError, match="closest to lsnet_t"):
        load_model(path, model_name="lsnet_s")
    assert load_model(path, model_name="lsnet_t").variant == "lsnet_t"


@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill", "lsnet_b_distill"])
def test_architecture_is_inferred_from_the_weights(name):
    model = create_model(name, num_classes=37)
    config = infer_config(model.state_dict())
    assert config["embed_dim"] == model.embed_dim and config["depth"] == model.depth
    assert config["num_heads"][3] == model.num_heads[3] and config["key_dim"][3] == 16
    assert config["num_classes"] == 37 and config["distillation"] == name.endswith("_distill")
    assert config["img_size"] == (224, 224)


@pytest.mark.parametrize("size, expected", [(128, (128, 128)), (384, (384, 384)), ((192, 224), (192, 224)),
                                            (256, (224, 224))])  # 224 and 256 share a 4x4 grid: 224 wins
def test_training_input_size_is_inferred_from_the_attention_table(size, expected):
    model = create_model("lsnet", embed_dim=[16, 32, 48, 64], depth=[1, 2, 3, 4], num_heads=[2, 2, 2, 2],
                         img_size=size)
    assert infer_config(model.state_dict())["img_size"] == expected


def test_feature_extractor_without_head(tmp_path):
    model = create_model("lsnet_t", num_classes=0).eval()
    path = tmp_path / "backbone.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert loaded.num_classes == 0
    assert _out(loaded, torch.randn(1, 3, 224, 224)).shape == (1, 384)


def test_too_small_img_size_is_a_usage_error(tiny):
    with pytest.raises(UsageError):
        load_model(tiny[0], img_size=16)
