"""What every exporter shares: options, results, the registry, and the one export path.

``export_model`` is the only way artifacts get made. It checks options and dependencies before any work,
prepares the model (SKA form, fusion, eval, no grad, one dry run), lets the format's exporter write a
temporary file beside the target, validates it against PyTorch, and only then renames it into place.
Exporters take any ``nn.Module`` with an example input; they never import a specific model.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping

import numpy as np
import torch

from ..atomic import check_writable_dir, staged_output
from ..errors import ExportError, UsageError, ValidationError, did_you_mean, first_line
from ..metadata import build_metadata, describe_outputs
from ..models.backbone import DYNAMIC_HW_SKA, GRID_SPECIFIC_SKA, dynamic_token_grids, freeze_token_grids
from ..models.outputs import network_of, output_list, output_names
from ..reparam import reparameterize
from ..verify import ComparisonReport, compare_runner
from .calibration import CalibrationSet, batches, split_calibration

if TYPE_CHECKING:
    from ..accelerators.report import PlacementReport
    from ..accelerators.targets import AcceleratorTarget

Progress = Callable[[str], None]


@dataclass
class ExportOptions:
    """Everything that shapes an export. Fields left at their defaults are 'not set'."""

    batch: int = 1
    dynamic: bool = False
    #: dynamic height and width (backbones in the ``matrix`` bias mode; ONNX and ORT)
    dynamic_hw: bool = False
    half: bool = False
    int8: bool = False
    calib: Path | None = None
    opset: int | None = None
    simplify: bool = True
    ska: str = "auto"
    fuse: bool = True
    validate: bool = True
    #: where the artifact is validated and ``--data``-gated: ``host`` (this machine's runtime) or ``arm``
    #: (the aarch64 build of the format's runtime, emulated: ``runtimes.arm_runners``)
    validate_on: str = "host"
    labels: list[str] | None = None
    #: an ImageFolder of labelled pictures: the artifact's top-1 there may drop by at most ``max_drop``
    #: points below the PyTorch model's
    data: Path | None = None
    max_drop: float = 1.0
    #: explicit folder -> class entries for ``data`` (``accuracy.parse_class_map``: a file or FOLDER=CLASS,...)
    class_map: str | None = None
    #: int8: report the per-layer sensitivity ranking (``details["int8_ranking"]``), even when all-int8 passes
    int8_ranking: bool = False
    # Core ML
    deployment_target: str | None = None
    image_input: bool = True
    float32: bool = False
    # TensorRT
    workspace: float | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None
    max_batch: int | None = None
    #: the accelerator the artifact targets (``lsnet_deploy.accelerators.targets``), None for none
    accelerator: str | None = None
    #: keep an artifact the accelerator cannot take whole (the operators it leaves run on the CPU)
    allow_fallback: bool = False
    #: Snapdragon SoC (``lsnet_deploy.accelerators.qnn_socs``) of --format qnn and --accelerator htp
    soc: str | None = None

    def changed(self) -> set[str]:
        """Names of the options set to something other than their default."""
        defaults = ExportOptions()
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}

    @property
    def precision(self) -> str:
        """``int8``, ``float16`` or ``float32``."""
        return "int8" if self.int8 else "float16" if self.half else "float32"


# options every format understands
COMMON_OPTIONS = frozenset({"batch", "ska", "fuse", "validate", "validate_on", "labels", "data", "max_drop", "int8_ranking",
                            "accelerator", "allow_fallback", "class_map"})
OPTION_FLAGS = {"data": "--data", "max_drop": "--max-drop", "dynamic": "--dynamic", "dynamic_hw": "--dynamic-hw", "half": "--half", "int8": "--int8", "calib": "--calib",
                "int8_ranking": "--int8-ranking", "class_map": "--class-map",
                "opset": "--opset", "simplify": "--no-simplify", "deployment_target": "--target",
                "image_input": "--tensor-input", "float32": "--float32", "workspace": "--workspace", "dla_core": "--dla-core",
                "timing_cache": "--timing-cache", "max_batch": "--max-batch", "accelerator": "--accelerator",
                "allow_fallback": "--allow-fallback", "soc": "--soc", "validate_on": "--validate-on"}

#: the ``--validate-on`` choices: this machine's runtime, or the ARM build of it (emulated)
VALIDATE_ON = ("host", "arm")


#: why a format refuses --dynamic-hw (formats whose ``supported_options`` lack ``dynamic_hw``)
DYNAMIC_HW_REFUSALS = {
    "executorch": "XNNPACK plans are built for one input size",
    "litert": "LiteRT interpreters are planned for one input size",
    "coreml": "Core ML image inputs have one size",
    "tensorrt": "a TensorRT engine would need an optimization profile over height and width, not offered yet",
}


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

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"format": self.format, "path": str(self.path), "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 3), "precision": self.precision, "ska_form": self.ska_form,
                "fused": self.fused, "validation": self.validation.to_dict() if self.validation else None,
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
    #: measurements shared by every attempt of one export (the PyTorch model's accuracy on --data)
    measurements: dict = field(default_factory=dict)
    #: the ``--accelerator`` target (None without one)
    accelerator: "AcceleratorTarget | None" = None

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


class Exporter:
    """Base class of one export format. Subclasses set the class attributes and implement ``write``."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the default file suffix; ``suffixes`` lists every one the format's files may have
    suffix: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: the runtime (``lsnet_deploy.runtimes`` name) that runs and validates this format's artifacts;
    #: the first registered format of a runtime is the one ``lsnet-bench`` exports models to for it
    runtime: ClassVar[str]
    extra: ClassVar[str]  # the lsnet-deploy extra that installs its dependencies
    #: one line for ``lsnet-export --help``
    description: ClassVar[str] = ""
    #: options beyond COMMON_OPTIONS that this format accepts
    supported_options: ClassVar[frozenset[str]] = frozenset()
    #: the SKA form ``--ska auto`` picks for this format (docs/ska_forms.md says why)
    ska_auto: ClassVar[str] = "onehot_conv"
    #: the form ``--ska auto`` picks under ``--int8``, where it differs (int8 kernels change the ranking)
    ska_auto_int8: ClassVar[str | None] = None
    #: ``write`` honours ``ExportContext.keep_float`` under ``--int8`` (so mixed precision can be searched)
    int8_keep_float: ClassVar[bool] = False
    #: SKA forms this format cannot take (e.g. triton everywhere)
    rejected_ska: ClassVar[frozenset[str]] = frozenset({"triton"})
    #: files written next to the artifact (suffixes appended to its path)
    side_files: ClassVar[tuple[str, ...]] = ()
    #: the artifact is a directory (a package), not a file
    writes_directory: ClassVar[bool] = False
    #: why ``--dynamic`` is refused, for formats that refuse it
    no_dynamic_reason: ClassVar[str | None] = None

    @classmethod
    def file_suffixes(cls) -> tuple[str, ...]:
        """Every suffix this format's artifacts may have, the default first."""
        return (cls.suffix, *(s for s in cls.suffixes if s != cls.suffix))

    def check_options(self, options: ExportOptions) -> None:
        """Raise UsageError for options this format does not accept or combinations that make no sense."""
        if options.dynamic and self.no_dynamic_reason:
            raise UsageError(f"--format {self.name} does not accept --dynamic: {self.no_dynamic_reason}")
        if options.dynamic_hw and "dynamic_hw" not in self.supported_options:
            reason = DYNAMIC_HW_REFUSALS.get(self.name, "its runtime takes one input size")
            raise UsageError(f"--format {self.name} does not accept --dynamic-hw: {reason}; use --format onnx or "
                             "ort, or export a fixed --imgsz")
        if options.dynamic_hw and options.ska in GRID_SPECIFIC_SKA:
            raise UsageError(f"--dynamic-hw cannot take --ska {options.ska} (it gathers a grid-specific index); "
                             "use --ska auto, onehot_conv, shifted_slices or tap_slices")
        target = self.check_accelerator(options)
        accepted = COMMON_OPTIONS | self.supported_options | set(target.probe_options if target else ())
        unsupported = sorted(options.changed() - accepted)
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
        if options.int8:
            split_calibration(options.calib)  # a bad --calib fails before the model is even loaded
        if options.int8_ranking and not options.int8:
            raise UsageError("--int8-ranking ranks layers for an --int8 export; add --int8 --calib DIR")
        if options.max_drop != ExportOptions.max_drop and options.data is None:
            raise UsageError("--max-drop bounds the accuracy drop measured on --data DIR; add --data")
        if not options.max_drop >= 0:
            raise UsageError(f"--max-drop is in top-1 points and must be 0 or more, got {options.max_drop}")
        if options.class_map is not None and options.data is None:
            raise UsageError("--class-map maps the class folders of --data DIR; add --data")
        if options.data is not None:
            from ..accuracy import resolve_class_mapping

            # a bad --data (or folders that match no label) fails before the model is even loaded
            resolve_class_mapping(options.data, labels=options.labels, class_map=options.class_map)

    def check_accelerator(self, options: ExportOptions) -> "AcceleratorTarget | None":
        """The ``--accelerator`` target (None without one), after checking this format reaches it.

        Raises:
            UsageError: an unknown accelerator, one this format does not reach, dynamic shapes for an
                accelerator that takes static ones, ``--allow-fallback`` without an accelerator.
        """
        from ..accelerators.targets import get_target, targets_of

        if options.accelerator is None:
            if options.allow_fallback:
                raise UsageError("--allow-fallback keeps operators an accelerator cannot take; add --accelerator")
            return None
        target = get_target(options.accelerator)
        if self.name not in target.formats:
            reachable = ", ".join(t.name for t in targets_of(self.name)) or "none"
            raise UsageError(f"--format {self.name} does not reach --accelerator {target.name} (it takes --format "
                             f"{' or '.join(target.formats)}); accelerators of {self.name}: {reachable}")
        if target.static_shapes and (options.dynamic or options.dynamic_hw):
            flag = "--dynamic" if options.dynamic else "--dynamic-hw"
            raise UsageError(f"--accelerator {target.name} takes fixed shapes only; drop {flag}")
        return target

    def check_environment(self, options: ExportOptions) -> None:
        """Raise MissingDependencyError / RuntimeUnavailableError before any work is done."""

    def effective_options(self, options: ExportOptions) -> ExportOptions:
        """The options as this format applies them (a format's defaults made explicit); not modified."""
        return options

    def check_outputs(self, options: ExportOptions, outputs: list[dict]) -> None:
        """Raise UsageError for outputs this format cannot carry with these options (``describe_outputs``
        entries, from one run of the model). int8 is gated on class predictions, so it needs logits alone."""
        if options.int8 and [o["kind"] for o in outputs] != ["logits"]:
            raise UsageError(f"--int8 is validated on class predictions and these outputs are "
                             f"{', '.join(o['name'] for o in outputs)}; export them in float32 or --half")

    def resolve_ska(self, requested: str, int8: bool = False) -> str:
        """The SKA form to export: ``auto`` becomes this format's fastest accepted form (for int8, its
        fastest int8 form where that differs)."""
        if requested != "auto":
            return requested
        return (self.ska_auto_int8 or self.ska_auto) if int8 else self.ska_auto

    def write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, context: ExportContext) -> Written:
        """Write the artifact to ``path`` (a temporary name beside ``context.target``)."""
        raise NotImplementedError

    def drift_hint(self, options: ExportOptions) -> str:
        """What to try when this format's artifact drifts from PyTorch (in the refusal's message)."""
        return DRIFT_HINTS[options.precision]

    def cannot_validate(self, context: ExportContext) -> str | None:
        """Why this machine cannot run the artifact to validate it, or None when it can."""
        return None


