"""Image preprocessing exactly as an artifact's metadata prescribes (timm's evaluation transform).

Pillow and NumPy only (no torchvision). For LSNet's configuration (square input, ``crop_mode`` center):
bicubic resize of the short side to ``floor(size / crop_pct)`` (torchvision ``Resize(int)`` sizing), centre
crop (torchvision ``CenterCrop``, zero padding if the image is smaller), RGB, ``/ 255``, ``- mean``,
``/ std``, NCHW float32. The values are bit-identical to timm's transform on the same PIL image.

Rectangular inputs follow timm's ``ResizeKeepRatio`` sizing (scale so both sides cover
``floor(size / crop_pct)``, aspect kept) but with the recipe's filter: timm itself falls back to bilinear
there, and the artifact's metadata is the recipe we honour.

Reading files goes beyond ``Image.open(path).convert("RGB")`` where that gives wrong pixels: EXIF
orientation is applied (as phones and browsers show the photo), and 16-bit or floating-point grayscale
is scaled to 8 bits instead of saturating. Alpha is dropped (not composited), as timm's loader does.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import UsageError
from .recipe import CROP_MODES, INTERPOLATIONS, RECIPE_FIELDS, Recipe

CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
#: the decoded metadata key of each ``Preprocessing`` field where the two names differ
METADATA_NAMES = {"layout": "input_layout"}

__all__ = ["Preprocessing", "Recipe", "INTERPOLATIONS", "CROP_MODES", "IMAGENET_MEAN", "IMAGENET_STD",
           "load_rgb", "preprocess", "preprocess_one", "resize_and_crop", "normalize", "missing_fields"]


@dataclass(frozen=True)
class Preprocessing(Recipe):
    """The whole path from a picture to the model's input tensor: the model's ``Recipe`` (mean, std,
    interpolation, crop_pct, crop_mode; keyword-only, defaults in one place) at an input size, in a pixel
    format.

    Attributes:
        input_size: (H, W) of the model input.
        channel_order: ``RGB`` or ``BGR``.
        pixel_scale: factor from 8-bit values to the range mean/std refer to (1/255).
        layout: ``NCHW`` or ``NHWC``.
    """

    input_size: tuple[int, int]
    channel_order: str = "RGB"
    pixel_scale: float = 1 / 255
    layout: str = "NCHW"

    def __post_init__(self):
        super().__post_init__()
        try:
            size = tuple(int(s) for s in self.input_size)
        except (TypeError, ValueError):
            raise UsageError(f"input size {self.input_size!r} must be two positive integers (H, W)") from None
        if len(size) != 2 or min(size) < 1:
            raise UsageError(f"input size {self.input_size} must be two positive integers (H, W)")
        order, layout = str(self.channel_order).upper(), str(self.layout).upper()
        if order not in CHANNEL_ORDERS:
            raise UsageError(f"channel order {self.channel_order!r} is not supported (RGB or BGR)")
        if layout not in LAYOUTS:
            raise UsageError(f"input layout {self.layout!r} is not supported (NCHW or NHWC)")
        if not float(self.pixel_scale) > 0:
            raise UsageError(f"pixel_scale must be positive, got {self.pixel_scale}")
        for name, value in (("input_size", size), ("channel_order", order), ("layout", layout),
                            ("pixel_scale", float(self.pixel_scale))):
            object.__setattr__(self, name, value)

    @classmethod
    def for_model(cls, recipe: Recipe, input_size) -> "Preprocessing":
        """A model's recipe at its input size (RGB, 1/255, NCHW)."""
        return cls(input_size, **{name: getattr(recipe, name) for name in RECIPE_FIELDS})

    @classmethod
    def from_metadata(cls, meta: dict, **overrides) -> "Preprocessing":
        """Build from decoded artifact metadata (``metadata.decode_metadata``).

        Args:
            meta: decoded metadata; ``input_size``, ``mean`` and ``std`` are required (here or in overrides),
                the other fields default to timm's ImageNet eval recipe (``Recipe``'s defaults).
            **overrides: recipe fields that replace the metadata's (None values are ignored).

        Raises:
            UsageError: when a required field is missing or a value is invalid.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        missing = missing_fields(meta, given)
        if missing:
            raise UsageError(f"no preprocessing metadata for {', '.join(missing)}; pass "
                             + ", ".join(FIELD_FLAGS[m] for m in missing))
        names = (*RECIPE_FIELDS, *(f.name for f in dataclasses.fields(cls) if f.name not in RECIPE_FIELDS))
        fields = {name: meta.get(METADATA_NAMES.get(name, name)) for name in names}
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.update(given)
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, UsageError):
                raise
            raise UsageError(f"bad preprocessing metadata: {exc}") from None

    def replace(self, **changes) -> "Preprocessing":
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def recipe(self) -> Recipe:
        """The model's recipe part (without input size and pixel format)."""
        return Recipe(**{name: getattr(self, name) for name in RECIPE_FIELDS})

    @property
    def resize_size(self) -> tuple[int, int]:
        """(H, W) the resize targets before the centre crop: floor(size / crop_pct) per side."""
        return self.resize_for(self.input_size)

    def to_metadata(self) -> dict:
        """The preprocessing as decoded metadata fields (the names artifacts use)."""
        return {"input_size": list(self.input_size), **self.recipe_fields(), "channel_order": self.channel_order,
                "pixel_scale": self.pixel_scale, "input_layout": self.layout, "resize_size": list(self.resize_size)}


