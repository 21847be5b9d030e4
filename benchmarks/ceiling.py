"""What ONNX Runtime (CPU, spinning off) and ExecuTorch (XNNPACK) reach on this machine for the convolutions
LSNet is made of: GFLOP/s of pointwise and depthwise convolutions, 2 threads, batch 1.

Each case is a chain of ``--depth`` identical convolutions (same channels in and out), so that the layout
changes at the edges of a program (NCHW to the runtime's blocked or NHWC layout and back) are shared by
all of them; both runtimes of one case run interleaved in one process, medians. Cases:

* ``pw 384 @14x14``: a large, cache-resident pointwise convolution (the ceiling for pointwise work);
* ``pw 256 @7x7`` and ``pw 384 @4x4``: LSNet-T's stage-3 and stage-4 pointwise shapes (few pixels per
  weight: what those stages can reach at best);
* ``dw3x3 256 @56x56``: a large depthwise convolution;
* ``dw7x7 128 @28x28`` and ``dw7x7 64 @14x14``: LKP's large-kernel depthwise convolution, on ExecuTorch
  both as is and as lsnet-export lowers it (``DilatedRowsDepthwise``).

FLOPs are 2 per multiply-add. Prints GFLOP/s per runtime and case.

Usage: python benchmarks/ceiling.py [--rounds 100] [--threads 2] [--depth 8] [--batch 1] [--workdir DIR]
       [--results FILE] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# torch's OpenMP threads spin after each parallel torch op (ExecuTorch's Python runtime copies outputs
# of more than 32K values with one), and on a 2-core machine the spinning threads take the cores from
# XNNPACK's: measured 2.6 ms of delegate work taking 8-20 ms per run. LSNet's and the peers' outputs
# (1000 logits) never trigger it, but these chains' outputs do. Must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from cached_export import cached_file
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from profile_common import flops, print_table

from lsnet_deploy.exporters.executorch_format import lower_to_executorch
from lsnet_deploy.exporters.onnx_format import torch_to_onnx
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly

#: name -> (channels, side, kernel, depthwise)
CASES = {
    "pw 384 @14x14": (384, 14, 1, False),
    "pw 256 @7x7": (256, 7, 1, False),
    "pw 384 @4x4": (384, 4, 1, False),
    "dw3x3 256 @56x56": (256, 56, 3, True),
    "dw7x7 128 @28x28": (128, 28, 7, True),
    "dw7x7 64 @14x14": (64, 14, 7, True),
}


def chain(channels: int, kernel: int, depthwise: bool, depth: int) -> nn.Module:
    """``depth`` convolutions in a row, "same" padding, random weights."""
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(channels, channels, kernel, padding=kernel // 2,
                                     groups=channels if depthwise else 1) for _ in range(depth)]).eval()


def build(name: str, args, workdir: Path) -> tuple[dict[str, Path], int]:
    """The case's artifacts (ONNX, .pte, and for 7x7 depthwise the rewritten .pte) and its FLOPs."""
    channels, side, kernel, depthwise = CASES[name]
    model = chain(channels, kernel, depthwise, args.depth)
    x = torch.zeros(args.batch, channels, side, side)
    stem = name.replace(" ", "_").replace("@", "")
    key = {"program": "convolution chain", "case": CASES[name], "depth": args.depth, "batch": args.batch}

    def onnx_file(path: Path) -> None:
        import onnx

        onnx.save_model(torch_to_onnx(model, x, 18, dynamic=False), str(path))

    artifacts = {
        "ONNX Runtime": cached_file(workdir, stem, ".onnx", key, onnx_file),
        "ExecuTorch": cached_file(workdir, stem, ".pte", key,
                                  lambda path: path.write_bytes(lower_to_executorch(model, x).to_executorch().buffer)),
    }
    if depthwise and kernel * kernel > 25:
        rewritten = xnnpack_friendly(model, "tap_slices")
        artifacts["ExecuTorch, as exported"] = cached_file(
            workdir, f"{stem}_rows", ".pte", {**key, "rewrite": "tap_slices"},
            lambda path: path.write_bytes(lower_to_executorch(rewritten, x).to_executorch().buffer))
    return artifacts, flops(model, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser, rounds=100, warmup=10)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    add_workdir_argument(parser)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    args = parser.parse_args()
    rows = []
    with workdir_of(args) as workdir:
        for name in args.case or CASES:
            artifacts, total = build(name, args, workdir)
            for runtime, ms in interleaved_medians(artifacts, args).items():
                rows.append((name, runtime, ms, total / 1e6 / ms))
    print_table(("case", "runtime", "ms", "GFLOP/s"), rows,
                f"chains of {args.depth} convolutions, {args.threads} threads, batch {args.batch}, medians")


if __name__ == "__main__":
    main()