_REGISTRY: dict[str, type[Exporter]] = {}
_ALIASES: dict[str, str] = {}


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make an exporter available under its name and aliases."""
    _REGISTRY[cls.name] = cls
    for alias in (cls.name, *cls.aliases):
        _ALIASES[alias] = cls.name
    return cls


def exporter_classes() -> dict[str, type[Exporter]]:
    """Every registered format's exporter class by name, in registration order (for help texts)."""
    return dict(_REGISTRY)


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
        raise UsageError(f"unknown format {name!r}{did_you_mean(key, _ALIASES, cutoff=0.5)} (choose from: {', '.join(available_formats())})")
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
    validation_runtime(exporter, options)  # a format with no ARM build fails before its extras are even checked
    exporter.check_environment(options)
    target = exporter.check_accelerator(exporter.effective_options(options))
    if target is not None:
        from ..errors import require

        for module in target.requires:
            require(module, target.extra, f"to ask {target.name} where the model runs")
    if options.soc is not None:
        from ..accelerators.qnn_socs import get_soc

        get_soc(options.soc)  # an unknown SoC fails before any work
    return exporter


def validation_runtime(exporter: Exporter, options: ExportOptions) -> str:
    """The runtime that validates and ``--data``-gates this export: the format's own (``--validate-on host``),
    or the emulated aarch64 build of it (``--validate-on arm``: ``runtimes.arm_runners``).

    Raises:
        UsageError: an unknown ``--validate-on``, ``arm`` with ``--no-validate``, a format whose runtime has no
            ARM build (Core ML, TensorRT, QNN), or no emulated arm64 environment set up here.
    """
    if options.validate_on not in VALIDATE_ON:
        raise UsageError(f"unknown --validate-on {options.validate_on!r}; choose {' or '.join(VALIDATE_ON)}")
    if options.validate_on == "host":
        return exporter.runtime
    if not options.validate:
        raise UsageError("--validate-on arm picks where the artifact is validated; drop --no-validate")
    from ..runtimes.arm_runners import arm_runtime_for, require_arm_runtime

    if arm_runtime_for(exporter.runtime) is None:
        raise UsageError(f"--format {exporter.name} has no ARM build of its runtime ({exporter.runtime}) to validate "
                         f"on; --validate-on arm takes {', '.join(arm_formats())} (use --validate-on host)")
    return require_arm_runtime(exporter.runtime, options.precision)


