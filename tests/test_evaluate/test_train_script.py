"""tools/fixtures/train_cifar10.py runs a few steps and writes a checkpoint that load_model reads unchanged."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from ..conftest import fixture_tool

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "fixtures" / "train_cifar10.py"


def test_training_smoke_run_writes_loadable_checkpoint(tmp_path, cifar_train_zip, cifar_test_dir):
    from lsnet_deploy.models import load_model

    out = tmp_path / "run"
    command = [sys.executable, str(SCRIPT), "--arch", "tiny", "--img-size", "64", "--batch-size", "8",
               "--max-steps", "3", "--limit-train", "64", "--limit-test", "20", "--threads", "1",
               "--seed", "1", "--train-zip", str(cifar_train_zip), "--test-dir", str(cifar_test_dir),
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    with torch.serialization.safe_globals([argparse.Namespace]):
        saved = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert set(saved) == {"model", "optimizer", "epoch", "args"}
    assert saved["optimizer"] is not None
    args = saved["args"]
    assert isinstance(args, argparse.Namespace)
    assert isinstance(args.input_size, int) and args.input_size == 64
    assert args.model == "lsnet" and args.seed == 1 and args.max_steps == 3

    model = load_model(out / "last.pth")  # unchanged file, weights-only loading
    assert model.num_classes == 10
    assert model.embed_dim == args.model_config["embed_dim"]
    resized = load_model(out / "last.pth", img_size=args.input_size)
    assert resized.img_size == (64, 64)
    with torch.no_grad():
        assert resized(torch.zeros(2, 3, 64, 64)).shape == (2, 10)

    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    end = [entry for entry in steps if entry["event"] == "end"][0]
    assert end["steps"] == 3 and end["reason"] == "max steps"


def test_learning_rate_schedule_warms_up_then_decays_to_zero():
    module = fixture_tool("train_cifar10")
    rates = [module.learning_rate(step, 100, 10, 1.0) for step in range(100)]
    assert rates[0] == 0.1 and rates[9] == 1.0
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] < 0.01
    assert module.learning_rate(50, 100, 10, 1.0, time_progress=1.0) == 0.0
