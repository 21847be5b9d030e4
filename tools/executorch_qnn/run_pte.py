"""Run a QNN-delegated LSNet .pte through executorch.runtime (x86: the emulated HTP) on an ImageFolder and
compare it with the PyTorch float32 model it was lowered from.

Pictures are preprocessed with the recipe lower_lsnet.py stored in PTE.json (the checkpoint's mean/std,
resize and crop); the reference is the same fixture, prepared the same way (tap_slices SKA, fused) and run
in float32. Prints seconds per picture, top-1 of both, top-1 agreement and the max abs logit error.

Needs the shim environment (``. /tmp/etqnn_shim/env.sh`` after ``build_shim.sh``).

Example: python tools/executorch_qnn/run_pte.py --pte /tmp/lsnet_fp16.pte --limit 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def die(message: str) -> None:
    """Stop with one clear line on stderr."""
    sys.exit(f"run_pte.py: {message}")


def open_method(pte: Path):
    """The .pte's forward method, loaded by executorch.runtime with QnnBackend registered."""
    try:
        from executorch.runtime import Runtime
    except ImportError as exc:
        die(f"executorch.runtime is not available ({exc}); pip install executorch")
    runtime = Runtime.get()
    if "QnnBackend" not in runtime.backend_registry.registered_backend_names:
        die("QnnBackend is not registered in this executorch runtime (no qualcomm backend in the wheel)")
    if not os.environ.get("QNNHTP_REAL"):
        die("QNNHTP_REAL is unset: source the env.sh that build_shim.sh wrote (the shim is needed here)")
    return runtime.load_program(str(pte)).load_method("forward")


def main() -> None:
    """Parse the arguments, run both models picture by picture, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pte", type=Path, required=True, help=".pte written by lower_lsnet.py")
    parser.add_argument("--data", type=Path, default=ROOT / "tests/data/cifar10/test", help="ImageFolder")
    parser.add_argument("--limit", type=int, default=100, help="pictures, spread evenly over the classes")
    args = parser.parse_args()
    card = Path(f"{args.pte}.json")
    if not args.pte.exists() or not card.exists():
        die(f"{args.pte} or its {card.name} is missing (write both with lower_lsnet.py)")
    info = json.loads(card.read_text())

    import torch
    from lower_lsnet import load_prepared
    from lsnet_deploy.accuracy import list_images
    from lsnet_deploy.preprocess import Preprocessing, preprocess_one

    recipe = Preprocessing.from_metadata(info["preprocessing"])
    reference, _, _ = load_prepared(Path(info["fixture"]))
    method = open_method(args.pte)
    samples = list_images(args.data, limit=args.limit)

    correct_pte = correct_ref = agree = 0
    max_err, ref_max, pte_s = 0.0, 0.0, 0.0
    for i, (path, label) in enumerate(samples):
        x = torch.from_numpy(preprocess_one(path, recipe))[None]
        with torch.no_grad():
            ref = reference(x)
        start = time.time()
        out = method.execute([x])[0].float()
        pte_s += time.time() - start
        max_err = max(max_err, (out - ref).abs().max().item())
        ref_max = max(ref_max, ref.abs().max().item())
        correct_pte += int(out.argmax().item() == label)
        correct_ref += int(ref.argmax().item() == label)
        agree += int(out.argmax().item() == ref.argmax().item())
        if i == 0:
            print(f"first picture: {pte_s:.2f} s on the emulated HTP (includes warm-up)", flush=True)
    n = len(samples)
    print(f"pte: {args.pte.name} ({info['precision']}, {info['soc']}), pictures: {n} from {args.data}")
    print(f"seconds per picture (pte): {pte_s / n:.3f}")
    print(f"top-1 pte: {100 * correct_pte / n:.1f}% ({correct_pte}/{n})   "
          f"top-1 PyTorch float32: {100 * correct_ref / n:.1f}% ({correct_ref}/{n})")
    print(f"top-1 agreement: {100 * agree / n:.1f}% ({agree}/{n})   max abs logit error: {max_err:.4g} "
          f"(largest |float32 logit|: {ref_max:.3g})")


if __name__ == "__main__":
    main()