def arm_formats() -> list[str]:
    """The formats whose runtime has an emulated ARM build (``--validate-on arm``)."""
    from ..runtimes.arm_runners import arm_runtime_for

    return [name for name, cls in _REGISTRY.items() if arm_runtime_for(cls.runtime) is not None]


def kernels_of(runtime: str) -> str:
    """The kernels a validation on ``runtime`` ran on, for the record: ``arm64 cortex-a76 (qemu)`` for an
    emulated ARM runtime, else this machine's architecture (``x86_64 host``)."""
    import platform

    from ..runtimes import get_runtime
    from ..runtimes.arm_runners import ArmEmulatedRunner, arm_kernels_description

    if issubclass(get_runtime(runtime), ArmEmulatedRunner):
        return arm_kernels_description()
    return f"{platform.machine()} host"


def prepare_model(model: torch.nn.Module, ska_form: str, fuse: bool,
                  example: torch.Tensor | None = None, dynamic_hw: bool = False) -> torch.nn.Module:
    """A copy of ``model`` ready to export: SKA form set (in every LSNet it contains), fused (if asked),
    eval, gradients off; with ``example``, grid-dependent modules (a backbone's attention bias, the SKA
    gather indices) fixed to the grids that input produces, so the graph computes none of them. With
    ``dynamic_hw`` they follow each input's grid instead (``dynamic_token_grids``: the ``matrix`` bias
    resized in the graph)."""
    prepared = reparameterize(model) if fuse else copy.deepcopy(model).eval()
    set_ska_everywhere(prepared, ska_form)
    prepared.requires_grad_(False)
    if dynamic_hw:
        dynamic_token_grids(prepared)
    elif example is not None:
        freeze_token_grids(prepared, example)
    return prepared


