"""Calibration images: found, checked and preprocessed as the artifact's metadata tells apps to.

Format-agnostic: int8 calibration of any format reads its images here, and int8 exports are validated on
(a spread of) the same images, since int8 error only means something on real pictures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..constants import IMAGE_SUFFIXES
from ..errors import UsageError
from ..metadata import decode_metadata
from ..preprocess import Preprocessing, preprocess

#: more images than this add little to min/max ranges and cost minutes; a deterministic spread is used
MAX_CALIBRATION_IMAGES = 512
#: images compared with the float32 model after quantization (spread over the directory)
MAX_VALIDATION_IMAGES = 64


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



def validation_images(calib: str | Path, metadata: dict[str, str], batch: int,
                      extra_batch: int | None = None) -> list[np.ndarray]:
    """Batches of preprocessed calibration images to compare an int8 artifact with float32 on.

    Args:
        calib: the calibration directory.
        metadata: artifact metadata (preprocessing).
        batch: images per batch (a fixed-batch artifact takes only that).
        extra_batch: one more batch of this size (dynamic exports), or None.

    Uses up to ``MAX_VALIDATION_IMAGES`` images spread over the directory.
    """
    paths = calibration_images(calib, limit=MAX_VALIDATION_IMAGES)
    images = load_images(paths, preprocessing_for(metadata))
    out = list(batches(images, batch))
    if extra_batch is not None:
        out.append(next(batches(images, extra_batch)))
    return out
