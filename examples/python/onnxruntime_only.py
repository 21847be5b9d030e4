"""Classify with an exported LSNet using only onnxruntime, Pillow and NumPy (no lsnet-deploy, no torch).

Copy this file into a service that should stay small. It reads the recipe from the model's metadata
(``metadata_props``: JSON-encoded strings) and preprocesses exactly as lsnet-deploy does (timm's eval
transform for square inputs: bicubic resize of the short side to floor(size / crop_pct), centre crop,
RGB, / 255, - mean, / std).

    pip install onnxruntime pillow numpy
    python onnxruntime_only.py lsnet_t.onnx cat.jpg
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class Classifier:
    """An ONNX Runtime session plus the preprocessing recipe stored in the model."""

    def __init__(self, path: str):
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        # every value is JSON (metadata schema 2), strings included
        meta = {k: json.loads(v) for k, v in self.session.get_modelmeta().custom_metadata_map.items()
                if k in ("input_size", "mean", "std", "crop_pct", "interpolation", "labels", "input_name")}
        if "input_size" not in meta:
            raise ValueError(f"{path} has no lsnet-export metadata; its preprocessing is unknown")
        self.height, self.width = meta["input_size"]
        if self.height != self.width:
            raise ValueError("this example handles square inputs; use lsnet_deploy.Predictor for others")
        self.mean = np.asarray(meta["mean"], np.float32).reshape(3, 1, 1)
        self.std = np.asarray(meta["std"], np.float32).reshape(3, 1, 1)
        self.crop_pct = meta.get("crop_pct", 0.9)
        self.filter = FILTERS[meta.get("interpolation", "bicubic")]
        self.labels = meta.get("labels")
        self.input_name = meta.get("input_name") or self.session.get_inputs()[0].name

    def preprocess(self, path: str) -> np.ndarray:
        """One picture -> (3, H, W) float32."""
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
        short = math.floor(self.height / self.crop_pct)
        w, h = image.size
        size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        image = image.resize(size, self.filter)
        left, top = int(round((size[0] - self.width) / 2.0)), int(round((size[1] - self.height) / 2.0))
        image = image.crop((left, top, left + self.width, top + self.height))
        x = np.asarray(image, np.float32).transpose(2, 0, 1) / np.float32(255)
        return (x - self.mean) / self.std

    def classify(self, path: str, topk: int = 5) -> list[tuple[int, float, str | None]]:
        """[(class index, probability, label), ...] best first."""
        logits = self.session.run(None, {self.input_name: self.preprocess(path)[None]})[0][0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = np.argsort(-probs, kind="stable")[:topk]
        return [(int(i), float(probs[i]), self.labels[i] if self.labels else None) for i in best]


if __name__ == "__main__":
    classifier = Classifier(sys.argv[1])
    for picture in sys.argv[2:]:
        print(picture, classifier.classify(picture))
