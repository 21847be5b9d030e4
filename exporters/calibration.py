"""Calibration images: found, checked, split and preprocessed as the artifact's metadata tells apps to.

Format-agnostic: int8 calibration of any format reads its images here. The folder is split once,
deterministically, into the images ranges are measured on and a held-out spread that the int8 artifact
is then checked on (int8 error only means something on real pictures, and agreement measured on the
calibration images themselves would flatter it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..constants import IMAGE_SUFFIXES
from ..errors import UsageError
from ..gates import AGREEMENT_RESOLUTION, INT8_AGREEMENT_TEXT
from ..metadata import decode_metadata
from ..preprocess import Preprocessing, preprocess

if TYPE_CHECKING:
    import torch

#: more images than this add little to the ranges and cost minutes; a deterministic spread is used
MAX_CALIBRATION_IMAGES = 512
#: images held out of calibration and compared with the float model after quantization
MAX_VALIDATION_IMAGES = 64
#: fewer images than this cannot both calibrate and check an int8 model
MIN_CALIBRATION_IMAGES = 8
#: below this many calibration images ranges are noisy, and below ``gates.AGREEMENT_RESOLUTION`` held-out
#: images a single disagreement already fails the agreement gate: both get a warning
FEW_CALIBRATION_IMAGES = 100
#: activation ranges cover this share of each tensor's values, cutting half the rest from each tail. Min/max
#: let a few outliers set the scale: the LSNet-T CIFAR fixture's int8 lost 1.7 top-1 points on ONNX Runtime
#: with them and missed the 1-point gate on ExecuTorch (2,000 test pictures); ONNX Runtime lost 0.05 with
#: 99.99, 0.2 with 99.9 and 1.05 with 99.999
ACTIVATION_PERCENTILE = 99.99
#: values a batch's percentiles are read from at most (an even stride through the tensor), so that
#: calibration stays milliseconds per tensor
PERCENTILE_SAMPLE = 1 << 20
#: the ``int8_calibration`` metadata's ``method`` where ranges are ``RunningRange`` means (PT2E, Core ML)
BATCH_PERCENTILE_METHOD = f"percentile {ACTIVATION_PERCENTILE:g}, mean over batches"


def calibration_images(directory: str | Path, limit: int = MAX_CALIBRATION_IMAGES) -> list[Path]:
    """The images under ``directory`` (recursively, sorted), spread evenly down to ``limit``.

    Raises:
        UsageError: missing, unreadable or empty directory, or a file that is not an image.
    """
    root = Path(directory)
    if not root.exists():
        raise UsageError(f"--calib {root}: no such directory; give a folder of calibration images")
    if not root.is_dir():
        raise UsageError(f"--calib {root} is not a directory; give a folder of calibration images")
    if not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(f"--calib {root} is not readable; check its permissions")
    try:
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise UsageError(f"--calib {root} cannot be listed: {exc}") from None
    if not found:
        raise UsageError(f"--calib {root} holds no images ({', '.join(IMAGE_SUFFIXES)}); put a few hundred "
                         "pictures like the ones the model will see there")
    if len(found) > limit:
        picks = np.linspace(0, len(found) - 1, limit).round().astype(int)
        found = [found[i] for i in picks]
    _check_headers(found)
    return found


@dataclass(frozen=True)
class CalibrationSet:
    """One ``--calib`` folder, split: ``calibrate`` measures the ranges, ``held_out`` checks the result.

    Attributes:
        root: the folder given.
        calibrate: images the quantizer sees (sorted, spread down to ``MAX_CALIBRATION_IMAGES``).
        held_out: images it never sees, on which the int8 artifact is compared with the float model.
        sha256: hash of every image's path (relative to ``root``) and bytes, in order: which set made a file.
    """

    root: Path
    calibrate: tuple[Path, ...]
    held_out: tuple[Path, ...]
    sha256: str
    #: preprocessed arrays by (subset, recipe): the mixed-precision search calibrates and checks many times
    _loaded: dict = field(default_factory=dict, compare=False, repr=False)

    def images(self, metadata: dict[str, str]) -> np.ndarray:
        """The calibration images, preprocessed as ``metadata`` prescribes: (N, 3, H, W) float32."""
        return self._load("calibrate", metadata)

    def held_out_images(self, metadata: dict[str, str]) -> np.ndarray:
        """The held-out images, preprocessed the same way."""
        return self._load("held_out", metadata)

    def _load(self, subset: str, metadata: dict[str, str]) -> np.ndarray:
        recipe = preprocessing_for(metadata)
        key = (subset, repr(recipe))
        if key not in self._loaded:
            self._loaded[key] = load_images(list(getattr(self, subset)), recipe)
        return self._loaded[key]

    def warnings(self) -> list[str]:
        """What makes this set a weak one (empty when it is fine)."""
        found = []
        if len(self.calibrate) < FEW_CALIBRATION_IMAGES:
            found.append(f"--calib {self.root}: only {len(self.calibrate)} images to calibrate on (after "
                         f"holding {len(self.held_out)} out to check the result); int8 ranges from fewer than "
                         f"{FEW_CALIBRATION_IMAGES} pictures are noisy, 300 or more like the ones the model will "
                         "see are better")
        if len(self.held_out) < AGREEMENT_RESOLUTION:
            found.append(f"--calib {self.root}: the int8 check runs on {len(self.held_out)} held-out images, so a "
                         f"single changed prediction fails the {INT8_AGREEMENT_TEXT} agreement gate; give more "
                         "images, or labelled "
                         "ones with --data")
        return found

    def record(self, method: str, **details) -> dict:
        """The ``int8_calibration`` metadata entry: counts, the set's hash, the method, and ``details``."""
        return {"images": len(self.calibrate), "held_out": len(self.held_out), "sha256": self.sha256,
                "method": method, **details}


