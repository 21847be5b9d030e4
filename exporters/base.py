"""What every exporter shares: options, results, the registry, and the one export path.

``export_model`` is the only way artifacts get made. It checks options and dependencies before any work,
prepares the model (SKA form, fusion, eval, no grad, one dry run), lets the format's exporter write a
temporary file beside the target, validates it against PyTorch, and only then renames it into place.
Exporters take any ``nn.Module`` with an example input; they never import a specific model.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from ..atomic import check_writable_dir, staged_output
from ..errors import ExportError, UsageError, ValidationError
from ..metadata import build_metadata
from ..reparam import reparameterize
from ..verify import ComparisonReport, compare_outputs

Progress = Callable[[str], None]


@dataclass
class ExportOptions:
    """Everything that shapes an export. Fields left at their defaults are 'not set'."""

    batch: int = 1
    dynamic: bool = False
    half: bool = False
    int8: bool = False
    calib: Path | None = None
    opset: int | None = None
    simplify: bool = True
    ska: str = "auto"
    fuse: bool = True
    validate: bool = True
    labels: list[str] | None = None
    # Core ML
    deployment_target: str | None = None
    image_input: bool = True
    float32: bool = False
    # TensorRT
    workspace: float | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None
    max_batch: int | None = None

    def changed(self) -> set[str]:
        """Names of the options set to something other than their default."""
        defaults = ExportOptions()
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}

    @property
    def precision(self) -> str:
        """``int8``, ``float16`` or ``float32``."""
        return "int8" if self.int8 else "float16" if self.half else "float32"


# options every format understands
COMMON_OPTIONS = frozenset({"batch", "ska", "fuse", "validate", "labels"})
OPTION_FLAGS = {"dynamic": "--dynamic", "half": "--half", "int8": "--int8", "calib": "--calib",
                "opset": "--opset", "simplify": "--no-simplify", "deployment_target": "--target",
                "image_input": "--tensor-input", "float32": "--float32", "workspace": "--workspace", "dla_core": "--dla-core",
                "timing_cache": "--timing-cache", "max_batch": "--max-batch"}


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

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"format": self.format, "path": str(self.path), "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 3), "precision": self.precision, "ska_form": self.ska_form,
                "fused": self.fused, "validation": self.validation.to_dict() if self.validation else None,
                "validation_skipped": self.validation_skipped, "details": self.details,
                "metadata": self.metadata}


class Exporter:
    """Base class of one export format. Subclasses set the class attributes and implement ``write``."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    suffix: ClassVar[str]
    #: the runtime (``lsnet_deploy.runtimes`` name) that runs and validates this format's artifacts;
    #: the first registered format of a runtime is the one ``lsnet-bench`` exports models to for it
    runtime: ClassVar[str]
    extra: ClassVar[str]  # the lsnet-deploy extra that installs its dependencies
    description: ClassVar[str] = ""
    #: options beyond COMMON_OPTIONS that this format accepts
    supported_options: ClassVar[frozenset[str]] = frozenset()
    #: the SKA form ``--ska auto`` picks for this format, and why
    ska_auto: ClassVar[str] = "onehot_conv"
    #: SKA forms this format cannot take (e.g. triton everywhere)
    rejected_ska: ClassVar[frozenset[str]] = frozenset({"triton"})
    #: files written next to the artifact (suffixes appended to its path)
    side_files: ClassVar[tuple[str, ...]] = ()
    #: the final artifact path; ``export_model`` sets it before ``write`` (which writes to a temporary)
    target: Path | None = None

    def check_options(self, options: ExportOptions) -> None:
        """Raise UsageError for options this format does not accept or combinations that make no sense."""
        unsupported = sorted(options.changed() - COMMON_OPTIONS - self.supported_options)
        if unsupported:
            flags = ", ".join(OPTION_FLAGS.get(o, o) for o in unsupported)
            raise UsageError(f"--format {self.name} does not accept {flags}")
        if options.ska in self.rejected_ska:
            raise UsageError(f"--format {self.name} cannot export the {options.ska!r} SKA form; use --ska auto")
        if options.half and options.int8:
            raise UsageError("--half and --int8 are exclusive; pick one precision")
        if options.int8 and options.calib is None:
            raise UsageError("--int8 needs calibration images: --calib DIR")
        if options.calib is not None and not options.int8:
            raise UsageError("--calib is only used with --int8")

    def check_environment(self, options: ExportOptions) -> None:
        """Raise MissingDependencyError / RuntimeUnavailableError before any work is done."""

    def resolve_ska(self, requested: str) -> str:
        """The SKA form to export: ``auto`` becomes this format's fastest accepted form."""
        return self.ska_auto if requested == "auto" else requested

    def write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, options: ExportOptions,
              metadata: dict[str, str], progress: Progress) -> dict:
        """Write the artifact to ``path`` (a temporary name beside the target); return details to report."""
        raise NotImplementedError

    def runner(self, path: Path, options: ExportOptions):
        """A Runner for validating the artifact here, or a string saying why it cannot run here."""
        return f"{self.name} artifacts cannot run on this machine"


