"""Fixtures of the benchmark tests: one tiny ONNX export per session, its copy, the peer models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "conformance" / "tiny.pth"
PEERS = REPO.parent / "shared" / "peers"


@pytest.fixture(scope="session")
def tiny_checkpoint_path() -> Path:
    return TINY


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """The tiny conformance model (128x128, 10 classes) exported to ONNX once per session."""
    from lsnet_deploy.exporters import export_model
    from lsnet_deploy.models import load_model

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_model(load_model(TINY), "onnx", path)
    return path


@pytest.fixture(scope="session")
def tiny_copy(tiny_onnx, tmp_path_factory) -> Path:
    """The same model under another name: a second candidate to interleave with."""
    path = tmp_path_factory.mktemp("tiny_copy") / "tiny_copy.onnx"
    path.write_bytes(tiny_onnx.read_bytes())
    return path


@pytest.fixture(scope="session")
def peers_dir() -> Path:
    """``../shared/peers`` (skips when this checkout has no peers beside it)."""
    if not any(PEERS.glob("*.onnx")):
        pytest.skip(f"no peer models in {PEERS}")
    return PEERS


@pytest.fixture(scope="session")
def quick() -> list[str]:
    """Command-line options for a short measurement (tests check behaviour, never speed)."""
    return ["--iters", "5", "--warmup", "1", "--warmup-time", "0"]
