"""The phone-accelerator goals of issue 22 for LSNet-T at 224: export with ``--accelerator`` and print what
each accelerator's own tool says about the artifact.

Goals (one row each):

* ORT Core ML EP (MLProgram) and NNAPI EP, ``--format onnx`` and ``--format ort``: one partition, nothing
  unsupported (ONNX Runtime's mobile usability checker);
* LiteRT GPU, float32 and ``--half``: the whole model on the GPU delegate (compiled by LiteRT's GPU
  accelerator where a GPU adapter exists, e.g. Mesa's software Vulkan driver; else the analyzer's verdict,
  marked unverified);
* ExecuTorch Vulkan, float32 and ``--half``: one delegate, nothing outside.

Placement does not depend on the weights, so a randomly initialized LSNet-T is exported unless
``--weights`` names a checkpoint. Exports keep artifacts that miss a goal (``--allow-fallback``) so the
row shows what falls back. Not a timing benchmark: it can run while the machine is busy (slowly).

    python benchmarks/accelerator_goals.py [--weights CKPT] [--workdir DIR] [--only coreml,gpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Goal:
    """One goal row: export ``fmt`` for ``accelerator`` (with ``half``) and ask the accelerator."""

    accelerator: str
    fmt: str
    half: bool = False

    @property
    def label(self) -> str:
        return f"{self.accelerator}: -f {self.fmt} --accelerator {self.accelerator}{' --half' if self.half else ''}"

    @property
    def filename(self) -> str:
        suffix = {"onnx": ".onnx", "ort": ".ort", "litert": ".tflite", "executorch": ".pte"}[self.fmt]
        return f"lsnet_t_{self.accelerator}{'_half' if self.half else ''}{suffix}"


GOALS = (Goal("coreml", "onnx"), Goal("nnapi", "onnx"), Goal("coreml", "ort"), Goal("nnapi", "ort"),
         Goal("gpu", "litert"), Goal("gpu", "litert", half=True),
         Goal("vulkan", "executorch"), Goal("vulkan", "executorch", half=True))


def run_goal(goal: Goal, model, workdir: Path, validate: bool) -> dict:
    """Export for ``goal`` and probe the artifact; returns the row (report, export seconds, or the error)."""
    from lsnet_deploy.accelerators import probe
    from lsnet_deploy.errors import LsnetDeployError
    from lsnet_deploy.exporters import ExportOptions, export_model

    path = workdir / goal.filename
    start = time.perf_counter()
    try:
        result = export_model(model, goal.fmt, path, ExportOptions(accelerator=goal.accelerator, allow_fallback=True,
                                                                   half=goal.half, validate=validate))
    except LsnetDeployError as exc:
        return {"goal": goal.label, "met": False, "error": str(exc)}
    seconds = time.perf_counter() - start
    report = probe(path, goal.accelerator)
    return {"goal": goal.label, "met": report.whole and report.verified, "report": report.to_dict(),
            "summary": report.summary(), "ska_form": result.ska_form, "export_seconds": round(seconds, 1),
            "validation": result.validation.summary() if result.validation else result.validation_skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="checkpoint (default: randomly initialized LSNet-T)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the artifacts here (default: a temp dir)")
    parser.add_argument("--only", default=None, help="comma-separated accelerators to run (coreml, nnapi, gpu, vulkan)")
    parser.add_argument("--no-validate", action="store_true", help="skip the float validation of each export")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from lsnet_deploy.models import create_model, load_model

    model = load_model(args.weights) if args.weights else create_model("lsnet_t").eval()
    wanted = set(args.only.split(",")) if args.only else None
    goals = [g for g in GOALS if wanted is None or g.accelerator in wanted]
    with tempfile.TemporaryDirectory(prefix="lsnet-goals-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for goal in goals:
            rows.append(run_goal(goal, model, workdir, validate=not args.no_validate))
            if not args.json:
                row = rows[-1]
                mark = "MET " if row["met"] else "MISS"
                print(f"{mark} {row['goal']}\n     {row.get('summary') or row.get('error')}", flush=True)
                if "validation" in row:
                    print(f"     SKA {row['ska_form']}, export {row['export_seconds']} s, validation: "
                          f"{row['validation']}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{sum(r['met'] for r in rows)} of {len(rows)} goals met")
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
