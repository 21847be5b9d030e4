"""x86 against ARM kernels: the same artifacts on the x86 runtime and on its aarch64 build (emulated).

For each artifact, every picture is preprocessed once (the artifact's own recipe) and run by the x86
runtime of its suffix and by each ARM runtime that takes it (``ort-arm64``; ``litert-arm64`` and
``litert-arm64-fp16`` for ``.tflite``; ``executorch-arm64`` for ``.pte``, after ``setup --with-executorch``). Reported: top-1 of each, top-1 agreement x86/ARM, agreement of
each with the PyTorch float32 model (``--weights``), and the largest logit difference x86/ARM.

    python -m lsnet_deploy.arm.setup --with-executorch   # once: the cached arm64 environment
    python benchmarks/arm_accuracy.py small.onnx small.int8.onnx small.tflite ... \\
        --weights tests/data/fixtures/cifar_small.pth --data tests/data/cifar10/test --limit 300 --json out.json
    # or every mobile format and precision, exported here first with lsnet-export (int8 calibrated on --calib):
    python benchmarks/arm_accuracy.py --export --weights tests/data/fixtures/cifar_small.pth \\
        --calib tests/data/cifar10/calib --data tests/data/cifar10/test --limit 1000 --work /tmp/arm_small

The table's last column checks the goal on ARM: top-1 within ``GOAL_POINTS`` of PyTorch float32 (0.5 points
for float32 and float16 artifacts, 1 point for int8).

Accuracy only: emulated time means nothing (about 0.2 s a picture for the small CIFAR fixture).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from goals import accuracy_limits

#: ARM runtimes by artifact suffix (each registered in lsnet_deploy.runtimes.arm_runners)
ARM_RUNTIMES = {".onnx": ("ort-arm64",), ".ort": ("ort-arm64",), ".tflite": ("litert-arm64", "litert-arm64-fp16"),
                ".pte": ("executorch-arm64",)}
#: largest top-1 drop on ARM from PyTorch float32 (points), by precision (issue 26's goal, the x86 limits)
GOAL_POINTS = accuracy_limits("arm_accuracy.py")  # benchmarks/goals.py, the one goals table
#: every mobile format and precision ``--export`` makes: (file name suffix, lsnet-export format, options)
EXPORTS = [
    (".onnx", "onnx", []), (".fp16.onnx", "onnx", ["--half"]), (".int8.onnx", "onnx", ["--int8"]),
    (".ort", "ort", []), (".int8.ort", "ort", ["--int8"]),
    (".tflite", "litert", []), (".fp16.tflite", "litert", ["--half"]), (".int8.tflite", "litert", ["--int8"]),
    (".pte", "executorch", []), (".fp16.pte", "executorch", ["--half"]), (".int8.pte", "executorch", ["--int8"]),
]


def precision_of(artifact: Path) -> str:
    """``int8``, ``float16`` or ``float32``, from the artifact's own metadata (its name as a fallback)."""
    from lsnet_deploy.runtimes.registry import get_runtime, runtime_for_path

    metadata = get_runtime(runtime_for_path(artifact)).read_metadata(artifact) or {}
    precision = metadata.get("precision")
    try:  # metadata values are JSON text ('"int8"')
        precision = json.loads(precision)
    except (TypeError, ValueError):
        pass
    if precision in GOAL_POINTS:
        return precision
    return "int8" if ".int8." in artifact.name else "float16" if ".fp16." in artifact.name else "float32"


