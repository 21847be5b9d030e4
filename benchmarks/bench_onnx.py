"""ONNX Runtime CPU latency of lsnet-export's default lsnet_t against a naive export and the peers.

Conditions of the speed goals (benchmarks/goals.py: ``onnx.default_vs_naive``, ``onnx.vs_mobilenetv3``):
2 intra-op threads, thread spinning disabled, batch 1, 224x224, all models interleaved in one process
(A B C A B C ...), medians. Prints the ratios against those goals.

Usage: python benchmarks/bench_onnx.py [--peers DIR] [--rounds 200] [--workdir DIR] [--results FILE]
       [--extra NAME=PATH ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


from cached_export import cached_export
from goals import report
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.exporters import ExportOptions

DEFAULT = "lsnet_t (default export)"
NAIVE = "lsnet_t --ska reference --no-fuse"


def build(workdir: Path, peers: Path | None) -> dict[str, Path]:
    """Export the two lsnet_t variants (random weights: latency does not depend on them), plus the peers."""
    artifacts = {DEFAULT: cached_export(workdir, "onnx", ExportOptions(validate=False)),
                 NAIVE: cached_export(workdir, "onnx", ExportOptions(ska="reference", fuse=False, validate=False))}
    artifacts.update(peer_artifacts(peers, ".onnx"))
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser)
    add_workdir_argument(parser)
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=PATH", help="more .onnx files")
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        artifacts = build(workdir, args.peers)
        for item in args.extra:
            name, path = item.split("=", 1)
            artifacts[name] = Path(path)
        medians = interleaved_medians(artifacts, args)
    base = medians[DEFAULT]
    print(f"ONNX Runtime CPU, {args.threads} threads, spinning off, batch 1, 224x224, "
          f"{args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:38s} {ms:7.2f} ms   default/this = {base / ms:5.2f}")
    print(report("onnx.default_vs_naive", base / medians[NAIVE]))
    if "mobilenetv3_large_100" in medians:
        print(report("onnx.vs_mobilenetv3", base / medians["mobilenetv3_large_100"]))
    if "mobilenetv4_conv_small" in medians:
        print(f"{'default export / MobileNetV4-Conv-Small':55s} {base / medians['mobilenetv4_conv_small']:6.2f}")


if __name__ == "__main__":
    main()