def set_ska_everywhere(model: torch.nn.Module, form: str) -> None:
    """Select the SKA form of every module that offers ``set_ska`` (each LSNet inside ``model``)."""
    for module in model.modules():
        if callable(getattr(module, "set_ska", None)):
            module.set_ska(form)


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
        if options.max_batch is not None:
            extra = min(extra, options.max_batch)
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


def validate_file(path: Path, runtime: str, context: ExportContext, what: str,
                  precision: str | None = None, hint: str | None = None) -> ComparisonReport:
    """Run the file at ``path`` with ``runtime`` on the export's validation inputs and compare it with the
    user's model (``context.reference``): the one validation every artifact gets.

    Args:
        path: the file to run.
        runtime: the runtime that runs it (``ort``, ``executorch``...).
        context: the export's context (reference model, options, inputs).
        what: the artifact's name in the error message (``onnx artifact``).
        precision: the tolerances to apply (default the export's precision; ``float16`` for a float32
            artifact on an accelerator that computes in half precision).
        hint: what to try, for the error message (default ``DRIFT_HINTS`` of the precision).

    Raises:
        ValidationError: the artifact drifts beyond the tolerance of its precision.
    """
    from ..runtimes import runner_for

    precision = precision or context.options.precision
    hint = hint or DRIFT_HINTS[precision]
    report = compare_runner(runner_for(path, runtime, threads=VALIDATION_THREADS), context.reference,
                            context.validation_inputs(), precision, outputs=output_entries(context.metadata))
    if context.options.dynamic_hw and report.passed:
        # the graph's bicubic resize of the bias only shows at a grid other than the exported one
        other = compare_runner(runner_for(path, runtime, threads=VALIDATION_THREADS), context.reference,
                               dynamic_hw_inputs(context), precision, outputs=output_entries(context.metadata))
        if not other.passed:
            size = "x".join(map(str, other_size(network_of(context.reference).img_size)))
            raise ValidationError(f"{what} drifts from PyTorch at {size} ({other.summary()}); nothing was "
                                  f"written. {other.cause or hint}")
    if precision == "int8":
        # labelled data gates int8 by top-1 (accuracy_gate); agreement is the gate only without labels
        report = dataclasses.replace(report, min_top1=0.0 if context.options.data is not None
                                     else INT8_MIN_AGREEMENT)
    if not report.passed:
        problem = (f"{what} cannot be validated" if report.cause else
                   f"int8 top-1 agreement with the float model is {report.top1_agreement:.1%} on "
                   f"{report.samples} held-out calibration images, below {INT8_MIN_AGREEMENT:.0%}"
                   if precision == "int8" else f"{what} drifts from PyTorch")
        # NaN/inf outputs have their own cause (verify.NONFINITE_CAUSES): another --ska form would not help
        raise ValidationError(f"{problem} ({report.summary()}); nothing was written. {report.cause or hint}")
    return report