#: the fields an artifact must provide (or the user must pass), and how to pass each
FIELD_FLAGS = {"input_size": "--imgsz (imgsz=)", "mean": "--mean (mean=)", "std": "--std (std=)"}


def missing_fields(meta: dict, overrides: dict | None = None) -> list[str]:
    """Required recipe fields found neither in ``meta`` nor in ``overrides``."""
    overrides = overrides or {}
    return [name for name in FIELD_FLAGS if meta.get(name) is None and overrides.get(name) is None]


# ---------------------------------------------------------------------------------------------- reading


def load_rgb(source, *, exif_transpose: bool = True, draft_size: tuple[int, int] | None = None):
    """Open an image (path, PIL image or uint8 array) and return it as an 8-bit RGB PIL image.

    Args:
        source: a file path, a PIL image, or a uint8 array (H, W), (H, W, 3) RGB or (H, W, 4) RGBA.
        exif_transpose: rotate/flip as the EXIF orientation tag says (what photo viewers show).
        draft_size: let the JPEG decoder downscale by a power of two while both sides stay at least this
            (W, H); much faster for camera photos, slightly different pixels. None decodes at full size.

    Raises:
        UsageError: missing, unreadable, truncated or non-image files; arrays that are not images.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = image_from_array(source)
    else:
        image = _open(Path(source), draft_size)
    if exif_transpose:
        image = apply_exif_orientation(image)
    return to_rgb(image)


EXIF_ORIENTATION = 0x0112


def apply_exif_orientation(image):
    """Rotate/flip as the EXIF orientation tag says; the image itself when there is nothing to do."""
    from PIL import ImageOps

    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) in (1, None):
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # a corrupt EXIF block must not cost the picture: keep the stored orientation
        return image


def _open(path: Path, draft_size: tuple[int, int] | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft(None, draft_size)
            image.load()
            return image
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        hint = " (HEIC/HEIF needs the pillow-heif plugin)" if path.suffix.lower() in (".heic", ".heif") else ""
        raise UsageError(f"{path}: not an image file Pillow can read{hint}") from None
    except Image.DecompressionBombError as exc:
        raise UsageError(f"{path}: image too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: corrupt or truncated image ({detail})") from None


def image_from_array(array: np.ndarray):
    """A PIL image from a uint8 (or uint16 grayscale) array: (H, W), (H, W, 3) RGB or (H, W, 4) RGBA.

    Raises:
        UsageError: other shapes or dtypes (float arrays are preprocessed tensors, not pictures).
    """
    from PIL import Image

    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array))
    if array.dtype != np.uint8:
        raise UsageError(f"an image array must be uint8 (H, W[, 3|4]) RGB pixels, got dtype {array.dtype}; "
                         "float arrays are taken as preprocessed (N, 3, H, W) model inputs")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(np.ascontiguousarray(array))
    raise UsageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")


def to_rgb(image):
    """8-bit RGB, scaling high-bit-depth grayscale instead of letting Pillow saturate it."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
        elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
            top = 65535.0
        else:
            top = 255.0
        scaled = np.clip(np.nan_to_num(values) * (255.0 / top), 0, 255).round().astype(np.uint8)
        image = Image.fromarray(scaled)
    return image.convert("RGB")


# ---------------------------------------------------------------------------------------- geometry


