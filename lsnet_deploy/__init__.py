"""lsnet-deploy: ship LSNet models to real devices.

``import lsnet_deploy`` stays light: heavy optional libraries (onnx, onnxruntime, coremltools, tensorrt,
executorch) are imported only where they are used.
"""

from __future__ import annotations

from .version import __version__

__all__ = ["Predictor", "evaluate", "reparameterize", "__version__"]


def __getattr__(name: str):  # lazy, so that `import lsnet_deploy` does not even import torch
    if name == "Predictor":
        from .predict import Predictor

        return Predictor
    if name == "evaluate":
        from .accuracy import evaluate

        return evaluate
    if name == "reparameterize":
        from .reparam import reparameterize

        return reparameterize
    raise AttributeError(f"module 'lsnet_deploy' has no attribute {name!r}")