def other_size(size) -> tuple[int, int]:
    """The second input size a ``--dynamic-hw`` export is validated at: another last-stage grid."""
    return size[0] + 64, max(64, size[1] - 64)


def dynamic_hw_inputs(context: ExportContext, samples: int = 2) -> list[np.ndarray]:
    """Deterministic random batches at ``other_size`` (``--dynamic-hw`` exports)."""
    network = network_of(context.reference)
    rng = np.random.default_rng(1)
    shape = (context.options.batch, network.in_chans, *other_size(network.img_size))
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(samples)]


#: without labelled data, an int8 artifact must agree with the float model's top-1 this often
INT8_MIN_AGREEMENT = 0.97


DRIFT_HINTS = {
    "float32": "Try another --ska form, or report a bug with the command line",
    "float16": "Export float32 (drop --half), or try another --ska form",
    "int8": "Calibrate on more pictures like the ones the model will see (--calib), or use --half",
}
#: what to try when an artifact drifts on its accelerator (which computes float models in float16)
ACCELERATOR_DRIFT_HINT = ("On {name}, float models compute in float16, where some SKA forms lose their numbers: "
                          "use --ska {ska} (the form measured for it)")
#: runtime threads used to validate artifacts (the numbers do not depend on it)
VALIDATION_THREADS = 2


def _quiet_progress(_: str) -> None:
    pass


def default_output(model: torch.nn.Module, exporter: Exporter) -> Path:
    """``<name><suffix>`` in the working directory: the variant, or the checkpoint's name for a custom one."""
    model = network_of(model)
    name = getattr(model, "variant", None) or "lsnet"
    source = getattr(model, "checkpoint_source", None)
    if name == "lsnet" and source:  # a custom architecture: name it after its checkpoint, not "lsnet"
        name = Path(str(source).split(":")[-1]).name.split(".")[0] or name
    return Path(f"{name}{exporter.suffix}")


def check_output(target: Path, exporter: Exporter) -> None:
    """Refuse an ``--output`` whose suffix belongs to another format (before any work). The suffix is the
    longest one some format writes that the name ends with (``x.qnn.onnx`` is ``.qnn.onnx``, not ``.onnx``).

    Raises:
        UsageError: the suffix is not one of the format's, with the format that does write it.
    """
    name = target.name.lower()
    known = [s for cls in _REGISTRY.values() for s in cls.file_suffixes() if name.endswith(s)]
    suffix = max(known, key=len) if known else "".join(target.suffixes[-1:]).lower()
    accepted = exporter.file_suffixes()
    if suffix in accepted:
        return
    owner = next((name for name, cls in _REGISTRY.items() if suffix in cls.file_suffixes()), None)
    fix = f"use --format {owner} for a {suffix} file, or " if owner else ""
    stem = target.name[:len(target.name) - len(suffix)] if suffix else target.name
    raise UsageError(f"--output {target} does not end in {' or '.join(accepted)}, the suffix of --format "
                     f"{exporter.name} files; {fix}name it {stem}{exporter.suffix}")


