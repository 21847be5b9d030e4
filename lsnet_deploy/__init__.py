"""lsnet-deploy: ship LSNet models to real devices.

``import lsnet_deploy`` stays light: heavy optional libraries (onnx, onnxruntime, coremltools, tensorrt,
executorch) are imported only where they are used.
"""

from __future__ import annotations

from .reparam import reparameterize

__version__ = "0.1.0"

__all__ = ["reparameterize", "__version__"]
