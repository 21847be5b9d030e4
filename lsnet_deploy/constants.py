"""Facts shared by the model, preprocessing, metadata and exports: one definition each."""

from __future__ import annotations

#: ImageNet normalization LSNet was trained with (timm's IMAGENET_DEFAULT_MEAN / _STD)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: timm's eval transform for LSNet: bicubic resize of the short side to size / crop_pct, centre crop
DEFAULT_INTERPOLATION = "bicubic"
DEFAULT_CROP_PCT = 0.9
#: picture files read from folders (calibration, accuracy): what torchvision's ImageFolder accepts and Pillow reads
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
