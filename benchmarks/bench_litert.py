"""LiteRT (XNNPACK, CPU) latency of lsnet-export's default lsnet_t .tflite against the peers.

Conditions: LiteRT interpreter with XNNPACK, 2 threads, batch 1, 224x224, every model interleaved in one
process (A B C A B C ...), medians. Prints ratios (goals: benchmarks/goals.py, ``litert.*``):

* default export / MobileNetV3-Large (peers), against ``litert.vs_mobilenetv3``
* default export / MobileNetV4-Conv-Small (peers)

``--ska-sweep`` also converts lsnet_t with every exportable SKA form, with and without the XNNPACK rewrites
(``exporters/xnnpack_forms.py``), and times them all together: how ``LiteRTExporter.ska_auto`` was chosen.

``--int8`` adds lsnet-export's ``--int8`` lsnet_t .tflite (PT2E, calibrated on ``--calib DIR``, default
``../shared/data/imagenet-samples``; random weights, so the accuracy gate is skipped), the default float32
export quantized by ai-edge-quantizer's ``static_wi8_ai8`` instead (the alternative the exporter was measured
against), and the peers' ``*.int8.tflite``, and prints the ratios against ``litert.int8_vs_float32`` and
``litert.int8_vs_mobilenetv4_int8``.

Usage: python benchmarks/bench_litert.py [--peers DIR] [--ska-sweep] [--rounds 200] [--workdir DIR] [--results FILE]
       [--int8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cached_export import cached_export, cached_file
from goals import report
from interleave import add_timing_arguments, add_workdir_argument, interleaved_medians, workdir_of
from peers import add_peers_argument, peer_artifacts

from lsnet_deploy.errors import LsnetDeployError
from lsnet_deploy.exporters import ExportOptions
from lsnet_deploy.exporters.prepare import prepare_model
from lsnet_deploy.exporters.litert_format import convert_to_tflite
from lsnet_deploy.exporters.xnnpack_forms import xnnpack_friendly
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model

DEFAULT = "lsnet_t (default export)"
INT8 = "lsnet_t --int8 (PT2E)"
INT8_AEQ = "lsnet_t int8 via ai-edge-quantizer"
DEFAULT_CALIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"


def build(workdir: Path, half: bool = False) -> Path:
    """Export lsnet_t with the defaults (random weights: latency does not depend on them)."""
    return cached_export(workdir, "litert", ExportOptions(validate=False, half=half))


def build_int8(workdir: Path, calib: Path, peers: Path | None) -> dict[str, Path]:
    """The --int8 export (PT2E), the ai-edge-quantizer alternative (same rewrites, SKA form and calibration
    images, on the default float32 export) and the peers' int8 files."""
    from lsnet_deploy.exporters.calibration import split_calibration
    from lsnet_deploy.metadata import build_metadata

    path = cached_export(workdir, "litert", ExportOptions(int8=True, calib=calib, validate=False))
    source = build(workdir)

    def quantize(target: Path) -> None:
        prepared = prepare_model(create_model("lsnet_t").eval(), "onehot_conv", fuse=True)
        metadata = build_metadata(prepared, ska_form="onehot_conv", fused=True, precision="int8", batch=1, labels=None)
        quantize_tflite(source, target, np.asarray(split_calibration(calib).images(metadata)))

    aeq_path = cached_file(workdir, "lsnet_t_int8_aeq", ".tflite",
                           {"program": "ai-edge-quantizer static_wi8_ai8", "source": source, "calib": calib}, quantize)
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
    example = torch.zeros(1, 3, 224, 224)
    artifacts = {}
    for form in EXPORTABLE_SKA_FORMS:
        for rewrites in (False, True):
            def convert(path: Path, form: str = form, rewrites: bool = rewrites) -> None:
                prepared = prepare_model(create_model("lsnet_t").eval(), form, fuse=True)
                convert_to_tflite(xnnpack_friendly(prepared, form) if rewrites else prepared, example, path)

            name = f"{form}{' + xnnpack rewrites' if rewrites else ''}"
            try:
                artifacts[name] = cached_file(workdir, f"sweep_{form}{'_xnn' if rewrites else ''}", ".tflite",
                                              {"program": "lsnet_t sweep", "form": form, "rewrites": rewrites}, convert)
            except LsnetDeployError as exc:
                print(f"  {name}: does not convert ({exc})")
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
        medians = interleaved_medians(artifacts, args)
    base = medians[DEFAULT]
    print(f"LiteRT XNNPACK, {args.threads} threads, batch 1, 224x224, {args.rounds} interleaved rounds, medians")
    for name, ms in medians.items():
        print(f"  {name:40s} {ms:7.2f} ms   this/default = {ms / base:5.2f}")
    if "mobilenetv3_large_100" in medians:
        print(report("litert.vs_mobilenetv3", base / medians["mobilenetv3_large_100"]))
    if "mobilenetv4_conv_small" in medians:
        print(f"{'default export / MobileNetV4-Conv-Small':55s} {base / medians['mobilenetv4_conv_small']:6.2f}")
    if args.int8:
        print(report("litert.int8_vs_float32", medians[INT8] / base))
        print(f"{'ai-edge-quantizer int8 / float32':55s} {medians[INT8_AEQ] / base:6.2f}")
        if "mobilenetv4_conv_small.int8" in medians:
            print(report("litert.int8_vs_mobilenetv4_int8", medians[INT8] / medians["mobilenetv4_conv_small.int8"]))


if __name__ == "__main__":
    main()
