"""ExecuTorch (XNNPACK) latency of lsnet-export's default lsnet_t .pte against the peers and a naive export.

Conditions of the speed goal (issue: lsnet-export coreml|executorch): ExecuTorch's Python runtime (the
C++ runtime apps embed), XNNPACK threadpool of 2, batch 1, 224x224 float32, all programs interleaved in
one process (A B C A B C ...), medians. Prints ratios:

* default lsnet_t .pte / mobilenetv3_large_100.pte (peers)   goal <= 1.8
* default lsnet_t .pte / mobilenetv4_conv_small.pte (peers)
* default lsnet_t .pte / naive export (reference model, unfold SKA, lowered to XNNPACK as is)

``--ska-sweep`` also times every exportable SKA form on ExecuTorch, each with the rest of the graph
rewritten as lsnet-export does, on the five LS blocks of lsnet_t at their 224x224 shapes (one at 14x14x128,
four at 7x7x256; the rest of the network is the same for every form). That is the measurement behind the
format's ``--ska auto``.

``--int8`` adds lsnet-export's ``--int8`` lsnet_t .pte (calibrated on ``--calib DIR``, default
``../shared/data/imagenet-samples``; random weights, so the accuracy gate is skipped) and the peers'
``*.int8.pte``, and prints the int8 speed goals:

* int8 lsnet_t / default (float32) lsnet_t                goal <= 0.60
* int8 lsnet_t / mobilenetv3_large_100.int8.pte (peers)   goal <= 1.5

With ``--ska-sweep`` it also times the SKA forms in int8 on the LS blocks (PT2E with the exporter's quantizer,
calibrated on random activations: the latency does not depend on the values).

Usage: python benchmarks/bench_executorch.py [--rounds 200] [--workdir DIR] [--ska-sweep] [--int8 [--calib DIR]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.exporters import ExportOptions, export_model
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
    model = create_model("lsnet_t").eval()
    artifacts = {DEFAULT: workdir / "lsnet_t_default.pte", NAIVE: workdir / "lsnet_t_naive.pte"}
    if not artifacts[DEFAULT].exists():
        result = export_model(model, "executorch", artifacts[DEFAULT], ExportOptions(validate=False))
        print(f"default export: {result.details['ops_outside_delegate']} ops outside the delegate, "
              f"{result.details['delegate_calls']} delegate call(s)")
    if not artifacts[NAIVE].exists():
        naive = reparameterize(model).set_ska("reference")
        report = write_pte(naive, torch.zeros(1, 3, 224, 224), artifacts[NAIVE])
        print(f"naive export: {report['ops_outside_delegate']} ops outside the delegate "
              f"({report['outside_ops']}), {report['delegate_calls']} delegate calls")
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
        path = workdir / f"ls_blocks_{form}{'_int8' if int8 else ''}.pte"
        if not path.exists():
            model = xnnpack_friendly(LSBlocksOfLsnetT(form), form)
            if int8:
                images = np.random.default_rng(0).standard_normal((32, *example.shape[1:]), dtype=np.float32)
                model = quantize_pt2e(model, example, images, xnnpack_quantizer())
            report = write_pte(model, example, path)
            print(f"{form}{' int8' if int8 else ''}: {report['ops_outside_delegate']} ops outside the delegate "
                  f"{report['outside_ops']}")
        artifacts[f"LS blocks, SKA {form}{' int8' if int8 else ''}"] = path
    return artifacts


def build_int8(workdir: Path, calib: Path, peers: Path | None) -> dict[str, Path]:
    """lsnet-export's int8 lsnet_t (random weights, gate skipped) and the peers' int8 programs."""
    path = workdir / "lsnet_t_int8.pte"
    if not path.exists():
        result = export_model(create_model("lsnet_t").eval(), "executorch", path,
                              ExportOptions(int8=True, calib=calib, validate=False))
        print(f"int8 export: {result.details['ops_outside_delegate']} ops outside the delegate, "
              f"{result.details['delegate_calls']} delegate call(s), {result.details['int8_ops']} int8 ops")
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
        medians = interleaved_medians(artifacts, (1, 3, 224, 224), args.rounds, args.warmup, args.threads)
        print(f"\nExecuTorch XNNPACK, {args.threads} threads, batch 1, 224x224, {args.rounds} interleaved rounds, "
              "median latency:")
        report(medians, DEFAULT)
        print("\nratios:")
        for peer, goal in (("mobilenetv3_large_100", "goal <= 1.8"), ("mobilenetv4_conv_small", "")):
            if peer in medians:
                print(f"  default lsnet_t / {peer:<24} {medians[DEFAULT] / medians[peer]:5.2f}  {goal}")
        print(f"  default lsnet_t / naive export             {medians[DEFAULT] / medians[NAIVE]:5.2f}")
        if args.int8:
            print(f"  int8 lsnet_t / default (float32) lsnet_t   {medians[INT8] / medians[DEFAULT]:5.2f}  goal <= 0.60")
            peer = "mobilenetv3_large_100.int8"
            if peer in medians:
                print(f"  int8 lsnet_t / {peer:<27} {medians[INT8] / medians[peer]:5.2f}  goal <= 1.5")
        if args.ska_sweep:
            sweep = build_sweep(workdir, int8=args.int8)
            medians = interleaved_medians(sweep, (1, 128, 14, 14), args.rounds, args.warmup, args.threads)
            fastest = min(medians, key=medians.get)
            print(f"\nSKA forms{' in int8' if args.int8 else ''} on the LS blocks of lsnet_t (fastest: {fastest}):")
            report(medians, fastest)


if __name__ == "__main__":
    main()