def resized_shape(width: int, height: int, recipe: Preprocessing) -> tuple[int, int]:
    """(W, H) the image is resized to before the centre crop.

    Square inputs use torchvision ``Resize(int)`` sizing (short side to ``floor(size / crop_pct)``, long
    side truncated); rectangular ones timm's ``ResizeKeepRatio`` (both sides cover the target, rounded).
    """
    target_h, target_w = recipe.resize_size
    if recipe.crop_mode == "squash":
        return target_w, target_h
    if target_h == target_w:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = target_h, int(target_h * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    ratio = min(height / target_h, width / target_w)
    return round(width / ratio), round(height / ratio)


def center_crop(image, size: tuple[int, int]):
    """torchvision ``CenterCrop``: pad with zeros when the image is smaller, then crop the centre."""
    from PIL import Image

    crop_h, crop_w = size
    width, height = image.size
    if crop_w > width or crop_h > height:
        left, top = (crop_w - width) // 2 if crop_w > width else 0, (crop_h - height) // 2 if crop_h > height else 0
        padded = Image.new(image.mode, (width + max(crop_w - width, 0), height + max(crop_h - height, 0)))
        padded.paste(image, (left, top))
        image, (width, height) = padded, padded.size
        if (width, height) == (crop_w, crop_h):
            return image
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return image.crop((left, top, left + crop_w, top + crop_h))


def resize_and_crop(image, recipe: Preprocessing):
    """Resize with the recipe's filter (aspect kept unless ``squash``), then centre crop to input_size."""
    from PIL import Image

    new_w, new_h = resized_shape(*image.size, recipe)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), getattr(Image.Resampling, INTERPOLATIONS[recipe.interpolation]))
    return center_crop(image, recipe.input_size)


#: fast JPEG decoding keeps at least this multiple of the resize size, so the bicubic filter still
#: antialiases (measured: 2x halves the mean change and cuts the largest one 4x against 1x, for +30% time)
DRAFT_MARGIN = 2


def draft_size(recipe: Preprocessing) -> tuple[int, int]:
    """The smallest (W, H) a JPEG may be decoded at for ``load_rgb(draft_size=...)`` (fast decoding)."""
    side = max(recipe.resize_size) * DRAFT_MARGIN
    return side, side


# ------------------------------------------------------------------------------------------ values


@functools.lru_cache(maxsize=16)
def _lookup_tables(mean: tuple[float, ...], std: tuple[float, ...], pixel_scale: float) -> np.ndarray:
    # every 8-bit value's normalized float, computed with the same float32 operations as timm's ToTensor
    # (divide by 255) and Normalize (subtract, divide): exact results, and a table lookup is the fastest path
    values = np.arange(256, dtype=np.float32)
    divisor = 1.0 / pixel_scale
    scaled = values / np.float32(divisor) if abs(divisor - round(divisor)) < 1e-9 else values * np.float32(pixel_scale)
    tables = (scaled[None, :] - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    tables.setflags(write=False)
    return tables


def normalize(image, recipe: Preprocessing) -> np.ndarray:
    """8-bit RGB image (PIL or HWC uint8 array) -> CHW (or HWC) float32, scaled then standardized."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise UsageError(f"normalize needs an RGB image (H, W, 3), got shape {pixels.shape}")
    tables = _lookup_tables(recipe.mean, recipe.std, recipe.pixel_scale)
    sources = (0, 1, 2) if recipe.channel_order == "RGB" else (2, 1, 0)
    planes = [tables[k][pixels[:, :, src]] for k, src in enumerate(sources)]
    return np.stack(planes, axis=0 if recipe.layout == "NCHW" else -1)


def preprocess_one(source, recipe: Preprocessing, *, exif_transpose: bool = True,
                   fast_decode: bool = False) -> np.ndarray:
    """One path, PIL image or uint8 array -> the model input of one sample, (3, H, W) float32.

    Raises:
        UsageError: the source cannot be read as an image.
    """
    image = load_rgb(source, exif_transpose=exif_transpose, draft_size=draft_size(recipe) if fast_decode else None)
    return normalize(resize_and_crop(image, recipe), recipe)


def preprocess(images: Sequence, recipe: Preprocessing, **options) -> np.ndarray:
    """Paths, PIL images or uint8 arrays -> one (N, 3, H, W) float32 batch (options: ``preprocess_one``)."""
    return np.stack([preprocess_one(image, recipe, **options) for image in images])
