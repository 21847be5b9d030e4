"""Preprocessing against inference for lsnet_t on ONNX Runtime, batch 1, 224x224 (issue: lsnet-predict).

Goal (benchmarks/goals.py: ``preprocess.vs_inference``): preprocessing must not dominate. Each step is timed
by lsnet-bench's clock (``lsnet_deploy.bench.timing.measure_interleaved``), all steps of all pictures
interleaved in one process: decode (Pillow, EXIF applied, RGB), resize + centre crop (bicubic), normalize
(to NCHW float32), and one inference of the same lsnet_t ONNX file through ``Predictor`` (2 intra-op threads,
spinning off, as ``bench_onnx.py``). Each step runs on the previous step's output, made once. Prints medians
and the ratio preprocessing / inference per picture (the sum of the three steps' medians):

* a 500x375 JPEG (the size of an ImageNet validation photo), a 1600x1200 JPEG (a downscaled photo);
* a 4032x3024 JPEG (a 12-megapixel phone photo), decoded in full and with ``fast_decode`` (the JPEG
  decoder downscales by a power of two; slightly different pixels, reported as the mean and max change).

Usage: python benchmarks/bench_preprocess.py [--rounds 30] [--artifact lsnet_t.onnx] [--threads 2] [--results FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from cached_export import cached_export
from goals import report
from interleave import add_timing_arguments, add_workdir_argument, workdir_of

from lsnet_deploy import Predictor
from lsnet_deploy.bench.provenance import machine_info, now_utc
from lsnet_deploy.bench.timing import TimingPolicy, measure_interleaved
from lsnet_deploy.exporters import ExportOptions
from lsnet_deploy.preprocess import draft_size, load_rgb, normalize, preprocess_one, resize_and_crop

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
    """The ONNX file (``artifact``, else lsnet-export's default lsnet_t with random weights: neither latency
    nor preprocessing depends on them) and the test pictures."""
    if artifact is None:
        artifact = cached_export(workdir, "onnx", ExportOptions(validate=False))
    pictures = {}
    for n, (name, (height, width)) in enumerate(PICTURES.items()):
        pictures[name] = workdir / f"picture{n}.jpg"
        photo(height, width, seed=n).save(pictures[name], quality=90)
    return artifact, pictures


class Step:
    """One step of one picture as something lsnet-bench's clock times: ``infer`` runs ``run`` on its input."""

    def __init__(self, run: Callable):
        self.run = run

    def infer(self, x):
        return self.run(x)

    def synchronize(self) -> None:
        pass


STEPS = ("decode", "resize+crop", "normalize", "inference")


def measure(predictor: Predictor, pictures: dict[str, Path], rounds: int, warmup: int) -> dict[str, dict[str, list]]:
    """Per case and step: the timed iterations (ms), every step of every case interleaved."""
    recipe = predictor.recipe
    cases = [(name, path, False) for name, path in pictures.items()]
    cases.append((f"{list(pictures)[-1]} fast_decode", pictures[list(pictures)[-1]], True))
    runners, inputs, labels = [], [], []
    for name, path, fast in cases:
        draft = draft_size(recipe) if fast else None
        image = load_rgb(path, draft_size=draft)
        cropped = resize_and_crop(image, recipe)
        tensor = normalize(cropped, recipe)[None]
        for step, run, x in (("decode", lambda p, d=draft: load_rgb(p, draft_size=d), path),
                             ("resize+crop", lambda i: resize_and_crop(i, recipe), image),
                             ("normalize", lambda c: normalize(c, recipe), cropped),
                             ("inference", predictor.infer, tensor)):
            runners.append(Step(run))
            inputs.append(x)
            labels.append((name, step))
    samples = measure_interleaved(runners, inputs, TimingPolicy(warmup_iters=warmup, warmup_time=0, min_iters=rounds,
                                                                min_time=0))
    times = {name: {} for name, _, _ in cases}
    for (name, step), values in zip(labels, samples):
        times[name][step] = [v * 1e3 for v in values]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_arguments(parser, rounds=30, warmup=3)
    add_workdir_argument(parser)
    parser.add_argument("--artifact", type=Path, help="an lsnet_t ONNX file (default: export one, ~20 s)")
    args = parser.parse_args()

    with workdir_of(args) as work:
        artifact, pictures = build(work, args.artifact)
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
    rows = {}
    for name, parts in times.items():
        medians = {key: statistics.median(values) for key, values in parts.items()}
        pre = medians["decode"] + medians["resize+crop"] + medians["normalize"]
        rows[name] = {**{f"{key}_median_ms": round(ms, 4) for key, ms in medians.items()},
                      "ratio": round(pre / medians["inference"], 4)}
        print(f"{name:<30} {medians['decode']:>7.2f} {medians['resize+crop']:>7.2f} {medians['normalize']:>9.2f} "
              f"{pre:>10.2f} {medians['inference']:>9.2f}  {pre / medians['inference']:.2f}")
    diff = np.abs(fast - exact)
    print(f"fast_decode vs exact on the 4032x3024 photo: mean |diff| {diff.mean():.4f}, max {diff.max():.3f} "
          "(normalized units; one 8-bit level is about 0.017)")
    for name, row in rows.items():
        print(f"{name:<30} " + report("preprocess.vs_inference", row["ratio"]))
    if args.results:
        record = {"benchmark": "bench_preprocess", "time": now_utc(), "machine": machine_info(),
                  "onnxruntime": onnxruntime.__version__, "threads": args.threads, "rounds": args.rounds,
                  "warmup": args.warmup, "pictures": rows}
        with open(args.results, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        print(f"results appended to {args.results}")


if __name__ == "__main__":
    main()
