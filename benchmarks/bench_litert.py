"""LiteRT (XNNPACK, CPU) latency of lsnet-export's default lsnet_t .tflite against the peers.

Conditions: LiteRT interpreter with XNNPACK, 2 threads, batch 1, 224x224, every model interleaved in one
process (A B C A B C ...), medians. Prints ratios:

* default export / MobileNetV3-Large (peers)   goal float32 <= 1.45
* default export / MobileNetV4-Conv-Small (peers)

``--ska-sweep`` also converts lsnet_t with every exportable SKA form, with and without the XNNPACK rewrites
(``exporters/xnnpack_forms.py``), and times them all together: how ``LiteRTExporter.ska_auto`` was chosen.

``--int8`` adds lsnet-export's ``--int8`` lsnet_t .tflite (PT2E, calibrated on ``--calib DIR``, default
``../shared/data/imagenet-samples``; random weights, so the accuracy gate is skipped), the default float32
export quantized by ai-edge-quantizer's ``static_wi8_ai8`` instead (the alternative the exporter was measured
against), and the peers' ``*.int8.tflite``. Ratios printed:

* int8 / default (float32)                        goal <= 0.5
* int8 / MobileNetV4-Conv-Small int8 (peers)      goal <= 2.5

Usage: python benchmarks/bench_litert.py [--peers DIR] [--ska-sweep] [--rounds 200] [--workdir DIR] [--int8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.errors import LsnetDeployError
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.exporters.base import prepare_model
from lsnet_deploy.exporters.litert_format import convert_to_tflite
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model

DEFAULT = "lsnet_t (default export)"
INT8 = "lsnet_t --int8 (PT2E)"
INT8_AEQ = "lsnet_t int8 via ai-edge-quantizer"
DEFAULT_CALIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"


def build(workdir: Path, half: bool = False) -> Path:
    """Export lsnet_t with the defaults (random weights: latency does not depend on them)."""
    path = workdir / ("lsnet_t_default" + ("_fp16" if half else "") + ".tflite")
    if not path.exists():
        start = time.perf_counter()
        export_model(create_model("lsnet_t").eval(), "litert", path, ExportOptions(validate=False, half=half))
        print(f"exported {path.name} in {time.perf_counter() - start:.1f} s")
    return path


def build_int8(workdir: Path, calib: Path, peers: Path | None) -> dict[str, Path]:
    """The --int8 export (PT2E), the ai-edge-quantizer alternative (same rewrites, SKA form and calibration
    images, on the default float32 export) and the peers' int8 files."""
    from lsnet_deploy.exporters.calibration import split_calibration
    from lsnet_deploy.metadata import build_metadata

    path, aeq_path = workdir / "lsnet_t_int8.tflite", workdir / "lsnet_t_int8_aeq.tflite"
    model = create_model("lsnet_t").eval()
    if not path.exists():
        start = time.perf_counter()
        export_model(model, "litert", path, ExportOptions(int8=True, calib=calib, validate=False))
        print(f"exported {path.name} in {time.perf_counter() - start:.1f} s")
    if not aeq_path.exists():
        start = time.perf_counter()
        prepared = prepare_model(model, "onehot_conv", fuse=True)
        metadata = build_metadata(prepared, ska_form="onehot_conv", fused=True, precision="int8", batch=1, labels=None)
        images = np.asarray(split_calibration(calib).images(metadata))
        quantize_tflite(build(workdir), aeq_path, images)
        print(f"quantized {aeq_path.name} in {time.perf_counter() - start:.1f} s")
    return {INT8: path, INT8_AEQ: aeq_path,
            **{f"{name}.int8": p for name, p in peer_artifacts(peers, ".int8.tflite").items()}}


