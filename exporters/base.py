"""The names the export package has always offered from ``exporters.base``, now kept in modules by job.

``options`` (what shapes an export), ``context`` (what its steps pass on), ``exporter`` (a format's base class),
``registry`` (formats by name), ``prepare`` (the model an exporter gets), ``validation`` (the checks an
artifact passes), ``pipeline`` (the plan and the one export path); the limits are ``lsnet_deploy.gates``.
Import from those modules in new code.
"""

from __future__ import annotations

from ..gates import ACCELERATOR_DRIFT_HINT, DRIFT_HINTS, FALLBACK_HINT, INT8_MIN_AGREEMENT
from .context import Attempt, ExportContext, ExportResult, Written, output_entries, validation_inputs
from .exporter import Exporter
from .options import COMMON_OPTIONS, OPTION_FLAGS, VALIDATE_ON, ExportOptions, Progress
from .pipeline import (ExportPlan, accelerator_record, arm_formats, check_export, check_output, export_model,
                       validation_runtime)
from .prepare import default_output, describe_model_outputs, prepare_model, reference_model, set_ska_everywhere
from .registry import available_formats, exporter_classes, format_for_runtime, get_exporter, register_exporter
from .validation import (VALIDATION_THREADS, accuracy_gate, check_artifact, check_placement, dynamic_hw_inputs,
                         kernels_of, other_size, validate_file)

__all__ = ["ACCELERATOR_DRIFT_HINT", "COMMON_OPTIONS", "DRIFT_HINTS", "FALLBACK_HINT", "INT8_MIN_AGREEMENT",
           "OPTION_FLAGS", "VALIDATE_ON", "VALIDATION_THREADS", "Attempt", "ExportContext", "ExportOptions",
           "ExportPlan", "ExportResult", "Exporter", "Progress", "Written", "accelerator_record", "accuracy_gate",
           "arm_formats", "available_formats", "check_artifact", "check_export", "check_output", "check_placement",
           "default_output", "describe_model_outputs", "dynamic_hw_inputs", "export_model", "exporter_classes",
           "format_for_runtime", "get_exporter", "kernels_of", "other_size", "output_entries", "prepare_model",
           "reference_model", "register_exporter", "set_ska_everywhere", "validate_file", "validation_inputs",
           "validation_runtime"]
