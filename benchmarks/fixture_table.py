"""The README's accuracy table for one trained fixture: every format and precision that runs here, exported
with ``lsnet-export`` and measured with ``lsnet-bench --data`` (top-1, top-5, agreement with the PyTorch
model, and latency against the same format in float32, from one interleaved run).

    python benchmarks/fixture_table.py tests/data/fixtures/cifar_lsnet_t.pth \\
        --data ../shared/data/cifar10/test --train-zip ../shared/data/cifar10/train.zip --work /tmp/table

int8 artifacts are calibrated on CIFAR-10 *training* pictures (``--calib-per-class`` of each class, spread
over it), so every test picture is one the quantizer never saw, and each is gated with ``--data``.
The commands run are printed first; the markdown table last.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

#: (file suffix, lsnet-export options, runtime title, precision, the float32 file it is timed against)
ARTIFACTS = [
    (".onnx", [], "ONNX Runtime", "float32", ".onnx"),
    (".ort", [], "ONNX Runtime", "float32", ".ort"),
    (".fp16.onnx", ["--half"], "ONNX Runtime", "float16", None),
    (".pte", [], "ExecuTorch XNNPACK", "float32", ".pte"),
    (".tflite", [], "LiteRT XNNPACK", "float32", ".tflite"),
    (".int8.onnx", ["--int8"], "ONNX Runtime", "int8", ".onnx"),
    (".int8.ort", ["--int8"], "ONNX Runtime", "int8", ".ort"),
    (".int8.pte", ["--int8"], "ExecuTorch XNNPACK", "int8", ".pte"),
    (".int8.tflite", ["--int8"], "LiteRT XNNPACK", "int8", ".tflite"),
]
FORMATS = {".onnx": "onnx", ".ort": "ort", ".pte": "executorch", ".tflite": "litert"}
#: training pictures per class to calibrate int8 on (the tests calibrate the fixtures the same way)
CALIBRATION_PER_CLASS = 25


def calibration_folder(train_zip: Path, per_class: int, folder: Path) -> Path:
    """``per_class`` training pictures of each class, spread evenly over the class (sorted names)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(train_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        classes = sorted({Path(n).parent.name for n in names})
        for class_name in classes:
            members = [n for n in names if Path(n).parent.name == class_name]
            for name in members[::max(1, len(members) // per_class)][:per_class]:
                (folder / f"{class_name}_{Path(name).name}").write_bytes(archive.read(name))
    return folder


def subset_folder(data: Path, limit: int, folder: Path) -> Path:
    """``limit`` pictures of ``data`` spread evenly over it (lsnet_deploy's own ``list_images(limit=)``
    choice), copied to ``folder`` as an ImageFolder: the export gates and the measurement see the same ones."""
    import shutil

    from lsnet_deploy.accuracy import list_images

    for path, _ in list_images(data, limit=limit):
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.parent.name / path.name)
    return folder


def run(command: list[str]) -> bool:
    """Run ``command`` (printed first); False when it failed (its own one-line error is above)."""
    print("$", shlex.join(command), flush=True)
    return subprocess.run(command).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a trained fixture (tests/data/fixtures/*.pth)")
    parser.add_argument("--data", type=Path, required=True, help="labelled ImageFolder (CIFAR-10 test split)")
    parser.add_argument("--train-zip", type=Path, required=True, help="CIFAR-10 training zip (calibration)")
    parser.add_argument("--calib-per-class", type=int, default=CALIBRATION_PER_CLASS)
    parser.add_argument("--data-limit", type=int, default=None,
                        help="measure (and gate the int8 exports) on this many --data pictures, spread evenly")
    parser.add_argument("--work", type=Path, required=True, help="folder for the artifacts and results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds timed per artifact")
    args = parser.parse_args()

    stem = args.checkpoint.stem
    args.work.mkdir(parents=True, exist_ok=True)
    calib = calibration_folder(args.train_zip, args.calib_per_class, args.work / "calib")
    if args.data_limit:
        args.data = subset_folder(args.data, args.data_limit, args.work / "data")
    paths = []
    for suffix, options, *_ in ARTIFACTS:
        path = args.work / f"{stem}{suffix}"
        paths.append(path)
        if path.exists():
            continue
        extra = ["--calib", str(calib), "--data", str(args.data)] if "--int8" in options else []
        # a refused export (an int8 file that misses the gate) is a row of the table, not the end of it
        run(["lsnet-export", "-f", FORMATS[path.suffix], "-w", str(args.checkpoint), *options, *extra,
             "-o", str(path)])
    results = args.work / "results.jsonl"
    results.unlink(missing_ok=True)
    made = [path for path in paths if path.exists()]
    if not run(["lsnet-bench", *map(str, made), "-w", str(args.checkpoint), "--data", str(args.data),
                "--threads", str(args.threads), "--min-time", str(args.min_time), "-o", str(results)]):
        return 1

    records = [json.loads(line) for line in results.read_text().splitlines()]
    # -w adds the PyTorch model itself as a candidate; the artifacts are keyed by file name
    artifacts = {r["source"]["file"]: r for r in records if r["source"].get("kind") == "artifact"}
    torch_record = next(r for r in records if r["source"].get("kind") == "model")
    medians = {name: r["stats"]["median_ms"] for name, r in artifacts.items()}
    print("\n| artifact | runtime | precision | top-1 % | top-5 % | agreement with PyTorch % | time vs float32 |")
    print("|---|---|---|---|---|---|---|")
    own = torch_record["accuracy"]
    print(f"| `{args.checkpoint.name}` | PyTorch | float32 | {own['top1']:.2f} | {own['top5']:.2f} | 100 | |")
    for (suffix, options, title, precision, baseline), path in zip(ARTIFACTS, paths):
        shown = f"`{suffix}`" + (" (`--half`)" if "--half" in options else "")
        if path.name not in artifacts:
            print(f"| {shown} | {title} | {precision} | export refused (see its error above) | | | |")
            continue
        accuracy = artifacts[path.name]["accuracy"]
        base = medians.get(f"{stem}{baseline}")
        ratio = "" if baseline is None or base is None else f"{medians[path.name] / base:.2f}"
        print(f"| {shown} | {title} | {precision} | {accuracy['top1']:.2f} | {accuracy['top5']:.2f} | "
              f"{accuracy['agreement']:.2f} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
