"""The float32 speed goal of docs/profiles.md: LSNet-T's default exports against MobileNetV3-Large on
ExecuTorch (XNNPACK) and ONNX Runtime (CPU, spinning off), at batch 1 and a larger batch.

One interleaved run per runtime and batch (A B A B ..., medians, 2 threads, 224x224). LSNet-T is exported
by ``lsnet-export`` with its defaults (random weights) at each batch. The peer files must have that batch:
``--peers DIR`` holds the batch-1 files (``../shared/peers``), ``--peers-batch DIR`` the batch-N ones,
made the same way (``benchmarks/peers.py``) with a batch-N example input. Prints the ratios against the
batch-1 goals (benchmarks/goals.py: ``executorch.vs_mobilenetv3``, ``onnx.vs_mobilenetv3``) and per-image times.

Usage: python benchmarks/profile_speed_goal.py --peers DIR [--peers-batch DIR] [--batch 8] [--rounds 200]
       [--workdir DIR] [--results FILE] [--runtime executorch|onnx]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cached_export import cached_export
from goals import goal
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import peer_artifacts

from lsnet_deploy.exporters import ExportOptions

GOALS = {"executorch": goal("executorch.vs_mobilenetv3"), "onnx": goal("onnx.vs_mobilenetv3")}
SUFFIX = {"executorch": ".pte", "onnx": ".onnx"}
PEER = "mobilenetv3_large_100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=Path, required=True, metavar="DIR", help="batch-1 peer files")
    parser.add_argument("--peers-batch", type=Path, default=None, metavar="DIR", help="batch-N peer files")
    parser.add_argument("--batch", type=int, default=8)
    add_timing_arguments(parser)
    parser.add_argument("--runtime", choices=sorted(GOALS), action="append", help="default: both")
    add_workdir_argument(parser)
    args = parser.parse_args()
    rows = []
    with workdir_of(args) as workdir:
        for runtime in args.runtime or sorted(GOALS):
            for batch, peers in ((1, args.peers), (args.batch, args.peers_batch)):
                found = peer_artifacts(peers, SUFFIX[runtime]) if peers else {}
                if PEER not in found:
                    print(f"{runtime}, batch {batch}: no {PEER}{SUFFIX[runtime]} peer, skipped")
                    continue
                lsnet = cached_export(workdir, runtime, ExportOptions(validate=False, batch=batch))
                medians = interleaved_medians({"lsnet_t": lsnet, PEER: found[PEER]}, args)
                rows.append((runtime, batch, medians["lsnet_t"], medians[PEER]))
    print(f"\nLSNet-T default export vs {PEER}, {args.threads} threads, {args.rounds} interleaved rounds, medians")
    for runtime, batch, ours, peer in rows:
        verdict = GOALS[runtime].verdict(ours / peer) if batch == 1 else "(throughput, reported beside batch 1)"
        print(f"  {runtime:10s} batch {batch}: lsnet_t {ours:7.2f} ms ({ours / batch:6.2f} ms/image), "
              f"{PEER} {peer:7.2f} ms   ratio {ours / peer:5.2f}  {verdict}")


if __name__ == "__main__":
    main()
