"""Image preprocessing exactly as an artifact's metadata prescribes (timm's evaluation transform).

Pillow and NumPy only (no torchvision): bicubic resize of the short side to ``size / crop_pct``, centre
crop, RGB, scale to [0, 1], subtract mean, divide by std, NCHW float32. For a rectangular input size the
image is resized to exactly ``(H / crop_pct, W / crop_pct)`` first, as timm does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UsageError

INTERPOLATIONS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST", "lanczos": "LANCZOS"}


@dataclass(frozen=True)
class Preprocessing:
    """The recipe to turn a picture into the model's input tensor."""

    input_size: tuple[int, int]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.9
    interpolation: str = "bicubic"

    @classmethod
    def from_metadata(cls, meta: dict) -> "Preprocessing":
        """Build from decoded artifact metadata (``metadata.decode_metadata``).

        Raises:
            UsageError: when the input size is missing.
        """
        if "input_size" not in meta:
            raise UsageError("the artifact carries no input_size metadata; pass --imgsz (and --mean/--std)")
        h, w = meta["input_size"]
        return cls(input_size=(int(h), int(w)), mean=tuple(meta.get("mean", cls.mean)),
                   std=tuple(meta.get("std", cls.std)), crop_pct=float(meta.get("crop_pct", cls.crop_pct)),
                   interpolation=str(meta.get("interpolation", cls.interpolation)))

    @property
    def resize_size(self) -> tuple[int, int]:
        """(H, W) before the centre crop: floor(size / crop_pct) per side."""
        return tuple(int(math.floor(s / self.crop_pct)) for s in self.input_size)


def load_rgb(source) -> "Image.Image":
    """Open an image path (or take a PIL image) and convert it to RGB.

    Raises:
        UsageError: unreadable or non-image files.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = Image.open(Path(source))
            image.load()
        except FileNotFoundError:
            raise UsageError(f"{source}: no such file") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UsageError(f"{source}: not a readable image ({exc.__class__.__name__})") from None
    return image.convert("RGB")


def resize_and_crop(image, recipe: Preprocessing):
    """Resize (short side for square inputs) with the recipe's filter, then centre crop to input_size."""
    from PIL import Image

    resample = getattr(Image.Resampling, INTERPOLATIONS.get(recipe.interpolation, "BICUBIC"))
    th, tw = recipe.input_size
    width, height = image.size
    if th == tw:
        short = recipe.resize_size[0]
        if width <= height:
            new_w, new_h = short, int(short * height / width)
        else:
            new_w, new_h = int(short * width / height), short
    else:
        new_h, new_w = recipe.resize_size
    image = image.resize((new_w, new_h), resample)
    top = int(round((new_h - th) / 2.0))
    left = int(round((new_w - tw) / 2.0))
    return image.crop((left, top, left + tw, top + th))


def normalize(image, recipe: Preprocessing) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32, scaled to [0, 1] then standardized."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(recipe.mean, dtype=np.float32)) / np.asarray(recipe.std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def preprocess(images: Sequence, recipe: Preprocessing) -> np.ndarray:
    """Paths or PIL images -> one (N, 3, H, W) float32 batch."""
    return np.stack([normalize(resize_and_crop(load_rgb(img), recipe), recipe) for img in images])
