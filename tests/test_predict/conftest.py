"""Fixtures of the predict tests: the reference transform, synthetic photos, and the tiny model's artifacts.

``timm_eval_reference`` is timm's evaluation transform written once from its definition (timm
``transforms_imagenet_eval`` with ``crop_mode="center"``: torchvision ``Resize(int)`` then ``CenterCrop``,
``ToTensor``, ``Normalize``), in PIL and torch because torchvision and timm are not installed here.
Everything else in ``lsnet_deploy.preprocess`` is compared against it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
LABELS = [f"class_{i}" for i in range(10)]


def timm_eval_reference(image: Image.Image, img_size: int | tuple[int, int] = 224, crop_pct: float = 0.9,
                        interpolation: str = "bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        keep_ratio_interpolation: str | None = None) -> torch.Tensor:
    """timm's eval transform of an RGB PIL image, as a (3, H, W) float32 tensor.

    Square sizes: ``Resize(floor(size / crop_pct))`` on the short side (torchvision sizing: the long side
    is ``int(short_target * long / short)``), then ``CenterCrop``. Rectangular sizes: timm's
    ``ResizeKeepRatio(scale_size)`` (ratio = min over sides of image / target, each side rounded). timm
    builds that one with its default bilinear filter; ``keep_ratio_interpolation`` picks the filter.
    """
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    scale = tuple(math.floor(s / crop_pct) for s in size)
    width, height = image.size
    if scale[0] == scale[1]:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = scale[0], int(scale[0] * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        resample = PIL_FILTERS[interpolation]
    else:
        ratio = min(height / scale[0], width / scale[1])
        new_h, new_w = round(height / ratio), round(width / ratio)
        resample = PIL_FILTERS[keep_ratio_interpolation or "bilinear"]
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), resample)
    # torchvision CenterCrop on an image at least as large as the crop
    crop_h, crop_w = size
    assert new_w >= crop_w and new_h >= crop_h, "the reference covers crops inside the image"
    top = int(round((new_h - crop_h) / 2.0))
    left = int(round((new_w - crop_w) / 2.0))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    # ToTensor: HWC uint8 -> CHW float32 / 255; Normalize: (x - mean) / std
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    tensor = tensor.to(torch.float32).div(255)
    return tensor.sub(torch.tensor(mean, dtype=torch.float32)[:, None, None]).div(
        torch.tensor(std, dtype=torch.float32)[:, None, None])


def synthetic_photo(height: int, width: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB picture: smooth colour fields, edges and sensor noise (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        field = np.sin(x / width * fx * math.pi + phase) * np.cos(y / height * fy * math.pi)
        channels.append(field)
    pixels = (np.stack(channels, axis=-1) * 90 + 128)
    cy, cx, r = height * rng.uniform(0.3, 0.7), width * rng.uniform(0.3, 0.7), min(height, width) * 0.25
    disc = (y - cy) ** 2 + (x - cx) ** 2 < r ** 2
    pixels[disc] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def timm_eval():
    """The reference transform (see the module docstring)."""
    return timm_eval_reference


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> list[Path]:
    """Four synthetic photos on disk: landscape/portrait JPEGs, a PNG, one smaller than the model input."""
    folder = tmp_path_factory.mktemp("photos")
    specs = [("landscape.jpg", 375, 500, 1), ("portrait.jpg", 500, 375, 2), ("square.png", 300, 300, 3),
             ("small.png", 90, 120, 4)]
    paths = []
    for name, h, w, seed in specs:
        path = folder / name
        options = {"quality": 92} if name.endswith(".jpg") else {}
        synthetic_photo(h, w, seed).save(path, **options)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """The conformance tiny LSNet (128x128, 10 classes), unfused, eval mode."""
    from lsnet_deploy.models import load_model

    return load_model(tiny_checkpoint, img_size=128)  # the bare state dict's 2x2 grid fits 96 and 128


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, artifacts) -> Path:
    """tiny.onnx made by lsnet-export's path, batch 1, with labels in its metadata."""
    from lsnet_deploy.exporters import ExportOptions, export_model

    path = artifacts / "tiny.onnx"
    export_model(tiny_model, "onnx", path, ExportOptions(labels=LABELS))
    return path


@pytest.fixture(scope="session")
def tiny_ort_batch2(tiny_model, artifacts) -> Path:
    """tiny.ort (ONNX Runtime mobile format) with a fixed batch of 2, no labels."""
    from lsnet_deploy.exporters import ExportOptions, export_model

    path = artifacts / "tiny_b2.ort"
    export_model(tiny_model, "ort", path, ExportOptions(batch=2, validate=False))
    return path


def lower_to_pte(model, path: Path) -> Path:
    """A ``.pte`` of ``model`` lowered to XNNPACK: through lsnet-export's ExecuTorch exporter when it is
    registered, else with ExecuTorch's public API (shifted-slices SKA), the metadata embedded as the
    ``lsnet_metadata`` constant method."""
    from lsnet_deploy.errors import UsageError
    from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter

    try:
        get_exporter("executorch")
    except UsageError:
        pass
    else:
        export_model(model, "executorch", path, ExportOptions())
        return path
    pytest.importorskip("executorch.runtime", reason="executorch is not installed")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from lsnet_deploy.metadata import build_metadata
    from lsnet_deploy.reparam import reparameterize

    prepared = reparameterize(model).set_ska("shifted_slices").eval()
    metadata = build_metadata(prepared, ska_form="shifted_slices", fused=True, precision="float32", batch=1)
    example = torch.zeros(1, prepared.in_chans, *prepared.img_size)
    program = torch.export.export(prepared, (example,))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                          constant_methods={"lsnet_metadata": json.dumps(metadata)})
    path.write_bytes(lowered.to_executorch().buffer)
    return path


@pytest.fixture(scope="session")
def tiny_pte(tiny_model, artifacts) -> Path:
    """tiny.pte for ExecuTorch's XNNPACK runtime (the slowest fixture: tens of seconds)."""
    return lower_to_pte(tiny_model, artifacts / "tiny.pte")


@pytest.fixture(scope="session")
def foreign_onnx(tiny_onnx, artifacts) -> Path:
    """tiny.onnx with its metadata stripped: a file not made by lsnet-export."""
    import onnx

    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    path = artifacts / "foreign.onnx"
    onnx.save(model, str(path))
    return path