def export_model(model: "torch.nn.Module | Callable[[], torch.nn.Module]", fmt: str,
                 output: str | Path | None = None, options: ExportOptions | None = None,
                 progress: Progress | None = None) -> ExportResult:
    """Export ``model`` to ``fmt`` at ``output``, validated, atomically.

    Args:
        model: an LSNet, or a model containing one (fused or not; it is copied, never modified), or a
            function that builds it: every check that needs no model then runs before it is built.
        fmt: format name or alias (``onnx``, ``ort``, ``coreml``, ``executorch``, ``tensorrt``...).
        output: target path; default ``<variant><suffix>`` in the working directory.
        options: export settings.
        progress: called with a short message as each step starts.

    Returns:
        The result, validation report included.

    Raises:
        UsageError: bad options for this format, an output suffix of another format, unwritable output.
        MissingDependencyError / RuntimeUnavailableError: the format cannot be produced here.
        ExportError / ValidationError: the export failed or drifted; nothing is left at ``output``.
    """
    options = options or ExportOptions()
    progress = progress or _quiet_progress
    exporter = check_export(fmt, options)
    if output is not None:
        check_writable_dir(Path(output), exporter.writes_directory)
        check_output(Path(output), exporter)
    if callable(model) and not isinstance(model, torch.nn.Module):
        model = model()
    network = network_of(model)
    target = Path(output) if output is not None else default_output(model, exporter)
    check_writable_dir(target, exporter.writes_directory)
    options = exporter.effective_options(options)
    accelerator = exporter.check_accelerator(options)
    if options.labels is not None and len(options.labels) != network.num_classes:
        raise UsageError(f"{len(options.labels)} labels given but the model has {network.num_classes} classes; "
                         "give one label per class")
    if options.data is not None:
        from ..accuracy import resolve_class_mapping

        # every scorer of --data shares this mapping; a folder set that does not fit fails before any work
        resolve_class_mapping(options.data, labels=options.labels, num_classes=network.num_classes,
                              class_map=options.class_map)

    start = time.perf_counter()
    ska_form = exporter.resolve_ska(options.ska, options.int8)
    if accelerator is not None and accelerator.ska is not None and options.ska == "auto":
        ska_form = accelerator.ska  # the form measured right for the accelerator beats the format's fastest
    if options.dynamic_hw and options.ska == "auto" and ska_form in GRID_SPECIFIC_SKA:
        ska_form = DYNAMIC_HW_SKA  # the format's fastest form gathers grid-specific indices
    progress(f"preparing model (SKA {ska_form}, {'fused' if options.fuse else 'not fused'})")
    example = torch.zeros(options.batch, network.in_chans, *network.img_size)
    prepared = prepare_model(model, ska_form, options.fuse, example, options.dynamic_hw)
    with torch.no_grad():
        outputs = prepared(example)
    described = describe_model_outputs(prepared, outputs, network.img_size, options.dynamic)
    if options.dynamic_hw:  # height and width follow the input: written as -1, like a dynamic batch
        described = [{**o, "shape": [*o["shape"][:2], *[-1] * (len(o["shape"]) - 2)]} for o in described]
    exporter.check_outputs(options, described)
    metadata = build_metadata(network_of(prepared), ska_form=ska_form, fused=options.fuse,
                              precision=options.precision, batch="dynamic" if options.dynamic else options.batch,
                              labels=options.labels, outputs=described)
    if accelerator is not None:
        metadata["accelerator"] = json.dumps(accelerator_record(accelerator, options))

    calibration = split_calibration(options.calib) if options.int8 else None
    warnings = calibration.warnings() if calibration is not None else []
    with contextlib.ExitStack() as resources, staged_output(target, exporter.side_files) as tmp:
        context = ExportContext(target=target, options=options, ska_form=ska_form, metadata=MappingProxyType(metadata),
                                reference=reference_model(model), progress=progress, resources=resources,
                                calibration=calibration, accelerator=accelerator)

        def attempt(ctx: ExportContext):
            written = _write(exporter, prepared, example, tmp, ctx)
            placement = check_placement(written, tmp, ctx)
            report, details = check_artifact(exporter, written, tmp, ctx)
            if placement is not None:
                details["placement"] = placement.to_dict()
            return written, report, details

        if options.int8 and options.validate:
            from .int8_search import search

            (written, report, details), context, ranked = search(prepared, context, attempt,
                                                                  exporter.int8_keep_float)
            if ranked is not None:
                details["int8_ranking"] = [unit.to_dict() for unit in ranked]
            details["int8_float_layers"] = sorted(context.keep_float)
        else:
            written, report, details = attempt(context)
            if options.int8_ranking:
                from .int8_search import ranking

                details["int8_ranking"] = [unit.to_dict() for unit in ranking(prepared, context)]
        if options.int8 and not options.validate:
            warnings.append("--no-validate: the int8 accuracy gate was skipped, so this artifact may have lost "
                            "accuracy; use it for latency work only")
        metadata = {**metadata, **written.metadata}
        skipped = (None if report is not None else "--no-validate" if not options.validate
                   else exporter.cannot_validate(context))
        if options.int8 and skipped is not None and options.validate:
            warnings.append(f"the int8 accuracy gate could not run here ({skipped}); measure this artifact's "
                            "accuracy on the target with lsnet-bench --data before shipping it")
        size = _size(tmp)
    return ExportResult(format=exporter.name, path=target, size_bytes=size, seconds=time.perf_counter() - start,
                        precision=options.precision, ska_form=ska_form, fused=options.fuse, metadata=metadata,
                        validation=report, validation_skipped=skipped, details=details,
                        notes=list(getattr(network, "load_notes", None) or []), warnings=warnings)


