"""Issue 22's Snapdragon NPU goals, measured on Qualcomm's x86 HTP emulator (onnxruntime-qnn): for each
trained CIFAR fixture, each SoC (HTP v75 and an older generation) and each precision, ``--format qnn`` must
compile whole onto the HTP (no CPU fallback), and its top-1 on the test pictures must stay within 0.5
points (float16) or 1 point (int8) of the PyTorch float32 model's, on the same pictures.

    python benchmarks/qnn_goals.py                      # all 1,000 committed test pictures (hours: LSNet-T rows 30-70 min each)
    python benchmarks/qnn_goals.py --limit 300 --fixtures cifar_small --socs SM8650,SM8450

Accuracy only: emulated timings say nothing about a phone (so a loaded machine changes only how long it
takes). int8 is calibrated on ``--calib`` (pictures the test set does not hold) and exported through the
usual gate (97% agreement on held-out calibration pictures, mixed precision when missed). The goals are
printed first, then one JSON line per measurement as it finishes, then the table as markdown; the exit
status is 0 only when every row meets its goal.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from goals import accuracy_limits

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "fixtures"
#: HTP v75 (the default) and an older generation
SOCS = ("SM8650", "SM8550")
#: the largest top-1 drop (points) below PyTorch float32 each precision may show
GOALS = accuracy_limits("qnn_goals.py")  # benchmarks/goals.py, the one goals table


def measure(fixture: str, soc: str, int8: bool, data: Path, calib: Path, limit: int, work: Path,
            pytorch_top1: float) -> dict:
    """Export one fixture for one SoC and precision, and measure its top-1 on the emulator."""
    from lsnet_deploy.accelerators.qnn_socs import QnnOptions
    from lsnet_deploy.accuracy import evaluate
    from lsnet_deploy.exporters import ExportOptions, export_model
    from lsnet_deploy.models import load_model

    card = json.loads((FIXTURES / f"{fixture}.json").read_text())
    model = load_model(FIXTURES / f"{fixture}.pth", img_size=card["input_size"])
    precision = "int8" if int8 else "float16"
    path = work / f"{fixture}.{soc}.{precision}.qnn.onnx"
    options = ExportOptions(int8=int8, calib=calib if int8 else None, format_options=QnnOptions(soc=soc))
    started = time.perf_counter()
    try:
        result = export_model(model, "qnn", path, options)
    except Exception as exc:  # a refused export is a row of the table, not the end of it
        return {"fixture": fixture, "soc": soc, "precision": precision, "error": str(exc).splitlines()[0]}
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    report = evaluate(path, data, limit=limit, runtime="qnn", reference=model, per_class=False, threads=2)
    placement = result.details["placement"]
    drop = pytorch_top1 - report.top1
    return {"fixture": fixture, "soc": soc, "arch": result.details["htp_arch"], "precision": precision,
            "whole": placement["whole"], "nodes": f"{placement['nodes_on_accelerator']}/{placement['nodes_total']}",
            "pytorch_top1": pytorch_top1, "top1": report.top1, "drop": drop, "count": report.count,
            "agreement": report.agreement,
            "goal": GOALS[precision], "passed": placement["whole"] and drop <= GOALS[precision],
            "int8_kept": result.details.get("int8_float_layers"), "export_s": export_s,
            "eval_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "tests" / "data" / "cifar10" / "test")
    parser.add_argument("--calib", type=Path, default=REPO / "tests" / "data" / "cifar10" / "calib")
    parser.add_argument("--limit", type=int, default=1000, help="test pictures per measurement (spread evenly)")
    parser.add_argument("--fixtures", default="cifar_small,cifar_lsnet_t")
    parser.add_argument("--socs", default=",".join(SOCS))
    parser.add_argument("--precisions", default="float16,int8")
    parser.add_argument("--work", type=Path, default=None, help="keep the artifacts here")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)

    from lsnet_deploy.accuracy import evaluate
    from lsnet_deploy.models import load_model

    for precision, points in GOALS.items():
        print(f"goal: {precision} on the emulated HTP ({', '.join(args.socs.split(','))}), whole model, top-1 within "
              f"{points:g} point(s) of PyTorch float32 on the same pictures")
    work = args.work or Path(tempfile.mkdtemp(prefix="qnn-goals-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for fixture in args.fixtures.split(","):
        card = json.loads((FIXTURES / f"{fixture}.json").read_text())
        model = load_model(FIXTURES / f"{fixture}.pth", img_size=card["input_size"])
        pytorch_top1 = evaluate(model, args.data, limit=args.limit, per_class=False).top1
        for soc in args.socs.split(","):
            for precision in args.precisions.split(","):
                row = measure(fixture, soc, precision == "int8", args.data, args.calib, args.limit, work,
                              pytorch_top1)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print("| fixture | SoC | HTP | precision | whole on the HTP | PyTorch fp32 top-1 | HTP top-1 | drop | agreement | "
          "goal | pictures | met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['fixture']} | {r['soc']} | | {r['precision']} | refused: {r['error']} | | | | | | | no |")
            continue
        print(f"| {r['fixture']} | {r['soc']} | {r['arch']} | {r['precision']} | "
              f"{'yes' if r['whole'] else 'no'} ({r['nodes']} nodes) | {r['pytorch_top1']:.2f}% | {r['top1']:.2f}% | "
              f"{r['drop']:+.2f} | {r['agreement']:.1f}% | <= {r['goal']:g} | {r['count']} | "
              f"{'yes' if r['passed'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r.get("passed") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
