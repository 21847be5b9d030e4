"""Where LSNet-T's time goes on ExecuTorch / XNNPACK, operator by operator and stage by stage, beside
MobileNetV3-Large.

Each program runs with ETDump on (``_load_for_executorch(..., enable_etdump=True)``); the Inspector
(``executorch.devtools.Inspector``) reads the dump. The pip build of ExecuTorch has XNNPACK's runtime
profiling on, so every XNNPACK operator is an event named after the XNNPACK operator and the kernel
path it took (``Convolution (NHWC, F32) DWConv``, ``... IGEMM``, ``Fully Connected (NC, F32) GEMM``);
those names carry no link to the model's modules. So stages are profiled as separate programs: each
stage of the exported model (the same rewrites and lowering as ``lsnet-export -f executorch``) lowered
alone; each such program pays one layout transpose in and one out that the whole program does not
(listed as ``boundary``). MobileNetV3's ``.pte`` comes without its source, so it gets the operator table
only.

Times are trimmed means (10% cut each side) over the iterations, per event, summed by operator type.
``between operators`` is the delegate call's time minus its operators': thread-pool wake-ups and waits,
which grow with the operator count on a loaded machine.

Usage: python benchmarks/profile_executorch.py [--peers DIR] [--iters 50] [--threads 2] [--batch 1]
       [--workdir DIR] [--ska FORM]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import torch

from cached_export import cached_export, cached_file
from interleave import add_workdir_argument, workdir_of
from peers import add_peers_argument, peer_artifacts
from profile_common import flops, lsnet_stages, print_table

from lsnet_deploy.exporters import ExportOptions, get_exporter
from lsnet_deploy.exporters.prepare import prepare_model
from lsnet_deploy.exporters.executorch_format import lower_to_executorch
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import create_model
from lsnet_deploy.quiet import native_stderr_captured

LAYOUT_OPS = ("Transpose", "Constant Pad", "Slice", "Copy", "Concatenate", "Static Reshape")


def _trimmed_mean_ms(raw) -> float:
    values = np.sort(np.asarray(raw, dtype=np.float64))
    cut = len(values) // 10
    return float(values[cut:len(values) - cut].mean()) if len(values) > 2 * cut else float(values.mean())


def etdump_profile(path: Path, shape: tuple[int, ...], iters: int, threads: int) -> dict:
    """Run ``path`` ``iters`` times with ETDump and return its per-operator times.

    Returns:
        ``ops``: list of (operator type, ms) per XNNPACK operator in execution order; ``delegate_ms``:
        time of the delegate call(s); ``outside``: (name, ms) of operators outside the delegate.
    """
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    with native_stderr_captured():
        portable_lib._unsafe_reset_threadpool(threads)
        module = portable_lib._load_for_executorch(str(path), enable_etdump=True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    for _ in range(iters):
        module.forward([x])
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "run.etdp"
        module.write_etdump_result_to_file(str(dump))
        frame = Inspector(etdump_path=str(dump)).to_dataframe()
    frame = frame[frame.event_block_name == "Execute"]
    ops, outside, delegate_ms = [], [], 0.0
    for _, row in frame.iterrows():
        ms = _trimmed_mean_ms(row.raw)
        if row.is_delegated_op:
            ops.append((row.event_name.rsplit(" #", 1)[0], ms))
        elif row.event_name == "DELEGATE_CALL":
            delegate_ms += ms
        elif row.event_name.startswith("native_call_"):
            outside.append((row.event_name[len("native_call_"):], ms))
    return {"ops": ops, "delegate_ms": delegate_ms, "outside": outside}


def op_table(profile: dict) -> list[tuple]:
    """(operator type, count, ms, share) rows, slowest first, then the time between operators."""
    count, total = collections.Counter(), collections.Counter()
    for name, ms in profile["ops"]:
        count[name] += 1
        total[name] += ms
    op_ms = sum(total.values())
    whole = max(profile["delegate_ms"], op_ms)
    rows = [(name, count[name], ms, f"{100 * ms / whole:.1f}%") for name, ms in total.most_common()]
    rows.append(("between operators", "", whole - op_ms, f"{100 * (whole - op_ms) / whole:.1f}%"))
    rows.append(("delegate call", sum(count.values()), whole, "100%"))
    return rows


def stage_programs(ska: str, batch: int, workdir: Path) -> list[tuple[str, Path, tuple[int, ...], int]]:
    """Each stage of the default export as its own .pte: (stage, path, input shape, FLOPs)."""
    exporter = get_exporter("executorch")
    form = exporter.resolve_ska(ska)
    model = xnnpack_friendly(prepare_model(create_model("lsnet_t").eval(), form, fuse=True), form)
    out = []
    for name, module, x in lsnet_stages(model, torch.zeros(batch, 3, 224, 224)):
        path = cached_file(workdir, f"stage_{name}_{form}_b{batch}", ".pte",
                           {"program": "lsnet_t stage", "stage": name, "form": form, "batch": batch},
                           lambda target, module=module, x=x: target.write_bytes(
                               lower_to_executorch(module, x).to_executorch().buffer))
        out.append((name, path, tuple(x.shape), flops(module, x)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--ska", default="auto", help="SKA form of the LSNet-T export (default: the format's auto)")
    add_workdir_argument(parser)
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        shape = (args.batch, 3, 224, 224)
        whole = cached_export(workdir, "executorch", ExportOptions(validate=False, ska=args.ska, batch=args.batch))
        programs = {"lsnet_t": whole}
        if args.batch == 1:  # the peer files are batch 1
            programs.update(peer_artifacts(args.peers, ".pte"))
        totals = {}
        for name, path in programs.items():
            profile = etdump_profile(path, shape, args.iters, args.threads)
            rows = op_table(profile)
            totals[name] = rows[-1][2]
            print_table(("operator (XNNPACK kernel path)", "count", "ms", "share"), rows,
                        f"{name}: ExecuTorch XNNPACK, {args.threads} threads, batch {args.batch}, per operator type")
            if profile["outside"]:
                print("  outside the delegate:", ", ".join(f"{n} {ms:.3f} ms" for n, ms in profile["outside"]))
        rows = []
        for stage, path, stage_shape, stage_flops in stage_programs(args.ska, args.batch, workdir):
            profile = etdump_profile(path, stage_shape, args.iters, args.threads)
            ops = profile["ops"]
            boundary = [ops[0], ops[-1]] if ops and ops[0][0] == ops[-1][0] == "Transpose (ND, X32)" else []
            inner = ops[1:-1] if boundary else ops
            op_ms = sum(ms for _, ms in inner)
            layout_ms = sum(ms for n, ms in inner if n.startswith(LAYOUT_OPS))
            transposes = sum(1 for n, _ in inner if n.startswith("Transpose"))
            whole_ms = max(profile["delegate_ms"], op_ms) - sum(ms for _, ms in boundary)
            rows.append((stage, len(inner), op_ms, whole_ms, layout_ms, transposes, stage_flops / 1e9,
                         stage_flops / 1e6 / op_ms if op_ms else 0.0, sum(ms for _, ms in boundary)))
        print_table(("stage", "ops", "op ms", "call ms", "layout ms", "transposes", "GFLOP", "GFLOP/s (op ms)",
                     "boundary ms"), rows, "lsnet_t per stage (each stage lowered alone)")
        print(f"\n  sum of stage op ms: {sum(r[2] for r in rows):.3f}; "
              f"total FLOPs {sum(r[6] for r in rows):.3f} GFLOP; "
              f"whole program {sum(r[6] for r in rows) * 1e3 / totals['lsnet_t']:.1f} GFLOP/s (delegate call)")
        if "mobilenetv3_large_100" in totals:
            print(f"  delegate call lsnet_t / mobilenetv3_large_100 (profiled, not interleaved): "
                  f"{totals['lsnet_t'] / totals['mobilenetv3_large_100']:.2f}")


if __name__ == "__main__":
    main()
