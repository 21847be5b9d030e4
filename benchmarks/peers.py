"""The peer models the speed goals are stated against, taken from a folder the user names.

Peers are what a user would deploy instead of LSNet-T: timm's ``mobilenetv3_large_100`` and
``mobilenetv4_conv_small``, reparameterized, batch 1, 3x224x224 float32, exported the standard way for each
runtime (``torch.onnx.export(..., dynamo=True, opset_version=18)`` with input ``input``; ``torch.export`` +
``to_edge_transform_and_lower`` with the XNNPACK partitioner for ``.pte``). Random weights are fine:
latency does not depend on them. Name the files ``<peer>.onnx`` / ``<peer>.pte`` in one folder and pass
it with ``--peers DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PEER_NAMES = ("mobilenetv3_large_100", "mobilenetv4_conv_small")


def add_peers_argument(parser: argparse.ArgumentParser) -> None:
    """``--peers DIR``: the folder holding the peer files (nothing is looked up anywhere else)."""
    parser.add_argument("--peers", type=Path, default=None, metavar="DIR",
                        help="folder with mobilenetv3_large_100 / mobilenetv4_conv_small files of this runtime "
                             "(see benchmarks/peers.py for how to make them)")


def peer_artifacts(directory: Path | None, suffix: str) -> dict[str, Path]:
    """The peers found in ``directory`` with ``suffix``; says plainly when there are none."""
    if directory is None:
        print("no --peers DIR given: only LSNet's own ratios are printed (benchmarks/peers.py says how to "
              "make the peer files)")
        return {}
    found = {name: directory / f"{name}{suffix}" for name in PEER_NAMES if (directory / f"{name}{suffix}").is_file()}
    if not found:
        print(f"no {', '.join(n + suffix for n in PEER_NAMES)} in {directory}: only LSNet's own ratios are printed")
    return found
