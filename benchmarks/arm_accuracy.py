"""x86 against ARM kernels: the same artifacts on the x86 runtime and on its aarch64 build (emulated).

For each artifact, every picture is preprocessed once (the artifact's own recipe) and run by the x86
runtime of its suffix and by each ARM runtime that takes it (``ort-arm64``; ``litert-arm64`` and
``litert-arm64-fp16`` for ``.tflite``; ``executorch-arm64`` for ``.pte``, after ``setup --with-executorch``). Reported: top-1 of each, top-1 agreement x86/ARM, agreement of
each with the PyTorch float32 model (``--weights``), and the largest logit difference x86/ARM.

    python -m lsnet_deploy.arm.setup          # once: the cached arm64 environment
    python benchmarks/arm_accuracy.py small.onnx small.int8.onnx small.tflite ... \\
        --weights tests/data/fixtures/cifar_small.pth --data tests/data/cifar10/test --limit 300 --json out.json

Accuracy only: emulated time means nothing (about 0.2 s a picture for the small CIFAR fixture).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: ARM runtimes by artifact suffix (each registered in lsnet_deploy.runtimes.arm_runners)
ARM_RUNTIMES = {".onnx": ("ort-arm64",), ".ort": ("ort-arm64",), ".tflite": ("litert-arm64", "litert-arm64-fp16"),
                ".pte": ("executorch-arm64",)}


def logits_of(predictor, inputs: list[np.ndarray]) -> np.ndarray:
    """Logits of preprocessed pictures, one batch of the artifact's size at a time (Predictor chunks)."""
    return predictor.logits(np.stack(inputs))


def measure(artifact: Path, arm_runtime: str, samples, reference_top1: np.ndarray | None) -> dict:
    """One artifact on its x86 runtime and on ``arm_runtime``, over ``samples`` ((path, class) pairs)."""
    from lsnet_deploy import Predictor

    truth = np.array([target for _, target in samples])
    started = time.perf_counter()
    with Predictor(artifact) as native, Predictor(artifact, runtime=arm_runtime) as arm:
        inputs = [native.preprocess(path) for path, _ in samples]
        x86 = logits_of(native, inputs)
        on_arm = logits_of(arm, inputs)
        info = arm.runner.info()
    x86_top1, arm_top1 = x86.argmax(1), on_arm.argmax(1)
    row = {"artifact": artifact.name, "x86_runtime": native.runtime, "arm_runtime": arm_runtime,
           "count": int(len(truth)), "top1_x86": 100.0 * float(np.mean(x86_top1 == truth)),
           "top1_arm": 100.0 * float(np.mean(arm_top1 == truth)),
           "agreement_x86_arm": 100.0 * float(np.mean(x86_top1 == arm_top1)),
           "max_abs_logit_diff": float(np.abs(x86 - on_arm).max()),
           "disagreeing_pictures": [str(samples[i][0]) for i in np.flatnonzero(x86_top1 != arm_top1)],
           "arm_info": {k: v for k, v in info.items() if k not in ("cpu_features",)},
           "seconds": round(time.perf_counter() - started, 1)}
    if reference_top1 is not None:
        row["agreement_torch_x86"] = 100.0 * float(np.mean(reference_top1 == x86_top1))
        row["agreement_torch_arm"] = 100.0 * float(np.mean(reference_top1 == arm_top1))
    return row


def torch_reference(weights: Path, samples) -> tuple[np.ndarray, float]:
    """PyTorch float32 top-1 classes and accuracy of the checkpoint on ``samples``."""
    from lsnet_deploy import Predictor
    from lsnet_deploy.accuracy import _checkpoint_input_size

    with Predictor(weights, imgsz=_checkpoint_input_size(weights)) as predictor:
        logits = predictor.logits(np.stack([predictor.preprocess(path) for path, _ in samples]))
    top1 = logits.argmax(1)
    return top1, 100.0 * float(np.mean(top1 == np.array([t for _, t in samples])))


def markdown(rows: list[dict], torch_top1: float | None) -> str:
    """The table: one row per artifact and ARM runtime."""
    lines = ["| artifact | ARM runtime | top-1 x86 | top-1 ARM | agreement x86/ARM | agreement PyTorch/ARM "
             "| max abs logit diff | pictures |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['artifact']} | {r['arm_runtime']} | error: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['artifact']} | {r['arm_runtime']} | {r['top1_x86']:.2f}% | {r['top1_arm']:.2f}% | "
                     f"{r['agreement_x86_arm']:.2f}% | {r.get('agreement_torch_arm', float('nan')):.2f}% | "
                     f"{r['max_abs_logit_diff']:.3g} | {r['count']} |")
    if torch_top1 is not None:
        lines.append(f"\nPyTorch float32 top-1 on the same pictures: {torch_top1:.2f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder of labelled pictures")
    parser.add_argument("--limit", type=int, default=300, help="pictures, spread evenly over the folder")
    parser.add_argument("--weights", type=Path, help="the PyTorch checkpoint the artifacts came from")
    parser.add_argument("--runtime", help="only this ARM runtime (default: every one that takes the suffix)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)

    import lsnet_deploy.runtimes  # noqa: F401  (registers the runtimes, the ARM ones included)
    from lsnet_deploy.accuracy import list_images
    from lsnet_deploy.errors import LsnetDeployError

    samples = list_images(args.data, limit=args.limit)
    reference, torch_top1 = (torch_reference(args.weights, samples) if args.weights else (None, None))
    rows = []
    for artifact in args.artifacts:
        for runtime in ARM_RUNTIMES.get(artifact.suffix.lower(), ()):
            if args.runtime and runtime != args.runtime:
                continue
            try:
                row = measure(artifact, runtime, samples, reference)
            except LsnetDeployError as exc:
                row = {"artifact": artifact.name, "arm_runtime": runtime, "error": str(exc)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "disagreeing_pictures"}), file=sys.stderr,
                  flush=True)
    print(markdown(rows, torch_top1))
    if args.json:
        args.json.write_text(json.dumps({"torch_top1": torch_top1, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
