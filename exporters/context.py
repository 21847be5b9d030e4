"""The data an export passes between its steps: the context each step reads, what a format wrote, what
one attempt measured, and the result.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np
import torch

from ..metadata import BACKBONE_TASK
from ..models.outputs import network_of
from ..verify import ComparisonReport
from .calibration import CalibrationSet, batches
from .options import ExportOptions, Progress

if TYPE_CHECKING:
    from ..accelerators.report import PlacementReport
    from ..accelerators.targets import AcceleratorTarget
    from ..accuracy import EvaluationReport


def backbone_bias_mode(metadata: Mapping[str, str]) -> str | None:
    """A backbone's attention-bias mode (``table`` or ``matrix``) from its encoded metadata; None for other
    tasks and for backbones without attention."""
    if json.loads(metadata.get("task", "null")) != BACKBONE_TASK or "attention_bias" not in metadata:
        return None
    return json.loads(metadata["attention_bias"])["mode"]


@dataclass
class ExportResult:
    """What an export produced, for the summary line and ``--json``."""

    format: str
    path: Path
    size_bytes: int
    seconds: float
    precision: str
    ska_form: str
    fused: bool
    metadata: dict[str, str]
    validation: ComparisonReport | None = None
    validation_skipped: str | None = None
    details: dict = field(default_factory=dict)
    #: what loading the model assumed or changed (an assumed input size, a resampled bias table)
    notes: list[str] = field(default_factory=list)
    #: what the user should know about this artifact (a skipped int8 gate, few calibration images)
    warnings: list[str] = field(default_factory=list)

    @property
    def bias_mode(self) -> str | None:
        """A backbone's attention-bias mode (``backbone_bias_mode``)."""
        return backbone_bias_mode(self.metadata)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"format": self.format, "path": str(self.path), "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 3), "precision": self.precision, "ska_form": self.ska_form,
                "fused": self.fused, "bias_mode": self.bias_mode, "validation": self.validation.to_dict() if self.validation else None,
                "validation_skipped": self.validation_skipped, "details": self.details,
                "notes": self.notes, "warnings": self.warnings, "metadata": self.metadata}


@dataclass(frozen=True)
class ExportContext:
    """What one export step needs to know, passed to it (never written back).

    Attributes:
        target: the final artifact path (``write`` writes a temporary beside it).
        options: the effective options (after the format's own defaults, e.g. Core ML's float16).
        ska_form: the SKA form being exported (``--ska auto`` resolved).
        metadata: the metadata map every artifact carries (JSON values); formats add their own keys
            through ``Written.metadata``.
        reference: the user's model as loaded (unfused, reference SKA), what artifacts are validated against.
        progress: called with a short message as each step starts.
        resources: temporary files and directories that must live until the export ends.
        calibration: ``--calib``'s images, split into calibration and held-out sets (int8 only).
        keep_float: int8 only: names of modules of the model given to ``write`` (and their submodules)
            whose operations must stay in float; the mixed-precision search fills it.
        accelerator: the ``--accelerator`` target, whose choices ``write`` follows (graph, int8 layout).
        validation_runtime: the runtime that validates and ``--data``-gates the artifact (the format's own,
            or its ARM build with ``--validate-on arm``).
        pytorch_accuracy: the user's model's top-1 on ``--data``, measured at the first call and shared by
            every attempt of the export (None without ``--data``).
    """

    target: Path
    options: ExportOptions
    ska_form: str
    metadata: Mapping[str, str]
    reference: torch.nn.Module
    progress: Progress
    resources: contextlib.ExitStack
    calibration: CalibrationSet | None = None
    keep_float: frozenset[str] = frozenset()
    #: the ``--accelerator`` target (None without one)
    accelerator: "AcceleratorTarget | None" = None
    validation_runtime: str | None = None
    pytorch_accuracy: "Callable[[], EvaluationReport] | None" = None

    def validation_inputs(self) -> list[np.ndarray]:
        """The batches this export is validated on (see ``validation_inputs``)."""
        return validation_inputs(self.reference, self.options, self.metadata, self.calibration)

    def int8_record(self, method: str, **details) -> dict:
        """The ``int8_calibration`` metadata entry of this export: the calibration set's counts and hash,
        ``method``, the layers kept in float, and format-specific ``details``."""
        return self.calibration.record(method, float_layers=sorted(self.keep_float), **details)

    def keeps_float(self, module_name: str) -> bool:
        """Whether the module named ``module_name`` lies inside one of ``keep_float``."""
        return any(module_name == name or module_name.startswith(name + ".") for name in self.keep_float)


@dataclass
class Written:
    """What a format's ``write`` produced besides the file.

    Attributes:
        details: facts to report (operator counts, commands to rebuild...).
        metadata: keys this format added to the artifact's metadata (already embedded in it).
        validate_path: a file to validate instead of the artifact (Core ML's tensor-input twin of an
            image-input package), or None.
        placement: the accelerator's placement report, when ``write`` made one.
    """

    details: dict = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    validate_path: Path | None = None
    #: where the artifact's operators run on the targeted accelerator, when ``write`` already asked the
    #: accelerator's tool (else the export pipeline asks it)
    placement: "PlacementReport | None" = None



@dataclass(frozen=True)
class Attempt:
    """One artifact written and checked: what the format wrote, the comparison with PyTorch (None when
    skipped), and the details to report (``Written.details`` plus the measurements)."""

    written: Written
    report: ComparisonReport | None
    details: dict


def validation_inputs(model: torch.nn.Module, options: ExportOptions, metadata: Mapping[str, str],
                      calibration: CalibrationSet | None = None, samples: int = 8) -> list[np.ndarray]:
    """Batches to compare an artifact with PyTorch on.

    Deterministic random batches shaped like the export, plus one batch of another size for dynamic
    exports (3, kept inside ``--batch``..``--max-batch`` when those bound it). int8 exports are compared on
    the images held out of their calibration instead, preprocessed as the metadata prescribes: int8 error
    only means something on real pictures, and top-1 agreement there is what exposes a poor quantization.
    """
    extra = None
    if options.dynamic:
        extra = max(3, options.batch)
        largest = options.own_values().get("max_batch")  # a format's bound on the batch (TensorRT's profile)
        if largest is not None:
            extra = min(extra, largest)
    if calibration is not None:
        images = calibration.held_out_images(dict(metadata))
        out = list(batches(images, options.batch))
        if extra is not None:
            out.append(next(batches(images, extra)))
        return out
    rng = np.random.default_rng(0)
    network = network_of(model)
    shape = (network.in_chans, *network.img_size)
    noise = [rng.standard_normal((options.batch, *shape), dtype=np.float32)
             for _ in range(max(1, samples // options.batch))]
    if extra is not None:
        noise.append(rng.standard_normal((extra, *shape), dtype=np.float32))
    return noise


def output_entries(metadata: Mapping[str, str]) -> list[dict] | None:
    """The decoded ``outputs`` metadata entries, or None for metadata without them."""
    return json.loads(metadata["outputs"]) if "outputs" in metadata else None

