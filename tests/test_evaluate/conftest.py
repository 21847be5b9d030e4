"""Shared fixtures: the committed CIFAR-10 pictures and trained fixture models."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ..conftest import CIFAR, TRAINED_PARAMS, fixture_tool, load_trained, trained_card, trained_checkpoint

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="session")
def cifar_test_dir() -> Path:
    """tests/data/cifar10/test: 1,000 CIFAR-10 test pictures, 100 per class."""
    if not (CIFAR / "test" / "airplane").is_dir():
        pytest.skip(f"no CIFAR-10 test images in {CIFAR / 'test'}")
    return CIFAR / "test"


@pytest.fixture(scope="session")
def cifar_train_zip() -> Path:
    """tests/data/cifar10/train.zip: 250 CIFAR-10 training pictures, 25 per class."""
    if not (CIFAR / "train.zip").is_file():
        pytest.skip(f"no CIFAR-10 training zip at {CIFAR / 'train.zip'}")
    return CIFAR / "train.zip"


@pytest.fixture(scope="session")
def fixture_checkpoint() -> Path:
    """The small CIFAR-10 fixture's checkpoint (float16 weights, reference training format)."""
    return trained_checkpoint("cifar_small")


@pytest.fixture(scope="session")
def fixture_card() -> dict:
    """The card written beside the small fixture by tools/fixtures/train_cifar10.py."""
    return trained_card("cifar_small")


@pytest.fixture(scope="session")
def cifar_model():
    """The small fixture model (the one the gate and folder tests use): float32, its card's size, eval mode."""
    return load_trained("cifar_small")


@dataclass(frozen=True)
class Trained:
    """One trained fixture: its name, checkpoint, card and loaded model."""
    name: str
    checkpoint: Path
    card: dict
    model: torch.nn.Module


@pytest.fixture(scope="session", params=TRAINED_PARAMS)
def trained(request) -> Trained:
    """Each trained fixture in turn (the small custom LSNet at 96 px, LSNet-T at 128 px)."""
    name = request.param
    return Trained(name, trained_checkpoint(name), trained_card(name), load_trained(name))


@pytest.fixture
def make_folder(tmp_path, cifar_test_dir):
    """Build a small ImageFolder in tmp_path: ``{folder name: (source class, number of images)}``."""
    def build(layout: dict[str, tuple[str, int]], name: str = "images") -> Path:
        root = tmp_path / name
        for folder, (source, count) in layout.items():
            (root / folder).mkdir(parents=True)
            for image in sorted((cifar_test_dir / source).iterdir())[:count]:
                shutil.copy(image, root / folder / image.name)
        return root
    return build


#: calibration pictures per class taken from the training split (so every test image stays held out)
@pytest.fixture(scope="session")
def cifar_calib_dir(tmp_path_factory, cifar_train_zip) -> Path:
    """CIFAR-10 *training* images (the README table's choice: ``fixture_table.calibration_folder``, 25 per
    class spread over each class): int8 calibration for the fixture, disjoint from the test images its
    accuracy is measured on."""
    table = fixture_tool("fixture_table")
    return table.calibration_folder(cifar_train_zip, table.CALIBRATION_PER_CLASS, tmp_path_factory.mktemp("cifar_calib"))
