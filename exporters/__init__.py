"""Exporters: one module per format, registered by name and aliases (DESIGN.md #4).

Installed as ``lsnet_deploy.exporters``. Importing this package imports no converter library; each
format imports its own when it runs.
"""

from .context import ExportResult
from .exporter import Exporter
from .options import ExportOptions
from .pipeline import ExportPlan, check_export, export_model
from .registry import available_formats, format_for_runtime, get_exporter, register_exporter
from . import onnx_format  # noqa: F401  (registers onnx)
from . import ort_format  # noqa: F401  (registers ort)
from . import executorch_format  # noqa: F401  (registers executorch)
from . import coreml_format  # noqa: F401  (registers coreml)
from . import tensorrt_format  # noqa: F401  (registers tensorrt)
from . import litert_format  # noqa: F401  (registers litert)
from . import qnn_format  # noqa: F401  (registers qnn)

__all__ = ["ExportOptions", "ExportPlan", "ExportResult", "Exporter", "available_formats", "check_export", "export_model",
           "format_for_runtime", "get_exporter", "register_exporter"]
