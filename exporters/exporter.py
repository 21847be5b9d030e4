"""``Exporter``: the base class of one export format, and the refusals every format shares."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import torch

from ..accelerators.targets import AcceleratorTarget, get_target, targets_of
from ..errors import UsageError
from ..format_spec import FormatSpec
from ..gates import DRIFT_HINTS
from ..models.backbone import GRID_SPECIFIC_SKA
from ..option_fields import changed_fields, flags_of
from .context import ExportContext, Written
from .options import COMMON_OPTIONS, OPTION_FLAGS, ExportOptions


class Exporter:
    """Base class of one export format. Subclasses set ``spec`` (or the class attributes it fills) and the
    export behaviour below, and implement ``write``."""

    #: the format's declaration, shared with its runner: sets ``name``, ``aliases``, ``suffix``, ``suffixes``,
    #: ``runtime``, ``extra``, ``description``, ``supported_options`` and ``own_options`` (``__init_subclass__``)
    spec: ClassVar[FormatSpec | None] = None

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the default file suffix; ``suffixes`` lists every one the format's files may have
    suffix: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: the runtime (``lsnet_deploy.runtimes`` name) that runs and validates this format's artifacts
    runtime: ClassVar[str]
    #: this format is the one ``format_for_runtime`` gives for its runtime (what ``lsnet-bench`` exports a model
    #: to for it); at most one format per runtime declares it
    default_for_runtime: ClassVar[bool] = True
    extra: ClassVar[str]  # the lsnet-deploy extra that installs its dependencies
    #: one line for ``lsnet-export --help``
    description: ClassVar[str] = ""
    #: options beyond COMMON_OPTIONS that this format accepts
    supported_options: ClassVar[frozenset[str]] = frozenset()
    #: the dataclass of the options only this format takes (``ExportOptions.format_options``), or None
    own_options: ClassVar[type | None] = None
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
    #: why ``--dynamic-hw`` is refused, for formats whose ``supported_options`` lack ``dynamic_hw``
    no_dynamic_hw_reason: ClassVar[str] = "its runtime takes one input size"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        declared = {"name": spec.name, "aliases": spec.aliases, "runtime": spec.runtime, "extra": spec.extra,
                    "suffix": spec.suffix, "suffixes": spec.suffixes, "description": spec.description,
                    "supported_options": spec.options, "own_options": spec.own_options}
        for attribute, value in declared.items():
            if attribute not in cls.__dict__:  # what the class body sets itself (a refinement) stays
                setattr(cls, attribute, value)

    @classmethod
    def file_suffixes(cls) -> tuple[str, ...]:
        """Every suffix this format's artifacts may have, the default first."""
        return (cls.suffix, *(s for s in cls.suffixes if s != cls.suffix))

    def check_options(self, options: ExportOptions) -> None:
        """Raise UsageError for options this format does not accept or combinations that make no sense."""
        if options.dynamic and self.no_dynamic_reason:
            raise UsageError(f"--format {self.name} does not accept --dynamic: {self.no_dynamic_reason}")
        if options.dynamic_hw and "dynamic_hw" not in self.supported_options:
            raise UsageError(f"--format {self.name} does not accept --dynamic-hw: {self.no_dynamic_hw_reason}; use "
                             "--format onnx or "
                             "ort, or export a fixed --imgsz")
        if options.dynamic_hw and options.ska in GRID_SPECIFIC_SKA:
            raise UsageError(f"--dynamic-hw cannot take --ska {options.ska} (it gathers a grid-specific index); "
                             "use --ska auto, onehot_conv, shifted_slices or tap_slices")
        target = self.check_accelerator(options)
        unsupported = sorted(options.changed() - COMMON_OPTIONS - self.supported_options)
        if unsupported:
            flags = ", ".join(OPTION_FLAGS.get(o, o) for o in unsupported)
            raise UsageError(f"--format {self.name} does not accept {flags}")
        self.check_format_options(options.format_options, target)
        if options.ska in self.rejected_ska:
            raise UsageError(f"--format {self.name} cannot export the {options.ska!r} SKA form; use --ska auto")

    def check_format_options(self, given: object, target: "AcceleratorTarget | None") -> None:
        """Refuse format options this format (and its accelerator) does not take, naming the flags set.

        Raises:
            UsageError: ``given`` is not an options dataclass, or another format's with options set.
        """
        if given is None:
            return
        kinds = [kind for kind in (self.own_options, target.own_options if target else None) if kind is not None]
        if type(given) in kinds:
            return
        if not dataclasses.is_dataclass(given) or isinstance(given, type):
            takes = " or ".join(kind.__name__ for kind in kinds) or "none"
            raise UsageError(f"format_options must be an options dataclass instance ({self.name} takes {takes}), "
                             f"got {type(given).__name__}")
        changed = changed_fields(given)
        if changed:
            raise UsageError(f"--format {self.name} does not accept {flags_of(given, changed)}")

    def check_accelerator(self, options: ExportOptions) -> "AcceleratorTarget | None":
        """The ``--accelerator`` target (None without one), after checking this format reaches it.

        Raises:
            UsageError: an unknown accelerator, one this format does not reach, dynamic shapes for an
                accelerator that takes static ones, ``--allow-fallback`` without an accelerator.
        """
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

    def precision_note(self, options: ExportOptions) -> str | None:
        """Why this format's precision is not the one the flags say (a float16 default), for the summary;
        None where ``--half`` alone decides."""
        return None

    def drift_hint(self, options: ExportOptions) -> str:
        """What to try when this format's artifact drifts from PyTorch (in the refusal's message)."""
        return DRIFT_HINTS[options.precision]

    def cannot_validate(self, context: ExportContext) -> str | None:
        """Why this machine cannot run the artifact to validate it, or None when it can."""
        return None
