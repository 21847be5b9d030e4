"""The LSNet-T backbone at 640x640 (the YOLO-fork size) against the LSNet-T classifier at 224x224, per pixel.

Both are lsnet-export's default exports (random weights: latency does not depend on them): the classifier
(``lsnet-export -f FORMAT``) and the backbone with its four stage outputs (``lsnet-export -f FORMAT --task
features --imgsz 640``), on ONNX Runtime and ExecuTorch (XNNPACK). Conditions as the other benchmarks: 2 threads,
ONNX Runtime spinning off, batch 1, all four artifacts interleaved in one process (A B C D A B C D ...), medians.

Printed per runtime: both medians and the per-pixel ratio

    (backbone ms / classifier ms) / (640 * 640 / (224 * 224))

1.0 means a 640x640 pixel costs what a 224x224 pixel does; above 1 the dense shapes lose efficiency (bigger
token grids for the attention, whose cost grows with the square of the token count, and memory traffic), below
1 the larger maps amortize per-operator overheads better.

Usage: python benchmarks/bench_backbone.py [--rounds 60] [--size 640] [--workdir DIR] [--results FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cached_export import cached_export
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of

from lsnet_deploy.exporters import ExportOptions

CLASSIFIER_SIZE = 224
RUNTIMES = {"ort": "onnx", "executorch": "executorch"}


def build(workdir: Path, size: int) -> dict[str, Path]:
    """The classifier and the backbone exported for every runtime (random weights)."""
    artifacts = {}
    for runtime, fmt in RUNTIMES.items():
        artifacts[f"{runtime} classifier {CLASSIFIER_SIZE}x{CLASSIFIER_SIZE}"] = cached_export(
            workdir, fmt, ExportOptions(validate=False))
        artifacts[f"{runtime} backbone {size}x{size}"] = cached_export(
            workdir, fmt, ExportOptions(validate=False), features_only=True, img_size=size)
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser, rounds=60, warmup=10)
    parser.add_argument("--size", type=int, default=640, help="backbone input side (default 640)")
    add_workdir_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        medians = interleaved_medians(build(workdir, args.size), args)
    pixels = (args.size / CLASSIFIER_SIZE) ** 2
    print(f"{args.threads} threads, ONNX Runtime spinning off, batch 1, {args.rounds} interleaved rounds, medians")
    for runtime in RUNTIMES:
        small = medians[f"{runtime} classifier {CLASSIFIER_SIZE}x{CLASSIFIER_SIZE}"]
        large = medians[f"{runtime} backbone {args.size}x{args.size}"]
        print(f"  {runtime:10s} classifier {CLASSIFIER_SIZE}: {small:7.2f} ms   backbone {args.size}: {large:7.2f} ms   "
              f"ratio {large / small:5.2f}, per pixel {large / small / pixels:5.2f}")


if __name__ == "__main__":
    main()
