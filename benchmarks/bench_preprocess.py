"""Preprocessing against inference for lsnet_t on ONNX Runtime, batch 1, 224x224 (issue: lsnet-predict).

Goal: preprocessing must not dominate. Each round times, interleaved in one process, for each picture:
decode (Pillow, EXIF applied, RGB), resize + centre crop (bicubic), normalize (to NCHW float32), and one
inference of the same lsnet_t ONNX file through ``Predictor`` (2 intra-op threads, spinning off, as
``bench_onnx.py``). Prints medians and the ratio preprocessing / inference per picture:

* a 500x375 JPEG (the size of an ImageNet validation photo), a 1600x1200 JPEG (a downscaled photo);
* a 4032x3024 JPEG (a 12-megapixel phone photo), decoded in full and with ``fast_decode`` (the JPEG
  decoder downscales by a power of two; slightly different pixels, reported as the mean and max change).

Usage: python benchmarks/bench_preprocess.py [--rounds 30] [--artifact lsnet_t.onnx] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lsnet_deploy import Predictor
from lsnet_deploy.preprocess import draft_size, load_rgb, normalize, preprocess_one, resize_and_crop
from interleave import add_timing_arguments

PICTURES = {"500x375 JPEG": (375, 500), "1600x1200 JPEG": (1200, 1600), "4032x3024 JPEG": (3024, 4032)}


def photo(height: int, width: int, seed: int) -> Image.Image:
    """A photo-like picture (smooth colour fields, an edge, sensor noise) so JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    planes = [np.sin(x * rng.uniform(2, 9) * math.pi + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 9) * math.pi)
              for _ in range(3)]
    pixels = np.stack(planes, axis=-1) * 90 + 128
    pixels[(y - 0.5) ** 2 + (x - 0.4) ** 2 < 0.05] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 5, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def build(workdir: Path, artifact: Path | None) -> tuple[Path, dict[str, Path]]:
    if artifact is None:
        from lsnet_deploy.exporters import ExportOptions, export_model
        from lsnet_deploy.models import create_model

        artifact = workdir / "lsnet_t.onnx"
        # random weights: neither latency nor preprocessing depends on them
        export_model(create_model("lsnet_t").eval(), "onnx", artifact, ExportOptions(validate=False))
    pictures = {}
    for n, (name, (height, width)) in enumerate(PICTURES.items()):
        pictures[name] = workdir / f"picture{n}.jpg"
        photo(height, width, seed=n).save(pictures[name], quality=90)
    return artifact, pictures


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - start) * 1e3


def measure(predictor: Predictor, pictures: dict[str, Path], rounds: int, warmup: int) -> dict[str, dict[str, list]]:
    """Per case: lists of decode, resize, normalize and inference times (ms), rounds interleaved."""
    recipe = predictor.recipe
    cases = [(name, path, False) for name, path in pictures.items()]
    cases.append((f"{list(pictures)[-1]} fast_decode", pictures[list(pictures)[-1]], True))
    times = {name: {"decode": [], "resize+crop": [], "normalize": [], "inference": []} for name, _, _ in cases}
    for round_index in range(warmup + rounds):
        for name, path, fast in cases:
            image, decode = timed(load_rgb, path, draft_size=draft_size(recipe) if fast else None)
            cropped, resize = timed(resize_and_crop, image, recipe)
            tensor, norm = timed(normalize, cropped, recipe)
            _, infer = timed(predictor.infer, tensor[None])
            if round_index >= warmup:
                for key, value in zip(times[name], (decode, resize, norm, infer)):
                    times[name][key].append(value)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_arguments(parser, rounds=30, warmup=3)
    parser.add_argument("--artifact", type=Path, help="an lsnet_t ONNX file (default: export one, ~20 s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lsnet-bench-pre-") as work:
        artifact, pictures = build(Path(work), args.artifact)
        with Predictor(artifact, threads=args.threads) as predictor:
            assert predictor.recipe.input_size == (224, 224), "benchmark lsnet_t at 224"
            times = measure(predictor, pictures, args.rounds, args.warmup)
            exact = predictor.preprocess(pictures["4032x3024 JPEG"])
            fast = preprocess_one(pictures["4032x3024 JPEG"], predictor.recipe, fast_decode=True)

    import onnxruntime

    print(f"lsnet_t, ONNX Runtime {onnxruntime.__version__}, {args.threads} threads, batch 1, 224x224; medians of "
          f"{args.rounds} interleaved rounds (ms)")
    header = f"{'picture':<30} {'decode':>7} {'resize':>7} {'normalize':>9} {'preprocess':>10} {'inference':>9}  ratio"
    print(header)
    for name, parts in times.items():
        medians = {key: statistics.median(values) for key, values in parts.items()}
        pre = statistics.median([sum(v) for v in zip(parts["decode"], parts["resize+crop"], parts["normalize"])])
        print(f"{name:<30} {medians['decode']:>7.2f} {medians['resize+crop']:>7.2f} {medians['normalize']:>9.2f} "
              f"{pre:>10.2f} {medians['inference']:>9.2f}  {pre / medians['inference']:.2f}")
    diff = np.abs(fast - exact)
    print(f"fast_decode vs exact on the 4032x3024 photo: mean |diff| {diff.mean():.4f}, max {diff.max():.3f} "
          "(normalized units; one 8-bit level is about 0.017)")
    print("ratio = preprocessing / inference (goal: below 1, preprocessing does not dominate)")


if __name__ == "__main__":
    main()
