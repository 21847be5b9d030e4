"""Regenerate the committed seed corpus in tests/data/fuzz_corpus (small, real files of each kind).

Run: ``python tests/test_fuzz/make_corpus.py``. The files are committed; this script documents them.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fuzz_corpus"


def checkpoints(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {"patch_embed.0.c.weight": torch.randn(2, 3, 3, 3), "head.l.bias": torch.randn(4),
             "blocks4.3.mixer.m.attention_bias_idxs": torch.tensor([[0, 1], [1, 0]])}
    torch.save(state, folder / "state.pth")
    torch.save({"model": state, "epoch": 3, "args": argparse.Namespace(input_size=160, lr=1e-3)},
               folder / "training.pth")
    torch.save(state, folder / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "state.safetensors",
              metadata={"input_size": "[160, 160]"})


def onnx_files(folder: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "lsnet",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fields = {"producer": "lsnet-deploy", "metadata_version": "1", "input_size": "[8, 8]",
              "mean": "[0.485, 0.456, 0.406]", "std": "[0.229, 0.224, 0.225]", "interpolation": "bicubic",
              "crop_pct": "0.9", "labels": json.dumps(["a", "b", "c"]), "num_classes": "3"}
    helper.set_model_props(model, fields)
    onnx.save(model, folder / "identity.onnx")
    (folder / "sidecar.json").write_text(json.dumps({"metadata": fields}))


def labels(folder: Path) -> None:
    (folder / "lines.txt").write_text("cat\ndog\n\nbird\n")
    (folder / "list.json").write_text(json.dumps(["cat", "dog", "bird"]))
    (folder / "map.json").write_text(json.dumps({"0": "cat", "2": "bird", "1": "dog"}))


def images(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    pixels = (np.arange(16 * 12 * 3) % 251).astype(np.uint8).reshape(12, 16, 3)
    Image.fromarray(pixels).save(folder / "rgb.png")
    Image.fromarray(pixels[:, :, 0]).save(folder / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises the EXIF path
    Image.fromarray(pixels).save(folder / "rotated.jpg", quality=80, exif=exif.tobytes())
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("P").save(buffer, format="GIF")
    (folder / "palette.gif").write_bytes(buffer.getvalue())


def main() -> None:
    for name, make in (("checkpoint", checkpoints), ("metadata", onnx_files), ("labels", labels),
                       ("image", images)):
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        make(folder)
    print(f"seed corpus written to {CORPUS}")


if __name__ == "__main__":
    main()
