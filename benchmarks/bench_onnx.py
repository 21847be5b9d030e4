"""ONNX Runtime CPU latency of lsnet-export's default lsnet_t against a naive export and the peers.

Conditions of the speed goal (issue: lsnet-export ONNX): 2 intra-op threads, thread spinning disabled,
batch 1, 224x224, all models interleaved in one process (A B C A B C ...), medians. Prints ratios:

* default export / (``--ska reference --no-fuse``)   goal <= 0.75
* default export / MobileNetV3-Large (peers)          goal <= 1.40

Usage: python benchmarks/bench_onnx.py [--peers DIR] [--rounds 200] [--workdir DIR] [--extra NAME=PATH ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.models import create_model



def build(workdir: Path, peers: Path | None) -> dict[str, Path]:
    """Export the two lsnet_t variants (random weights: latency does not depend on them)."""
    model = create_model("lsnet_t").eval()
    artifacts = {}
    for name, options in {"lsnet_t (default export)": ExportOptions(validate=False),
                          "lsnet_t --ska reference --no-fuse": ExportOptions(ska="reference", fuse=False,
                                                                             validate=False)}.items():
        path = workdir / (name.split()[0] + ("_default" if "default" in name else "_naive") + ".onnx")
        if not path.exists():
            export_model(model, "onnx", path, options)
        artifacts[name] = path
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
        medians = interleaved_medians(artifacts, (1, 3, 224, 224), args.rounds, args.warmup, args.threads)
    base = medians["lsnet_t (default export)"]
    print(f"ONNX Runtime CPU, {args.threads} threads, spinning off, batch 1, 224x224, "
          f"{args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:38s} {ms:7.2f} ms   default/this = {base / ms:5.2f}")
    naive = medians["lsnet_t --ska reference --no-fuse"]
    print(f"default / naive export      = {base / naive:.2f}   (goal <= 0.75)")
    if "mobilenetv3_large_100" in medians:
        print(f"default / MobileNetV3-Large = {base / medians['mobilenetv3_large_100']:.2f}   (goal <= 1.40)")
    if "mobilenetv4_conv_small" in medians:
        print(f"default / MobileNetV4-Small = {base / medians['mobilenetv4_conv_small']:.2f}")


if __name__ == "__main__":
    main()
