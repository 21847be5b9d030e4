"""ONNX Runtime CPU latency of lsnet-export's int8 LSNet-T against its float32 export and the peers' int8.

Conditions of the speed goals (benchmarks/goals.py: ``onnx.int8_vs_float32``, ``onnx.int8_vs_mobilenetv3_int8``):
LSNet-T at 224, batch 1, 2 intra-op threads, thread spinning disabled, every model interleaved in one process
(A B C A B C ...), medians. Prints the ratios against those goals (the peers' int8 files from ``--peers``).

The LSNet-T weights are random (latency does not depend on them), so the int8 export runs with
``--no-validate``: no accuracy gate can hold on random weights. ``--calib`` gives the pictures the ranges
are measured on (any photos; latency does not depend on them either).

``--int8-forms banded_matmul,tap_slices`` also times int8 exports with those SKA forms (the sweep of
docs/ska_forms.md).

Usage: python benchmarks/bench_onnx_int8.py --calib DIR [--peers DIR] [--rounds 200] [--workdir DIR]
       [--results FILE] [--int8-forms FORM,...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cached_export import cached_export
from goals import report
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.exporters import ExportOptions

FLOAT = "lsnet_t float32 (default export)"
INT8 = "lsnet_t int8 (default export)"


def build(workdir: Path, calib: Path, peers: Path | None, forms: list[str]) -> dict[str, Path]:
    """LSNet-T in float32 and int8 (and int8 with each SKA form of ``forms``), plus the peer files."""
    artifacts = {FLOAT: cached_export(workdir, "onnx", ExportOptions(validate=False)),
                 INT8: cached_export(workdir, "onnx", ExportOptions(int8=True, calib=calib, validate=False))}
    for form in forms:
        artifacts[f"lsnet_t int8 --ska {form}"] = cached_export(
            workdir, "onnx", ExportOptions(int8=True, calib=calib, validate=False, ska=form))
    for suffix, label in ((".onnx", "float32"), (".int8.onnx", "int8")):
        artifacts.update({f"{peer} {label}": path for peer, path in peer_artifacts(peers, suffix).items()})
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calib", type=Path, required=True, help="folder of calibration photos")
    add_timing_arguments(parser)
    add_workdir_argument(parser)
    parser.add_argument("--int8-forms", default="", help="comma list of SKA forms to time in int8 as well")
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        artifacts = build(workdir, args.calib, args.peers, [f for f in args.int8_forms.split(",") if f])
        medians = interleaved_medians(artifacts, args)
    base = medians[FLOAT]
    print(f"ONNX Runtime CPU, {args.threads} threads, spinning off, batch 1, 224x224, "
          f"{args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:38s} {ms:7.2f} ms   this/lsnet_t float32 = {ms / base:5.2f}")
    print(report("onnx.int8_vs_float32", medians[INT8] / base))
    if "mobilenetv3_large_100 int8" in medians:
        print(report("onnx.int8_vs_mobilenetv3_int8", medians[INT8] / medians["mobilenetv3_large_100 int8"]))
    if "mobilenetv4_conv_small int8" in medians:
        print(f"int8 / MobileNetV4-Conv-Small int8 = {medians[INT8] / medians['mobilenetv4_conv_small int8']:.2f}")


if __name__ == "__main__":
    main()
