"""Hub sources resolve through huggingface_hub's cache and work offline (no network here or in CI)."""

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from lsnet_deploy.errors import CheckpointError
from lsnet_deploy.models.hub import is_hub_source, parse_hub_source

from ..conftest import CONFORMANCE, conformance_case

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def make_cache(root, repo: str, files: dict) -> None:
    """Lay out a huggingface_hub cache holding ``files`` for ``repo`` at revision main."""
    base = root / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(SNAPSHOT)
    for name, write in files.items():
        target = snap / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)


def run_offline(cache, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_parse_sources():
    assert is_hub_source("hf-hub:jameslahm/lsnet_t") and is_hub_source("hf_hub:jameslahm/lsnet_t")
    assert parse_hub_source("hf-hub:jameslahm/lsnet_t") == ("jameslahm/lsnet_t", None)
    assert parse_hub_source("hf_hub:org/repo/sub/w.pth") == ("org/repo", "sub/w.pth")
    with pytest.raises(CheckpointError):
        parse_hub_source("hf-hub:justone")


def test_timm_style_repo_loads_offline_from_the_cache(tmp_path):
    _, x, expected = conformance_case("tiny")
    state = torch.load(CONFORMANCE / "tiny.pth", weights_only=True)
    make_cache(tmp_path, "someone/lsnet_tiny", {
        "model.safetensors": lambda p: save_file({k: v.contiguous() for k, v in state.items()}, p),
        "config.json": lambda p: p.write_text(json.dumps({"pretrained_cfg": {
            "input_size": [3, 128, 128], "interpolation": "bilinear", "crop_pct": 0.95,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}})),
    })
    torch.save({"input": x, "output": expected}, tmp_path / "io.pt")
    code = f"""
import torch
from lsnet_deploy.models import load_model
from lsnet_deploy.recipe import apply_recipe
io = torch.load({str(tmp_path / 'io.pt')!r}, weights_only=True)
for source in ("hf-hub:someone/lsnet_tiny", "hf_hub:someone/lsnet_tiny/model.safetensors"):
    m = load_model(source)
    with torch.no_grad():
        err = float((m(io['input']) - io['output']).abs().max() / io['output'].abs().max())
    assert err <= 1e-4, err
    assert m.img_size == (128, 128) and len(m.checkpoint_sha256) == 64
    # the preprocessing recipe of the hub's config.json is the model's
    assert (m.recipe.interpolation, m.recipe.crop_pct, m.recipe.mean) == ("bilinear", 0.95, (0.5, 0.5, 0.5))
    assert apply_recipe(m) == "from the hub's config.json", apply_recipe(m)
print("ok")
"""
    result = run_offline(tmp_path, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_pytorch_model_bin_fallback_and_named_file(tmp_path):
    state = torch.load(CONFORMANCE / "tiny.pth", weights_only=True)
    make_cache(tmp_path, "someone/binrepo", {
        "pytorch_model.bin": lambda p: torch.save(state, p),
        "ckpt/epoch_10.pth": lambda p: torch.save({"model": state, "epoch": 10,
                                                   "args": argparse.Namespace(input_size=128)}, p),
    })
    # no config.json: the plain file names its size, the training checkpoint records it
    code = """
from lsnet_deploy.models import load_model
a = load_model("hf-hub:someone/binrepo", img_size=128)
b = load_model("hf-hub:someone/binrepo/ckpt/epoch_10.pth")
print(a.num_classes, b.num_classes)
"""
    result = run_offline(tmp_path, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["10", "10"]


def test_offline_without_a_cached_copy_is_a_clear_error(tmp_path):
    code = """
from lsnet_deploy.models import load_model
from lsnet_deploy.errors import CheckpointError
try:
    load_model("hf-hub:jameslahm/lsnet_t")
except CheckpointError as exc:
    print(exc)
"""
    result = run_offline(tmp_path, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not in the local hub cache" in result.stdout and "HF_HUB_OFFLINE" in result.stdout


def test_an_unreachable_hub_fails_fast_with_the_one_line_error(tmp_path):
    import socket
    import time

    with socket.socket() as sock:  # a port that nothing listens on: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HUB_CACHE=str(tmp_path), HF_ENDPOINT=f"http://127.0.0.1:{port}")
    code = """
from lsnet_deploy.models import load_model
from lsnet_deploy.errors import CheckpointError
try:
    load_model("hf-hub:org/repo")
except CheckpointError as exc:
    print(exc)
"""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "hub cannot be reached" in lines[0], result.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s"