def split_calibration(directory: str | Path) -> CalibrationSet:
    """Find the images under ``directory`` and split them: every fifth (up to ``MAX_VALIDATION_IMAGES``,
    spread evenly) is held out, the rest calibrates (spread down to ``MAX_CALIBRATION_IMAGES``).

    Raises:
        UsageError: a bad directory, a non-image, or fewer than ``MIN_CALIBRATION_IMAGES`` images.
    """
    root = Path(directory)
    found = calibration_images(root, limit=MAX_CALIBRATION_IMAGES + MAX_VALIDATION_IMAGES)
    if len(found) < MIN_CALIBRATION_IMAGES:
        raise UsageError(f"--calib {root} holds {len(found)} image(s); int8 needs at least "
                         f"{MIN_CALIBRATION_IMAGES} (some calibrate, the rest check the result), a few hundred "
                         "is better")
    held = min(MAX_VALIDATION_IMAGES, max(2, len(found) // 5))
    held_index = set(np.linspace(0, len(found) - 1, held).round().astype(int).tolist())
    held_out = [p for i, p in enumerate(found) if i in held_index]
    calibrate = [p for i, p in enumerate(found) if i not in held_index][:MAX_CALIBRATION_IMAGES]
    digest = hashlib.sha256()
    for path in (*calibrate, *held_out):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return CalibrationSet(root, tuple(calibrate), tuple(held_out), digest.hexdigest())


def _check_headers(paths: list[Path]) -> None:
    """Open each file's header (cheap) so a non-image fails before minutes of export, not after."""
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UsageError(f"--calib: {path}: not an image Pillow can read ({exc.__class__.__name__}); "
                             "remove or replace that file") from None


def preprocessing_for(metadata: dict[str, str]) -> Preprocessing:
    """The recipe an app reads from the artifact's metadata (the one calibration must use)."""
    return Preprocessing.from_metadata(decode_metadata(metadata))


def load_images(paths: list[Path], recipe: Preprocessing) -> np.ndarray:
    """Preprocess calibration images into one (N, 3, H, W) float32 array.

    Raises:
        UsageError: a file that is not a readable image, named with the fix.
    """
    try:
        return preprocess(paths, recipe)
    except UsageError as exc:
        raise UsageError(f"--calib: {exc}; remove or replace that file") from None


def percentile_range(x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """The low and high ``ACTIVATION_PERCENTILE`` bounds of ``x``'s values (0-d tensors), read from at most
    ``PERCENTILE_SAMPLE`` of them. Calibration averages them over batches (``RunningRange``)."""
    flat = x.detach().flatten()
    if flat.numel() > PERCENTILE_SAMPLE:
        flat = flat[::flat.numel() // PERCENTILE_SAMPLE]
    tail = max(1, int(flat.numel() * (100 - ACTIVATION_PERCENTILE) / 200))
    return flat.kthvalue(tail).values, flat.kthvalue(flat.numel() - tail + 1).values


@dataclass
class RunningRange:
    """The mean of the per-batch ``percentile_range`` bounds seen so far."""

    low: float = 0.0
    high: float = 0.0
    batches: int = 0

    def update(self, x: "torch.Tensor") -> "RunningRange":
        """Fold ``x``'s bounds into the means; returns self."""
        low, high = (float(v) for v in percentile_range(x))
        self.batches += 1
        self.low += (low - self.low) / self.batches
        self.high += (high - self.high) / self.batches
        return self


def batches(images: np.ndarray, batch: int | None) -> Iterator[np.ndarray]:
    """Split into batches of ``batch`` images (None: dynamic batch, chunks of up to 8).

    With a fixed batch the remainder is dropped, unless there are fewer images than one batch, in which
    case they are repeated to fill it.
    """
    if batch is None:
        for start in range(0, len(images), 8):
            yield images[start:start + 8]
        return
    if len(images) < batch:
        images = np.concatenate([images] * (batch // len(images) + 1))[:batch]
    for start in range(0, len(images) - batch + 1, batch):
        yield images[start:start + batch]
