"""Facts shared by the model, preprocessing, metadata, loading and exports: one definition each.

Torch-free: the artifact-only install (``Predictor``, ``lsnet-predict``) imports it.
"""

from __future__ import annotations

#: ImageNet normalization LSNet was trained with (timm's IMAGENET_DEFAULT_MEAN / _STD)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: timm's eval transform for LSNet: bicubic resize of the short side to size / crop_pct, centre crop
DEFAULT_INTERPOLATION = "bicubic"
DEFAULT_CROP_PCT = 0.9
DEFAULT_CROP_MODE = "center"
#: picture files read from folders (calibration, accuracy): what torchvision's ImageFolder accepts and Pillow reads
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
#: checkpoint files read with torch.load (weights only): torch.save, Lightning (.ckpt) and legacy tar files
TORCH_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
SAFETENSORS_SUFFIX = ".safetensors"
#: every suffix ``load_model`` (and so ``Predictor``, ``evaluate``) takes as a checkpoint
CHECKPOINT_SUFFIXES = (*TORCH_CHECKPOINT_SUFFIXES, SAFETENSORS_SUFFIX)
#: Hugging Face hub sources: ``hf-hub:ORG/REPO[/FILE]`` (timm's spelling) and ``hf_hub:`` (the reference README's)
HUB_PREFIXES = ("hf-hub:", "hf_hub:")


def checkpoint_suffixes_text() -> str:
    """``.pth, .pt, .bin, .ckpt, .tar or .safetensors``: the accepted checkpoint suffixes, for messages."""
    return ", ".join(CHECKPOINT_SUFFIXES[:-1]) + f" or {CHECKPOINT_SUFFIXES[-1]}"


def is_hub_source(source) -> bool:
    """True for ``hf-hub:...`` / ``hf_hub:...`` strings."""
    return isinstance(source, str) and source.startswith(HUB_PREFIXES)


def is_checkpoint_source(source) -> bool:
    """True for a hub source or a path whose suffix is a checkpoint's (``CHECKPOINT_SUFFIXES``)."""
    from pathlib import Path

    if is_hub_source(source):
        return True
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in CHECKPOINT_SUFFIXES
