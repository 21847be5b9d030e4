"""ExecuTorch (XNNPACK) latency of lsnet-export's default lsnet_t .pte against the peers and a naive export.

Conditions of the speed goals (benchmarks/goals.py: ``executorch.*``): ExecuTorch's Python runtime (the
C++ runtime apps embed), XNNPACK threadpool of 2, batch 1, 224x224 float32, all programs interleaved in
one process (A B C A B C ...), medians. Prints ratios:

* default lsnet_t .pte / mobilenetv3_large_100.pte (peers), against ``executorch.vs_mobilenetv3``
* default lsnet_t .pte / mobilenetv4_conv_small.pte (peers)
* default lsnet_t .pte / naive export (reference model, unfold SKA, lowered to XNNPACK as is)

``--ska-sweep`` also times every exportable SKA form on ExecuTorch, each with the rest of the graph
rewritten as lsnet-export does, on the five LS blocks of lsnet_t at their 224x224 shapes (one at 14x14x128,
four at 7x7x256; the rest of the network is the same for every form). That is the measurement behind the
format's ``--ska auto``.

``--int8`` adds lsnet-export's ``--int8`` lsnet_t .pte (calibrated on ``--calib DIR``, default
``../shared/data/imagenet-samples``; random weights, so the accuracy gate is skipped) and the peers'
``*.int8.pte``, and prints the ratios against the int8 goals (``executorch.int8_vs_float32``,
``executorch.int8_vs_mobilenetv3_int8``).

With ``--ska-sweep`` it also times the SKA forms in int8 on the LS blocks (PT2E with the exporter's quantizer,
calibrated on random activations: the latency does not depend on the values).

Usage: python benchmarks/bench_executorch.py [--rounds 200] [--workdir DIR] [--results FILE] [--ska-sweep]
       [--int8 [--calib DIR]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cached_export import cached_export, cached_file
from goals import report as goal_report
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.exporters import ExportOptions
from lsnet_deploy.exporters.executorch_format import delegation_report, lower_to_executorch
from lsnet_deploy.exporters.pt2e_int8 import quantize_pt2e, xnnpack_quantizer
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model
from lsnet_deploy.models.lsnet import LSConv
from lsnet_deploy.reparam import reparameterize

DEFAULT = "lsnet_t (default export)"
NAIVE = "lsnet_t naive (reference SKA, no rewrites)"
INT8 = "lsnet_t --int8"
DEFAULT_CALIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"
SWEEP_FORMS_INT8 = ("tap_slices", "shifted_slices", "onehot_conv")


def write_pte(model: nn.Module, example: torch.Tensor, path: Path) -> dict:
    """Lower ``model`` to XNNPACK as is and write it; returns the delegation report."""
    if not isinstance(model, torch.fx.GraphModule):  # a PT2E-converted graph refuses eval()
        model = model.eval()
    edge = lower_to_executorch(model, example)
    report = delegation_report(edge)  # before serialization, which rewrites ops into out-variants
    path.write_bytes(edge.to_executorch().buffer)
    return report


def build(workdir: Path, peers: Path | None) -> dict[str, Path]:
    """The default export, the naive export, and the peers (random weights: latency does not depend on them)."""
    def naive(path: Path) -> None:
        model = reparameterize(create_model("lsnet_t").eval()).set_ska("reference")
        report = write_pte(model, torch.zeros(1, 3, 224, 224), path)
        print(f"naive export: {report['ops_outside_delegate']} ops outside the delegate "
              f"({report['outside_ops']}), {report['delegate_calls']} delegate calls")

    artifacts = {DEFAULT: cached_export(workdir, "executorch", ExportOptions(validate=False)),
                 NAIVE: cached_file(workdir, "lsnet_t_naive", ".pte", {"program": "naive lsnet_t"}, naive)}
    artifacts.update(peer_artifacts(peers, ".pte"))
    return artifacts


class LSBlocksOfLsnetT(nn.Module):
    """lsnet_t's five LS blocks at their 224x224 shapes, joined by a stride-2 convolution."""

    def __init__(self, form: str):
        super().__init__()
        torch.manual_seed(0)
        self.first = reparameterize(LSConv(128).eval())
        self.down = nn.Conv2d(128, 256, 3, stride=2, padding=1)
        self.rest = nn.Sequential(*[reparameterize(LSConv(256, resolution=7).eval()) for _ in range(4)])
        self.first.ska.resolution = (14, 14)
        for block in (self.first, *self.rest):
            block.ska.set_form(form)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.down(self.first(x)))