def _write(exporter: Exporter, prepared: torch.nn.Module, example: torch.Tensor, tmp: Path,
           context: ExportContext) -> Written:
    """One call of the format's ``write``, its failures turned into one-line ExportErrors."""
    context.progress(f"exporting to {exporter.name}")
    try:
        written = exporter.write(prepared, example, tmp, context) or Written()
    except (UsageError, ExportError):
        raise
    except Exception as exc:
        raise ExportError(f"{exporter.name} export failed: {first_line(exc)}") from exc
    if not tmp.exists() or (tmp.is_file() and tmp.stat().st_size == 0):
        raise ExportError(f"{exporter.name} export produced no file")
    return written


def accelerator_record(target: "AcceleratorTarget", options: ExportOptions) -> dict:
    """The ``accelerator`` metadata entry: the accelerator's name and the options that pick its variant."""
    record = {"name": target.name, **{name: getattr(options, name) for name in target.probe_options
                                      if getattr(options, name) is not None}}
    if options.allow_fallback:
        record["allow_fallback"] = True  # runtimes then let the operators the accelerator leaves run on the CPU
    return record


def check_placement(written: Written, tmp: Path, context: ExportContext) -> "PlacementReport | None":
    """Ask the targeted accelerator's own tool where the written artifact's operators run (None without
    ``--accelerator``); refuse an artifact it cannot take whole unless ``--allow-fallback``.

    Raises:
        ExportError: operators fall back to the CPU and ``--allow-fallback`` is not set; the message lists them.
    """
    target, options = context.accelerator, context.options
    if target is None:
        return None
    placement = written.placement
    if placement is None:
        context.progress(f"asking {target.name} where each operator runs")
        placement = target.run_probe(tmp, **{name: getattr(options, name) for name in target.probe_options})
    if not placement.whole and not options.allow_fallback:
        raise ExportError(f"--accelerator {target.name} cannot take the whole model ({placement.partitions} "
                          f"partition(s)); these operators fall back to the CPU: {placement.fallback_summary()} "
                          f"[{placement.tool} {placement.tool_version}]; nothing was written. "
                          f"{FALLBACK_HINT.format(ska=target.ska or 'auto')}")
    return placement


#: what to try when an accelerator cannot take the whole model
FALLBACK_HINT = "Use --ska {ska} (the form measured for it), or keep the CPU fallback with --allow-fallback"


def check_artifact(exporter: Exporter, written: Written, tmp: Path, context: ExportContext
                   ) -> tuple[ComparisonReport | None, dict]:
    """Validate the written artifact against the user's model and gate its accuracy on ``--data``.

    Returns:
        The comparison report (None when skipped) and the details to report (``written.details`` plus
        the accuracy measurement).

    Raises:
        ValidationError: drift beyond the precision's tolerance, int8 agreement below
            ``INT8_MIN_AGREEMENT`` (without ``--data``), or a top-1 drop beyond ``--max-drop``.
    """
    options = context.options
    report = None
    reason = exporter.cannot_validate(context)
    runtime = validation_runtime(exporter, options)
    details = dict(written.details)
    # the ARM build's name goes into messages, so a refusal says which kernels missed
    name = exporter.name if runtime == exporter.runtime else f"{exporter.name} on {runtime}"
    if reason is None and (options.validate or options.data is not None):
        details["validated_on"] = {"runtime": runtime, "kernels": kernels_of(runtime)}
    if options.validate and reason is None:
        context.progress(f"validating against PyTorch ({runtime})")
        report = validate_file(written.validate_path or tmp, runtime, context,
                               f"{exporter.name} artifact" + ("" if name == exporter.name else f" on {runtime}"),
                               hint=exporter.drift_hint(options))
    target = context.accelerator
    emulator = target.emulator_runtime if target is not None else None
    if emulator == exporter.runtime:
        emulator = None  # the format's own validation already ran there
    if options.validate and reason is None and emulator is not None:
        context.progress(f"validating on {target.name} ({emulator})")
        # accelerators compute float models in half precision
        precision = "float16" if options.precision == "float32" else options.precision
        emulated = validate_file(written.validate_path or tmp, emulator, context,
                                 f"{exporter.name} artifact on {target.name}", precision,
                                 hint=ACCELERATOR_DRIFT_HINT.format(name=target.name, ska=target.ska or "auto")
                                 if precision == "float16" else None)
        details["accelerator_validation"] = emulated.to_dict()
    if options.data is not None:
        details["accuracy"] = ({"skipped": reason} if reason is not None
                               else accuracy_gate(written.validate_path or tmp, emulator or runtime,
                                                  name if emulator is None else f"{exporter.name} on "
                                                  f"{target.name}", context))
    return report, details