def export_all(weights: Path, calib: Path, work: Path) -> tuple[list[Path], dict[str, str]]:
    """Export ``EXPORTS`` from ``weights`` into ``work`` with ``lsnet-export`` (this Python's; validated, int8 calibrated on
    ``calib`` and gated). An int8 export that misses its gate is made again with ``--no-validate`` so it can
    still be measured, and noted. Returns the artifacts and a note per artifact name."""
    work.mkdir(parents=True, exist_ok=True)
    artifacts, notes = [], {}
    for suffix, fmt, options in EXPORTS:
        output = work / f"{weights.stem}{suffix}"
        if not output.exists():
            command = [sys.executable, "-m", "lsnet_deploy.cli.export", "-f", fmt, "-w", str(weights), "-o",
                       str(output), *options]
            if "--int8" in options:
                command += ["--calib", str(calib)]
            print("$", " ".join(command), file=sys.stderr, flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 and "--int8" in options:
                notes[output.name] = "--no-validate: " + (done.stderr.strip().splitlines() or ["?"])[-1]
                done = subprocess.run(command + ["--no-validate"], capture_output=True, text=True)
            if done.returncode != 0:
                notes[output.name] = "export failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
                print(notes[output.name], file=sys.stderr, flush=True)
                continue
        artifacts.append(output)
    (work / "export_notes.json").write_text(json.dumps(notes, indent=1) + "\n")
    return artifacts, notes


def logits_of(predictor, inputs: list[np.ndarray]) -> np.ndarray:
    """Logits of preprocessed pictures, one batch of the artifact's size at a time (Predictor chunks)."""
    return predictor.logits(np.stack(inputs))


def measure(artifact: Path, arm_runtime: str, samples, reference_top1: np.ndarray | None, worker=None) -> dict:
    """One artifact on its x86 runtime and on ``arm_runtime``, over ``samples`` ((path, class) pairs), in the
    emulated ``worker`` (``ArmWorker``) if given."""
    from lsnet_deploy import Predictor

    truth = np.array([target for _, target in samples])
    started = time.perf_counter()
    with Predictor(artifact) as native, Predictor(artifact, runtime=arm_runtime, worker=worker) as arm:
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


def torch_reference(weights: Path, artifact: Path, samples, batch: int = 50) -> tuple[np.ndarray, float]:
    """PyTorch float32 top-1 classes and accuracy of the checkpoint on ``samples``, fed the tensors the
    artifact's own recipe (its metadata) makes of them: the same input every runtime gets."""
    import torch

    from lsnet_deploy import Predictor
    from lsnet_deploy.models import load_model

    with Predictor(artifact) as native:
        inputs = np.stack([native.preprocess(path) for path, _ in samples])
    model = load_model(str(weights)).eval()
    with torch.inference_mode():
        logits = np.concatenate([model(torch.from_numpy(inputs[i:i + batch])).numpy()
                                 for i in range(0, len(inputs), batch)])
    top1 = logits.argmax(1)
    return top1, 100.0 * float(np.mean(top1 == np.array([t for _, t in samples])))


def markdown(rows: list[dict], notes: dict[str, str] | None = None) -> str:
    """The table: one row per artifact and ARM runtime, with the goal on ARM against PyTorch float32 on the
    same pictures."""
    lines = ["| artifact | precision | ARM runtime | pictures | PyTorch float32 | top-1 x86 | top-1 ARM "
             "| agreement x86/ARM | agreement PyTorch/ARM | max abs logit diff x86/ARM | goal on ARM |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['artifact']} | {r.get('precision', '')} | {r['arm_runtime']} | {r.get('count', '')} |"
        torch_top1 = r.get("torch_top1")
        torch_cell = f" {torch_top1:.2f}% |" if torch_top1 is not None else " |"
        if "error" in r:
            lines.append(f"{head}{torch_cell} | error: {r['error']} | | | | |")
            continue
        goal = ""
        if torch_top1 is not None:
            limit = GOAL_POINTS[r["precision"]]
            drop = torch_top1 - r["top1_arm"]
            goal = f"{'met' if drop <= limit else 'MISSED'} ({drop:+.2f} pt, limit {limit})"
        lines.append(f"{head}{torch_cell} {r['top1_x86']:.2f}% | {r['top1_arm']:.2f}% | {r['agreement_x86_arm']:.2f}% | "
                     f"{r.get('agreement_torch_arm', float('nan')):.2f}% | {r['max_abs_logit_diff']:.3g} | {goal} |")
    for name, note in (notes or {}).items():
        lines.append(f"\n{name}: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder of labelled pictures")
    parser.add_argument("--limit", type=int, default=300, help="pictures, spread evenly over the folder")
    parser.add_argument("--limit-float32", type=int,
                        help="fewer pictures for float32 artifacts (their ARM kernels differ only in summation order)")
    parser.add_argument("--weights", type=Path, help="the PyTorch checkpoint the artifacts came from")
    parser.add_argument("--runtime", help="only this ARM runtime (default: every one that takes the suffix)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--export", action="store_true",
                        help="export every mobile format and precision from --weights into --work first")
    parser.add_argument("--calib", type=Path, help="--export: calibration pictures of the int8 artifacts")
    parser.add_argument("--work", type=Path, help="--export: the folder of the artifacts (kept, reused)")
    parser.add_argument("--skip-runtime", action="append", default=[],
                        help="leave out this ARM runtime (repeatable), e.g. litert-arm64-fp16")
    args = parser.parse_args(argv)
    if args.export and not (args.weights and args.calib and args.work):
        parser.error("--export needs --weights, --calib and --work")
    if not args.export and not args.artifacts:
        parser.error("name the artifacts, or --export them")

    import lsnet_deploy.runtimes  # noqa: F401  (registers the runtimes, the ARM ones included)
    from lsnet_deploy.accuracy import list_images
    from lsnet_deploy.arm.client import ArmWorker
    from lsnet_deploy.errors import LsnetDeployError

    notes: dict[str, str] = {}
    if args.export:
        exported, notes = export_all(args.weights, args.calib, args.work)
        args.artifacts = [*args.artifacts, *exported]
    limits = {"float32": args.limit_float32 or args.limit, "float16": args.limit, "int8": args.limit}
    references: dict[int, tuple] = {}  # pictures -> (samples, PyTorch top-1 classes, PyTorch top-1 %)
    done = json.loads(args.json.read_text())["rows"] if args.json and args.json.exists() else []
    rows, worker = [], None
    for artifact in args.artifacts:
        precision = precision_of(artifact)
        count = limits[precision]
        if count not in references:
            samples = list_images(args.data, limit=count)
            references[count] = (samples, *(torch_reference(args.weights, artifact, samples) if args.weights
                                            else (None, None)))
        samples, reference, torch_top1 = references[count]
        for runtime in ARM_RUNTIMES.get(artifact.suffix.lower(), ()):
            if (args.runtime and runtime != args.runtime) or runtime in args.skip_runtime:
                continue
            before = [r for r in done if r["artifact"] == artifact.name and r["arm_runtime"] == runtime
                      and r.get("count") == len(samples)]
            if before:  # measured by an earlier run with the same --json (resumed)
                rows.append(before[0])
                continue
            try:
                if worker is None or not worker.alive:  # one emulated worker loads artifact after artifact
                    worker = ArmWorker()
                row = measure(artifact, runtime, samples, reference, worker)
            except LsnetDeployError as exc:
                row = {"artifact": artifact.name, "arm_runtime": runtime, "error": str(exc), "count": len(samples)}
            row.update(precision=precision, torch_top1=torch_top1)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "disagreeing_pictures"}), file=sys.stderr,
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=1) + "\n")
    if worker is not None:
        worker.close()
    print(markdown(rows, notes))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