def build_sweep(workdir: Path, int8: bool = False) -> dict[str, Path]:
    """One program per SKA form, rewritten (and for ``int8`` quantized) as lsnet-export does it."""
    artifacts = {}
    example = torch.zeros(1, 128, 14, 14)
    for form in SWEEP_FORMS_INT8 if int8 else EXPORTABLE_SKA_FORMS:
        def build_one(path: Path, form: str = form) -> None:
            model = xnnpack_friendly(LSBlocksOfLsnetT(form), form)
            if int8:
                images = np.random.default_rng(0).standard_normal((32, *example.shape[1:]), dtype=np.float32)
                model = quantize_pt2e(model, example, images, xnnpack_quantizer())
            report = write_pte(model, example, path)
            print(f"{form}{' int8' if int8 else ''}: {report['ops_outside_delegate']} ops outside the delegate "
                  f"{report['outside_ops']}")

        name = f"ls_blocks_{form}{'_int8' if int8 else ''}"
        artifacts[f"LS blocks, SKA {form}{' int8' if int8 else ''}"] = cached_file(
            workdir, name, ".pte", {"program": "LSBlocksOfLsnetT", "form": form, "int8": int8}, build_one)
    return artifacts


def build_int8(workdir: Path, calib: Path, peers: Path | None) -> dict[str, Path]:
    """lsnet-export's int8 lsnet_t (random weights, gate skipped) and the peers' int8 programs."""
    path = cached_export(workdir, "executorch", ExportOptions(int8=True, calib=calib, validate=False))
    return {INT8: path, **{f"{name}.int8": p for name, p in peer_artifacts(peers, ".int8.pte").items()}}


def report(medians: dict[str, float], baseline: str) -> None:
    width = max(map(len, medians))
    for name, ms in medians.items():
        print(f"  {name:<{width}}  {ms:8.2f} ms  {ms / medians[baseline]:6.2f}x {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser)
    add_workdir_argument(parser)
    parser.add_argument("--ska-sweep", action="store_true", help="also time every SKA form (LS blocks only)")
    parser.add_argument("--int8", action="store_true", help="add the --int8 export and the peers' int8 programs")
    parser.add_argument("--calib", type=Path, default=DEFAULT_CALIB, help="calibration images for --int8")
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        artifacts = build(workdir, args.peers)
        if args.int8:
            artifacts.update(build_int8(workdir, args.calib, args.peers))
        medians = interleaved_medians(artifacts, args)
        print(f"\nExecuTorch XNNPACK, {args.threads} threads, batch 1, 224x224, {args.rounds} interleaved rounds, "
              "median latency:")
        report(medians, DEFAULT)
        print("\nratios:")
        if "mobilenetv3_large_100" in medians:
            print("  " + goal_report("executorch.vs_mobilenetv3", medians[DEFAULT] / medians["mobilenetv3_large_100"]))
        if "mobilenetv4_conv_small" in medians:
            print(f"  {'default export / MobileNetV4-Conv-Small':55s} "
                  f"{medians[DEFAULT] / medians['mobilenetv4_conv_small']:6.2f}")
        print(f"  {'default export / naive export':55s} {medians[DEFAULT] / medians[NAIVE]:6.2f}")
        if args.int8:
            print("  " + goal_report("executorch.int8_vs_float32", medians[INT8] / medians[DEFAULT]))
            if "mobilenetv3_large_100.int8" in medians:
                print("  " + goal_report("executorch.int8_vs_mobilenetv3_int8",
                                         medians[INT8] / medians["mobilenetv3_large_100.int8"]))
        if args.ska_sweep:
            sweep = build_sweep(workdir, int8=args.int8)
            medians = interleaved_medians(sweep, args)
            fastest = min(medians, key=medians.get)
            print(f"\nSKA forms{' in int8' if args.int8 else ''} on the LS blocks of lsnet_t (fastest: {fastest}):")
            report(medians, fastest)


if __name__ == "__main__":
    main()
