"""Minimal Python app: classify pictures with an exported LSNet through lsnet-deploy's Predictor.

    pip install "lsnet-deploy[onnx]"          # or [executorch] for .pte files
    lsnet-export --weights hf-hub:jameslahm/lsnet_t --labels imagenet_classes.txt -o lsnet_t.onnx
    python classify.py lsnet_t.onnx cat.jpg dog.png

The artifact carries its preprocessing (input size, resize, crop, mean/std) and labels, so the app has
nothing to configure: the same pictures give the same answers from ``lsnet_t.onnx``, ``lsnet_t.pte`` or
the checkpoint itself.
"""

from __future__ import annotations

import sys

from lsnet_deploy import Predictor


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: classify.py ARTIFACT IMAGE...", file=sys.stderr)
        return 2
    artifact, images = argv[0], argv[1:]
    with Predictor(artifact) as predictor:  # loads the model once; reuse it for every request
        for prediction in predictor.predict(images, topk=3):
            best = ", ".join(f"{label or index} {score:.1%}" for index, score, label in
                             zip(prediction.indices, prediction.scores, prediction.labels or [None] * 3))
            print(f"{prediction.source}: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