def accuracy_gate(path: Path, runtime: str, what: str, context: ExportContext) -> dict:
    """Top-1 of the artifact and of the user's model on ``--data``; refuse a drop beyond ``--max-drop``.

    Both are measured on the same pictures, each with the preprocessing its own recipe prescribes (the
    artifact's metadata, the model's ``pretrained_cfg``: the same recipe, so the same tensors), and scored
    through one class mapping (``accuracy.resolve_class_mapping``: by label name with ``--labels``, else
    sorted folders; ``--class-map`` entries first). The PyTorch measurement is made once per export (the
    int8 search gates several artifacts).

    Args:
        path: the file to run; runtime: the runtime that runs it; what: its name in messages (``onnx``).

    Returns:
        ``{"pytorch": report, "artifact": report, "drop": points, "max_drop": points, "classes": mapping}``
        (reports and the class mapping as dicts).

    Raises:
        ValidationError: the artifact's top-1 is more than ``max_drop`` points below the model's.
    """
    from ..accuracy import evaluate

    options = context.options
    context.progress(f"measuring top-1 on {options.data} (PyTorch and {what})")
    if "pytorch_accuracy" not in context.measurements:
        context.measurements["pytorch_accuracy"] = evaluate(context.reference, options.data, per_class=False,
                                                            labels=options.labels, class_map=options.class_map)
    pytorch = context.measurements["pytorch_accuracy"]
    artifact = evaluate(path, options.data, runtime=runtime, threads=VALIDATION_THREADS, per_class=False,
                        classes=pytorch.classes)
    drop = pytorch.top1 - artifact.top1
    if drop > options.max_drop:
        raise ValidationError(
            f"top-1 on {options.data} drops from {pytorch.top1:.2f}% (PyTorch) to {artifact.top1:.2f}% "
            f"({what}, {options.precision}) on {artifact.count} images: {drop:.2f} points, more than "
            f"--max-drop {options.max_drop:g}; nothing was written. {DRIFT_HINTS[options.precision]}")
    return {"pytorch": _accuracy_fields(pytorch), "artifact": _accuracy_fields(artifact),
            "drop": round(drop, 4), "max_drop": options.max_drop, "classes": pytorch.classes.to_dict()}


def _accuracy_fields(report) -> dict:
    return {"top1": round(report.top1, 4), "top5": round(report.top5, 4), "count": report.count,
            "unreadable": report.unreadable}


def reference_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model artifacts are validated against: the user's model as loaded (unfused, reference SKA), in
    eval mode, so a fusion or SKA-rewrite bug cannot pass by agreeing with itself."""
    reference = copy.deepcopy(model).eval()
    set_ska_everywhere(reference, "reference")
    return reference.requires_grad_(False)


def describe_model_outputs(model: torch.nn.Module, outputs, input_size, dynamic: bool) -> list[dict]:
    """The ``outputs`` metadata entries of a model from the outputs of one run (names, kinds, shapes, strides)."""
    tensors = output_list(outputs)
    info = getattr(model, "feature_info", None)
    reductions = info.reduction() if info is not None and len(info) == len(tensors) else None
    return describe_outputs(output_names(model, outputs), [tuple(t.shape) for t in tensors], input_size,
                            dynamic, reductions)


def output_entries(metadata: Mapping[str, str]) -> list[dict] | None:
    """The decoded ``outputs`` metadata entries, or None for metadata without them."""
    import json

    return json.loads(metadata["outputs"]) if "outputs" in metadata else None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
