"""Lower an LSNet checkpoint to an ExecuTorch .pte for the Qualcomm HTP (NPU) with ExecuTorch's QNN backend.

The model is prepared as lsnet-deploy's exporters prepare it (``prepare_model``: SKA form ``tap_slices``,
fused, token grids frozen to the input size), then lowered with
``executorch.backends.qualcomm.utils.utils.to_edge_transform_and_lower_to_qnn`` in fp16, or 8a8w after
PT2E calibration with ``QnnQuantizer`` on pictures of ``--calib``. Prints what was delegated to
QnnBackend and what stayed on the CPU, and writes OUT (.pte) plus OUT.json (input size, recipe, counts).

Needs the shim environment (``. /tmp/etqnn_shim/env.sh`` after ``build_shim.sh``): with the wheel's
ExecuTorch 1.5.1 and onnxruntime-qnn's QNN 2.51 libraries, lowering fails without it.

Example: python tools/executorch_qnn/lower_lsnet.py --soc SM8650 --out /tmp/lsnet_fp16.pte
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURE = ROOT / "tests/data/fixtures/cifar_small.pth"
DEFAULT_CALIB = ROOT / "tests/data/cifar10/calib"


def die(message: str) -> None:
    """Stop with one clear line on stderr."""
    sys.exit(f"lower_lsnet.py: {message}")


def check_environment() -> None:
    """Fail early when the qualcomm backend or the shim environment is missing."""
    try:
        import executorch.backends.qualcomm.python  # noqa: F401  (the compiled QNN bindings)
    except ImportError as exc:
        die(f"executorch.backends.qualcomm is not available ({exc}); pip install executorch")
    root = os.environ.get("QNN_SDK_ROOT")
    if not root or not Path(root, "lib/x86_64-linux-clang/libQnnHtp.so").exists():
        die("QNN_SDK_ROOT has no lib/x86_64-linux-clang/libQnnHtp.so; run build_shim.sh and source its env.sh")
    if not os.environ.get("QNNHTP_REAL"):
        print("lower_lsnet.py: note: QNNHTP_REAL unset, so the shim is not in use (expect socModel 0)",
              file=sys.stderr)


def load_prepared(fixture: Path):
    """The fixture as lsnet-deploy exports it, its preprocessing recipe and an example input."""
    import torch
    from lsnet_deploy.exporters.prepare import prepare_model
    from lsnet_deploy.models import load_model
    from lsnet_deploy.preprocess import Preprocessing

    card = fixture.with_suffix(".json")
    size = json.loads(card.read_text())["input_size"] if card.exists() else None
    model = load_model(str(fixture), img_size=size)
    size = size or model.default_cfg["input_size"][-1]
    recipe = Preprocessing.for_model(model.recipe, (size, size))
    example = torch.zeros(1, 3, size, size)
    prepared = prepare_model(model, "tap_slices", fuse=True, example=example)
    return prepared, recipe, example


def calibration_batch(calib: Path, recipe, count: int):
    """``count`` pictures spread over the calibration ImageFolder, preprocessed with the model's recipe."""
    import torch
    from lsnet_deploy.accuracy import list_images
    from lsnet_deploy.preprocess import preprocess

    samples = list_images(calib, limit=count)
    return torch.from_numpy(preprocess([path for path, _ in samples], recipe))


def describe_delegation(program) -> dict:
    """Delegate calls, nodes inside each QnnBackend partition, and the operators left on the CPU."""
    graph = program.exported_program().graph_module
    partitions, cpu_ops = [], collections.Counter()
    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" in name:
            lowered = getattr(graph, node.args[0].target)
            inner = collections.Counter(
                getattr(n.target, "__name__", str(n.target)) for n in lowered.original_module.graph.nodes
                if n.op == "call_function" and n.target.__name__ != "getitem")
            partitions.append({"backend": lowered.backend_id, "nodes": sum(inner.values()), "ops": dict(inner)})
        elif name != "getitem":
            cpu_ops[name] += 1
    return {"partitions": partitions, "cpu_ops": dict(cpu_ops)}


def main() -> None:
    """Parse the arguments, lower, report, write the .pte."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="LSNet checkpoint (.pth)")
    parser.add_argument("--soc", default="SM8650", help="Snapdragon SoC, e.g. SM8650, SM8550, SM8750")
    parser.add_argument("--quant", action="store_true", help="8a8w PT2E quantization instead of fp16")
    parser.add_argument("--calib", type=Path, default=DEFAULT_CALIB, help="calibration ImageFolder")
    parser.add_argument("--calib-count", type=int, default=32, help="calibration pictures (--quant)")
    parser.add_argument("--out", type=Path, required=True, help="output .pte")
    args = parser.parse_args()
    check_environment()

    import torch
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec, generate_qnn_executorch_compiler_spec, get_soc_to_chipset_map,
        to_edge_transform_and_lower_to_qnn)

    chipsets = get_soc_to_chipset_map()
    if args.soc not in chipsets:
        die(f"unknown SoC {args.soc}; known: {', '.join(sorted(chipsets))}")
    model, recipe, example = load_prepared(args.fixture)
    start = time.time()
    if args.quant:
        from executorch.backends.qualcomm.quantizer.quantizer import QnnQuantizer, QuantDtype
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = QnnQuantizer()
        quantizer.set_default_quant_config(QuantDtype.use_8a8w, is_conv_per_channel=True,
                                           is_linear_per_channel=True)
        graph = torch.export.export(model, (example,)).module()
        graph = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for picture in calibration_batch(args.calib, recipe, args.calib_count):
                graph(picture[None])
        model = convert_pt2e(graph)
    backend = generate_htp_compiler_spec(use_fp16=not args.quant)
    specs = generate_qnn_executorch_compiler_spec(soc_model=chipsets[args.soc], backend_options=backend)
    edge = to_edge_transform_and_lower_to_qnn(model, (example,), specs)
    info = describe_delegation(edge)
    program = edge.to_executorch()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(program.buffer)

    for i, part in enumerate(info["partitions"]):
        print(f"partition {i}: {part['backend']}, {part['nodes']} nodes: {part['ops']}")
    print(f"left on CPU: {info['cpu_ops'] or 'nothing'}")
    summary = {"fixture": str(args.fixture), "soc": args.soc, "precision": "8a8w" if args.quant else "fp16",
               "calib_count": args.calib_count if args.quant else 0, "pte_bytes": len(program.buffer),
               "lower_s": round(time.time() - start, 1), "preprocessing": recipe.to_metadata(),
               "delegated_partitions": len(info["partitions"]),
               "delegated_nodes": sum(p["nodes"] for p in info["partitions"]), "cpu_ops": info["cpu_ops"]}
    Path(f"{args.out}.json").write_text(json.dumps(summary, indent=1))
    print(f"WROTE {args.out} ({len(program.buffer)} bytes, {summary['delegated_partitions']} partition(s), "
          f"{summary['delegated_nodes']} delegated nodes, lowered in {summary['lower_s']} s)")


if __name__ == "__main__":
    main()
