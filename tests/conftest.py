"""Shared fixtures: the conformance tensors of the reference implementation, tiny models, temp dirs."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: everything the tests read is committed under tests/data, so a fresh clone tests what CI tests
DATA = REPO / "tests" / "data"
#: the reference implementation's tensors (LSNET_CONFORMANCE_DIR overrides, e.g. with a newer set)
CONFORMANCE = Path(os.environ.get("LSNET_CONFORMANCE_DIR") or DATA / "conformance")
#: the reference codes' backbone (dense) and artist tensors
DENSE, ARTIST = CONFORMANCE / "dense", CONFORMANCE / "artist"
needs_dense = pytest.mark.skipif(not (DENSE / "cases.json").is_file(),
                                 reason=f"no reference detection tensors in {DENSE}")
needs_artist = pytest.mark.skipif(not (ARTIST / "cases.json").is_file(),
                                  reason=f"no reference artist tensors in {ARTIST}")
#: a small custom backbone (the dense conformance checkpoint's architecture)
SMALL_BACKBONE = {"embed_dim": [32, 64, 96, 128], "depth": [1, 2, 2, 3], "num_heads": [2, 2, 2, 4]}
#: a small third-party CNN (no lsnet metadata, 1,000 logits) as .pte and .tflite: tests/data/foreign/make_foreign.py
FOREIGN = DATA / "foreign"
#: conformance checkpoints that record their input size (the reference's tensors wrapped with their training
#: args): loading reads only the file named, and the bare tiny state dicts fit 96 and 128 px alike
SIZED_CHECKPOINTS = REPO / "tests" / "data" / "sized_checkpoints"
#: the trained CIFAR-10 fixtures of tools/fixtures/train_cifar10.py (float16 checkpoints, a card beside each)
TRAINED_FIXTURES = DATA / "fixtures"
TRAINED = ("cifar_small", "cifar_lsnet_t")
#: ``TRAINED`` as pytest params: LSNet-T's cases (full-size exports, a minute or more each) are marked slow
TRAINED_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name == "cifar_lsnet_t" else name
                  for name in TRAINED]
#: committed CIFAR-10 pictures: ``test/`` (1,000), ``calib/`` (334 other test pictures), ``train.zip`` (250)
CIFAR = DATA / "cifar10"
CIFAR_TEST, CIFAR_CALIB = CIFAR / "test", CIFAR / "calib"
#: top-1 (%) every trained fixture stays above in every format: far above the 10% of chance
TRAINED_MIN_TOP1 = 50.0
CASES = {case["name"]: case for case in json.loads((CONFORMANCE / "cases.json").read_text())}


def pytest_configure(config):
    """Under pytest-xdist, share the cores among the workers: two workers each running torch with every
    core's thread would oversubscribe them (OpenMP's spinning made that up to 10x slower here)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def conformance_case(name: str) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """(checkpoint path, input, reference output) of a conformance case. The checkpoint records its input
    size (``SIZED_CHECKPOINTS``) where the bare state dict does not tell it; ``CONFORMANCE / f"{name}.pth"``
    is the reference's bare state dict."""
    io = torch.load(CONFORMANCE / f"{name}.io.pt", weights_only=True)
    sized = SIZED_CHECKPOINTS / f"{name}.pth"
    return sized if sized.is_file() else CONFORMANCE / f"{name}.pth", io["input"], io["output"]


def trained_checkpoint(name: str) -> Path:
    """The committed checkpoint of the trained fixture ``name`` (one of ``TRAINED``)."""
    return TRAINED_FIXTURES / f"{name}.pth"


def trained_card(name: str) -> dict:
    """The card train_cifar10.py wrote beside the fixture ``name``: command, config, size, accuracy."""
    return json.loads(trained_checkpoint(name).with_suffix(".json").read_text())


@functools.cache
def load_trained(name: str) -> torch.nn.Module:
    """The fixture model ``name``: float16 weights cast back to float32, at its card's input size, eval mode.
    Cached: tests must not modify it (deep-copy first)."""
    from lsnet_deploy.models import load_model

    return load_model(trained_checkpoint(name), img_size=trained_card(name)["input_size"])


def fixture_tool(name: str):
    """``tools/fixtures/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "fixtures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_as_image_folder(paths, root: Path) -> Path:
    """Copy pictures into ``root`` as an ImageFolder (each under its class folder's name); returns ``root``."""
    import shutil

    for path in paths:
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.parent.name / path.name)
    return root


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out - ref| / max |ref|: the conformance definition of error."""
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return CONFORMANCE


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """The conformance ``tiny`` checkpoint (128x128, 10 classes, every block type), recording its size."""
    return conformance_case("tiny")[0]


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """Constructor arguments of the ``tiny`` conformance model."""
    return dict(CASES["tiny"]["constructor"])


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def invoke_export(*args):
    """Run ``lsnet-export`` in-process (typer's CliRunner); arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from lsnet_deploy.cli.export import app

    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one ``error:`` line of a failed command; asserts there is exactly one and no traceback."""
    lines = [line for line in result.output.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def inject_int8_outlier(model: torch.nn.Module, ffn: str, scale: float = 3000.0) -> torch.nn.Module:
    """Make one hidden channel of the FFN unit ``ffn`` (e.g. ``blocks3.2.ffn``) ``scale`` times larger, its
    reader ``scale`` times weaker, and always on: the float model still works, but that hidden activation's
    per-tensor int8 range is set by the one channel, so every other channel of it rounds to zero in int8."""
    block = model.get_submodule(ffn).m
    with torch.no_grad():
        block.pw1.bn.weight[0] *= scale
        block.pw1.bn.bias[0] = block.pw1.bn.bias[0].abs() * scale + scale
        block.pw2.c.weight[:, 0] /= scale
    return model