_REGISTRY: dict[str, type[Exporter]] = {}
_ALIASES: dict[str, str] = {}


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make an exporter available under its name and aliases."""
    _REGISTRY[cls.name] = cls
    for alias in (cls.name, *cls.aliases):
        _ALIASES[alias] = cls.name
    return cls


def available_formats() -> list[str]:
    """Registered format names (aliases excluded)."""
    return list(_REGISTRY)


def get_exporter(name: str) -> Exporter:
    """The exporter for a format name or alias.

    Raises:
        UsageError: unknown name, with the closest valid one suggested.
    """
    key = name.lower().lstrip(".")
    if key not in _ALIASES:
        close = difflib.get_close_matches(key, list(_ALIASES), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown format {name!r}{hint} (choose from: {', '.join(available_formats())})")
    return _REGISTRY[_ALIASES[key]]()


def format_for_runtime(runtime: str) -> str:
    """The export format whose artifacts ``runtime`` runs (``ort`` -> ``onnx``).

    Raises:
        UsageError: no registered format produces artifacts for that runtime.
    """
    for name, cls in _REGISTRY.items():
        if getattr(cls, "runtime", None) == runtime:
            return name
    raise UsageError(f"no export format produces artifacts for runtime {runtime!r}")


def check_export(fmt: str, options: ExportOptions) -> Exporter:
    """The exporter for ``fmt``, after checking ``options`` and this machine can produce it.

    Every check that needs no model runs here, once, before any work (``export_model`` calls it; so
    may a caller that wants to fail before building a model, like the benchmark).

    Raises:
        UsageError: unknown format, options the format does not take, bad values.
        MissingDependencyError / RuntimeUnavailableError: the format cannot be produced here.
    """
    exporter = get_exporter(fmt)
    exporter.check_options(options)
    if options.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {options.batch}")
    exporter.check_environment(options)
    return exporter


def prepare_model(model: torch.nn.Module, ska_form: str, fuse: bool) -> torch.nn.Module:
    """A copy of ``model`` ready to export: SKA form set, fused (if asked), eval, gradients off."""
    prepared = reparameterize(model) if fuse else copy.deepcopy(model).eval()
    if hasattr(prepared, "set_ska"):
        prepared.set_ska(ska_form)
    prepared.requires_grad_(False)
    return prepared


def validation_inputs(model: torch.nn.Module, options: ExportOptions, samples: int = 8) -> list[np.ndarray]:
    """Batches to compare an artifact with PyTorch on.

    Deterministic random batches shaped like the export, plus one batch of another size for dynamic
    exports (3, kept inside ``--batch``..``--max-batch`` when those bound it). int8 exports are compared on
    their calibration images instead, preprocessed as the metadata prescribes: int8 error only means
    something on real pictures, and top-1 agreement there is what exposes a collapsed calibration.
    """
    extra = None
    if options.dynamic:
        extra = max(3, options.batch)
        if options.max_batch is not None:
            extra = min(extra, options.max_batch)
    if options.int8 and options.calib is not None:
        from ..metadata import build_metadata
        from .onnx_quantize import validation_images

        metadata = build_metadata(model, ska_form="n/a", fused=options.fuse, precision=options.precision,
                                  batch=options.batch)
        return validation_images(options.calib, metadata, options.batch, extra)
    rng = np.random.default_rng(0)
    shape = (model.in_chans, *model.img_size)
    batches = [rng.standard_normal((options.batch, *shape), dtype=np.float32)
               for _ in range(max(1, samples // options.batch))]
    if extra is not None:
        batches.append(rng.standard_normal((extra, *shape), dtype=np.float32))
    return batches


def _validate(exporter: Exporter, reference_model: torch.nn.Module, path: Path, options: ExportOptions,
              inputs: list[np.ndarray]) -> tuple[ComparisonReport | None, str | None]:
    runner = exporter.runner(path, options)
    if isinstance(runner, str):
        return None, runner
    expected, actual = [], []
    with torch.no_grad():
        for x in inputs:
            expected.append(reference_model(torch.from_numpy(x)).numpy())
    with runner:
        for x in inputs:
            actual.append(runner.infer(x))
    return compare_outputs(np.concatenate(expected), np.concatenate(actual), options.precision), None


_DRIFT_HINTS = {
    "float32": "Try another --ska form, or report a bug with the command line",
    "float16": "Export float32 (drop --half), or try another --ska form",
    "int8": "Calibrate on more representative images (--calib), or use --half",
}


def _quiet_progress(_: str) -> None:
    pass


def export_model(model: torch.nn.Module, fmt: str, output: str | Path | None = None,
                 options: ExportOptions | None = None, progress: Progress | None = None) -> ExportResult:
    """Export ``model`` to ``fmt`` at ``output``, validated, atomically.

    Args:
        model: an LSNet (fused or not; it is copied, never modified).
        fmt: format name or alias (``onnx``, ``ort``, ``coreml``, ``executorch``, ``tensorrt``...).
        output: target path; default ``<variant><suffix>`` in the working directory.
        options: export settings.
        progress: called with a short message as each step starts.

    Returns:
        The result, validation report included.

    Raises:
        UsageError: bad options for this format, unwritable output.
        MissingDependencyError / RuntimeUnavailableError: the format cannot be produced here.
        ExportError / ValidationError: the export failed or drifted; nothing is left at ``output``.
    """
    options = options or ExportOptions()
    progress = progress or _quiet_progress
    exporter = check_export(fmt, options)
    target = Path(output) if output else Path(f"{getattr(model, 'variant', 'lsnet')}{exporter.suffix}")
    check_writable_dir(target)

    start = time.perf_counter()
    ska_form = exporter.resolve_ska(options.ska)
    progress(f"preparing model (SKA {ska_form}, {'fused' if options.fuse else 'not fused'})")
    prepared = prepare_model(model, ska_form, options.fuse)
    example = torch.zeros(options.batch, model.in_chans, *model.img_size)
    with torch.no_grad():
        prepared(example)
    metadata = build_metadata(prepared, ska_form=ska_form, fused=options.fuse, precision=options.precision,
                              batch="dynamic" if options.dynamic else options.batch, labels=options.labels)

    exporter.target = target
    with staged_output(target, exporter.side_files) as tmp:
        progress(f"exporting to {exporter.name}")
        try:
            details = exporter.write(prepared, example, tmp, options, metadata, progress) or {}
        except (UsageError, ExportError):
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{exporter.name} export failed: {first}") from exc
        if not tmp.exists() or (tmp.is_file() and tmp.stat().st_size == 0):
            raise ExportError(f"{exporter.name} export produced no file")
        report, skipped = None, "--no-validate"
        if options.validate:
            progress("validating against PyTorch")
            report, skipped = _validate(exporter, prepared, tmp, options, validation_inputs(prepared, options))
            if report is not None and not report.passed:
                raise ValidationError(f"{exporter.name} artifact drifts from PyTorch ({report.summary()}); "
                                      f"nothing was written. {_DRIFT_HINTS[options.precision]}")
        size = _size(tmp)
    return ExportResult(format=exporter.name, path=target, size_bytes=size, seconds=time.perf_counter() - start,
                        precision=options.precision, ska_form=ska_form, fused=options.fuse, metadata=metadata,
                        validation=report, validation_skipped=skipped, details=details)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