def quantize_tflite(source: Path, path: Path, images: np.ndarray) -> None:
    """The ai-edge-quantizer route the exporter was measured against: recipe ``static_wi8_ai8`` on the
    float32 flatbuffer ``source`` (float32 input and output kept), calibrated on ``images``, to ``path``."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName

    from lsnet_deploy.exporters.calibration import batches

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                              activation_num_bits=8, weight_num_bits=8)
    for boundary in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):  # float32 in and out
        manager.add_quantization_config(regex=".*", operation_name=boundary,
                                        algorithm_key=recipe_manager.AlgorithmName.NO_QUANTIZE)
    interpreter = Interpreter(model_path=str(source))
    signature, spec = next(iter(interpreter.get_signature_list().items()))
    batch = int(interpreter.get_input_details()[0]["shape"][0])
    feeds = [{spec["inputs"][0]: np.ascontiguousarray(chunk)} for chunk in batches(images, batch)]
    engine = quantizer.Quantizer(str(source), manager.get_quantization_recipe())
    engine.quantize(engine.calibrate({signature: feeds}, num_threads=2),
                    enable_progress_report=False).export_model(str(path), overwrite=True)


def sweep(workdir: Path) -> dict[str, Path]:
    """lsnet_t converted with each exportable SKA form, with and without the XNNPACK rewrites."""
    model = create_model("lsnet_t").eval()
    example = torch.zeros(1, 3, 224, 224)
    artifacts = {}
    for form in EXPORTABLE_SKA_FORMS:
        for rewrites in (False, True):
            name = f"{form}{' + xnnpack rewrites' if rewrites else ''}"
            path = workdir / f"sweep_{form}{'_xnn' if rewrites else ''}.tflite"
            if not path.exists():
                prepared = prepare_model(model, form, fuse=True)
                if rewrites:
                    prepared = xnnpack_friendly(prepared, form)
                start = time.perf_counter()
                try:
                    convert_to_tflite(prepared, example, path)
                except LsnetDeployError as exc:
                    print(f"  {name}: does not convert ({exc})")
                    continue
                print(f"  {name}: converted in {time.perf_counter() - start:.1f} s")
            artifacts[name] = path
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser)
    parser.add_argument("--half", action="store_true", help="also time the --half export")
    parser.add_argument("--ska-sweep", action="store_true", help="time every SKA form, with and without rewrites")
    add_workdir_argument(parser)
    parser.add_argument("--int8", action="store_true", help="add the --int8 export, its ai-edge-quantizer alternative and "
                        "the peers' int8 files")
    parser.add_argument("--calib", type=Path, default=DEFAULT_CALIB, help="calibration images for --int8")
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        artifacts = {DEFAULT: build(workdir), **peer_artifacts(args.peers, ".tflite")}
        if args.half:
            artifacts["lsnet_t --half"] = build(workdir, half=True)
        if args.ska_sweep:
            artifacts.update(sweep(workdir))
        if args.int8:
            artifacts.update(build_int8(workdir, args.calib, args.peers))
        medians = interleaved_medians(artifacts, (1, 3, 224, 224), args.rounds, args.warmup, args.threads)
    base = medians[DEFAULT]
    print(f"LiteRT XNNPACK, {args.threads} threads, batch 1, 224x224, {args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:40s} {ms:7.2f} ms   this/default = {ms / base:5.2f}")
    if "mobilenetv3_large_100" in medians:
        print(f"default / MobileNetV3-Large = {base / medians['mobilenetv3_large_100']:.2f}   (goal <= 1.45)")
    if "mobilenetv4_conv_small" in medians:
        print(f"default / MobileNetV4-Small = {base / medians['mobilenetv4_conv_small']:.2f}")
    if args.int8:
        print(f"int8 / default (float32) = {medians[INT8] / base:.2f}   (goal <= 0.5); "
              f"ai-edge-quantizer route: {medians[INT8_AEQ] / base:.2f}")
        if "mobilenetv4_conv_small.int8" in medians:
            print(f"int8 / MobileNetV4-Small int8 = {medians[INT8] / medians['mobilenetv4_conv_small.int8']:.2f}"
                  "   (goal <= 2.5)")


if __name__ == "__main__":
    main()
