"""The float32 speed goal of docs/profiles.md: LSNet-T's default exports against MobileNetV3-Large on
ExecuTorch (XNNPACK) and ONNX Runtime (CPU, spinning off), at batch 1 and a larger batch.

One interleaved run per runtime and batch (A B A B ..., medians, 2 threads, 224x224). LSNet-T is exported
by ``lsnet-export`` with its defaults (random weights) at each batch. The peer files must have that batch:
``--peers DIR`` holds the batch-1 files (``../shared/peers``), ``--peers-batch DIR`` the batch-N ones,
made the same way (``benchmarks/peers.py``) with a batch-N example input. Prints the ratios against the
goals (ExecuTorch <= 1.40, ONNX Runtime <= 1.30) and per-image times.

Usage: python benchmarks/profile_speed_goal.py --peers DIR [--peers-batch DIR] [--batch 8] [--rounds 200]
       [--workdir DIR] [--runtime executorch|onnx]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from interleave import add_timing_arguments, interleaved_medians
from peers import peer_artifacts

from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.models import create_model

GOALS = {"executorch": 1.40, "onnx": 1.30}
SUFFIX = {"executorch": ".pte", "onnx": ".onnx"}
PEER = "mobilenetv3_large_100"


def lsnet_artifact(runtime: str, batch: int, workdir: Path) -> Path:
    """The default export of a random lsnet_t for ``runtime`` at ``batch`` (reused if present)."""
    path = workdir / f"lsnet_t_b{batch}{SUFFIX[runtime]}"
    if not path.exists():
        export_model(create_model("lsnet_t").eval(), runtime, path, ExportOptions(validate=False, batch=batch))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=Path, required=True, metavar="DIR", help="batch-1 peer files")
    parser.add_argument("--peers-batch", type=Path, default=None, metavar="DIR", help="batch-N peer files")
    parser.add_argument("--batch", type=int, default=8)
    add_timing_arguments(parser)
    parser.add_argument("--runtime", choices=sorted(GOALS), action="append", help="default: both")
    parser.add_argument("--workdir", type=Path, default=None, help="keep/reuse the LSNet exports here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for runtime in args.runtime or sorted(GOALS):
            for batch, peers in ((1, args.peers), (args.batch, args.peers_batch)):
                found = peer_artifacts(peers, SUFFIX[runtime]) if peers else {}
                if PEER not in found:
                    print(f"{runtime}, batch {batch}: no {PEER}{SUFFIX[runtime]} peer, skipped")
                    continue
                artifacts = {"lsnet_t": lsnet_artifact(runtime, batch, workdir), PEER: found[PEER]}
                medians = interleaved_medians(artifacts, (batch, 3, 224, 224), args.rounds, args.warmup,
                                              args.threads)
                rows.append((runtime, batch, medians["lsnet_t"], medians[PEER]))
    print(f"\nLSNet-T default export vs {PEER}, {args.threads} threads, {args.rounds} interleaved rounds, medians")
    for runtime, batch, ours, peer in rows:
        goal = f"goal <= {GOALS[runtime]:.2f}" if batch == 1 else "(throughput, reported beside batch 1)"
        print(f"  {runtime:10s} batch {batch}: lsnet_t {ours:7.2f} ms ({ours / batch:6.2f} ms/image), "
              f"{PEER} {peer:7.2f} ms   ratio {ours / peer:5.2f}  {goal}")


if __name__ == "__main__":
    main()
