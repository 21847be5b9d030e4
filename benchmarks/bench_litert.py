"""LiteRT (XNNPACK, CPU) latency of lsnet-export's default lsnet_t .tflite against the peers.

Conditions: LiteRT interpreter with XNNPACK, 2 threads, batch 1, 224x224, every model interleaved in one
process (A B C A B C ...), medians. Prints ratios:

* default export / MobileNetV3-Large (peers)   goal float32 <= 1.45
* default export / MobileNetV4-Conv-Small (peers)

``--ska-sweep`` also converts lsnet_t with every exportable SKA form, with and without the XNNPACK rewrites
(``exporters/xnnpack_forms.py``), and times them all together: how ``LiteRTExporter.ska_auto`` was chosen.

Usage: python benchmarks/bench_litert.py [--peers DIR] [--ska-sweep] [--rounds 200] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from interleave import interleaved_medians
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.errors import LsnetDeployError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.exporters.base import prepare_model
from lsnet_deploy.exporters.litert_format import convert_to_tflite
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model

DEFAULT = "lsnet_t (default export)"


def build(workdir: Path, half: bool = False) -> Path:
    """Export lsnet_t with the defaults (random weights: latency does not depend on them)."""
    path = workdir / ("lsnet_t_default" + ("_fp16" if half else "") + ".tflite")
    if not path.exists():
        start = time.perf_counter()
        export_model(create_model("lsnet_t").eval(), "litert", path, ExportOptions(validate=False, half=half))
        print(f"exported {path.name} in {time.perf_counter() - start:.1f} s")
    return path


def sweep(workdir: Path) -> dict[str, Path]:
    """lsnet_t converted with each exportable SKA form, with and without the XNNPACK rewrites."""
    model = create_model("lsnet_t").eval()
    example = torch.zeros(1, 3, 224, 224)
    artifacts = {}
    for form in EXPORTABLE_SKA_FORMS:
        for rewrites in (False, True):
            name = f"{form}{' + xnnpack rewrites' if rewrites else ''}"
            path = workdir / f"sweep_{form}{'_xnn' if rewrites else ''}.tflite"
            if not path.exists():
                prepared = prepare_model(model, form, fuse=True)
                if rewrites:
                    prepared = xnnpack_friendly(prepared, form)
                start = time.perf_counter()
                try:
                    convert_to_tflite(prepared, example, path)
                except LsnetDeployError as exc:
                    print(f"  {name}: does not convert ({exc})")
                    continue
                print(f"  {name}: converted in {time.perf_counter() - start:.1f} s")
            artifacts[name] = path
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--half", action="store_true", help="also time the --half export")
    parser.add_argument("--ska-sweep", action="store_true", help="time every SKA form, with and without rewrites")
    parser.add_argument("--workdir", type=Path, default=None, help="keep/reuse exports here")
    add_peers_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        artifacts = {DEFAULT: build(workdir), **peer_artifacts(args.peers, ".tflite")}
        if args.half:
            artifacts["lsnet_t --half"] = build(workdir, half=True)
        if args.ska_sweep:
            artifacts.update(sweep(workdir))
        medians = interleaved_medians(artifacts, (1, 3, 224, 224), args.rounds, args.warmup, args.threads)
    base = medians[DEFAULT]
    print(f"LiteRT XNNPACK, {args.threads} threads, batch 1, 224x224, {args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:40s} {ms:7.2f} ms   this/default = {ms / base:5.2f}")
    if "mobilenetv3_large_100" in medians:
        print(f"default / MobileNetV3-Large = {base / medians['mobilenetv3_large_100']:.2f}   (goal <= 1.45)")
    if "mobilenetv4_conv_small" in medians:
        print(f"default / MobileNetV4-Small = {base / medians['mobilenetv4_conv_small']:.2f}")


if __name__ == "__main__":
    main()
