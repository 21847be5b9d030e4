"""The one export path: ``check_export`` makes a validated plan, ``export_model`` carries it out.

``check_export`` runs every check that needs no model, once, before any work: the option values, the
format's refusals, where the artifact will be validated, this machine's dependencies, the accelerator,
the calibration and ``--data`` folders, and the output path. ``export_model`` then builds the model, prepares
it (``prepare``), lets the format's exporter write a temporary file beside the target, checks it
(``validation``; for ``--int8`` through the mixed-precision search, ``int8_search``), and only then renames it
into place. Exporters take any ``nn.Module`` with an example input; they never import a specific model.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable

import torch

from ..accelerators.targets import AcceleratorTarget, get_target
from ..accuracy import evaluate, resolve_class_mapping
from ..atomic import check_writable_dir, staged_output
from ..errors import ExportError, OutputWriteError, UsageError, first_line, require
from ..metadata import build_metadata
from ..models.backbone import DYNAMIC_HW_SKA, GRID_SPECIFIC_SKA
from ..models.outputs import network_of
from ..runtimes.arm_runners import arm_runtime_for, require_arm_runtime
from . import int8_search
from .calibration import CalibrationSet, split_calibration
from .context import Attempt, ExportContext, ExportResult, Written, backbone_bias_mode
from .exporter import Exporter
from .options import ExportOptions, Progress, check_values
from .prepare import default_output, describe_model_outputs, prepare_model, reference_model
from .registry import exporter_classes, get_exporter
from .validation import check_artifact, check_placement


@dataclass(frozen=True)
class ExportPlan:
    """An export every model-free check has passed (``check_export``), ready for ``export_model``.

    Attributes:
        exporter: the format's exporter.
        options: the effective options (the format's own defaults made explicit, e.g. Core ML's float16).
        accelerator: the ``--accelerator`` target, or None.
        validation_runtime: the runtime that validates and ``--data``-gates the artifact (the format's own,
            or its emulated ARM build with ``--validate-on arm``).
        calibration: ``--calib``'s images split into calibration and held-out sets (``--int8`` only).
        output: the ``--output`` path (checked: the format's suffix, a folder that can take it), or None
            for ``<model><suffix>`` in the working directory.
    """

    exporter: Exporter
    options: ExportOptions
    accelerator: AcceleratorTarget | None
    validation_runtime: str
    calibration: CalibrationSet | None
    output: Path | None


def check_export(fmt: str, options: ExportOptions, output: str | Path | None = None) -> ExportPlan:
    """The plan of exporting to ``fmt`` with ``options``, after every check that needs no model.

    Each check runs here once, with one message, before any work (``export_model`` calls it; so may a
    caller that wants to fail before building a model, like the benchmark).

    Args:
        fmt: format name or alias.
        options: export settings as the user gave them.
        output: the target path, or None for the default (the working directory is checked then).

    Raises:
        UsageError: unknown format, options the format does not take, bad values, an ``--output`` of
            another format's suffix or in a folder that cannot take it.
        MissingDependencyError / RuntimeUnavailableError: the format cannot be produced here.
    """
    exporter = get_exporter(fmt)
    check_values(options)
    exporter.check_options(options)
    # a bad --calib or --data (folders that match no label) fails before the model is even loaded
    calibration = split_calibration(options.calib) if options.int8 else None
    if options.data is not None:
        resolve_class_mapping(options.data, labels=options.labels, class_map=options.class_map)
    runtime = validation_runtime(exporter, options)  # a format with no ARM build fails before its extras are checked
    exporter.check_environment(options)
    effective = exporter.effective_options(options)
    accelerator = get_target(effective.accelerator) if effective.accelerator is not None else None
    if accelerator is not None:
        for module in accelerator.requires:
            require(module, accelerator.extra, f"to ask {accelerator.name} where the model runs")
    if output is not None:
        output = Path(output)
        check_writable_dir(output, exporter.writes_directory)
        check_output(output, exporter)
    else:  # the default name is known once the model is; its folder is the working directory
        check_writable_dir(Path(f"lsnet{exporter.suffix}"), exporter.writes_directory)
    return ExportPlan(exporter=exporter, options=effective, accelerator=accelerator, validation_runtime=runtime,
                      calibration=calibration, output=output)


def validation_runtime(exporter: Exporter, options: ExportOptions) -> str:
    """The runtime that validates and ``--data``-gates this export: the format's own (``--validate-on host``),
    or the emulated aarch64 build of it (``--validate-on arm``: ``runtimes.arm_runners``).

    Raises:
        UsageError: ``arm`` with ``--no-validate``, a format whose runtime has no ARM build (Core ML, TensorRT,
            QNN), or no emulated arm64 environment set up here.
    """
    if options.validate_on == "host":
        return exporter.runtime
    if not options.validate:
        raise UsageError("--validate-on arm picks where the artifact is validated; drop --no-validate")
    if arm_runtime_for(exporter.runtime) is None:
        raise UsageError(f"--format {exporter.name} has no ARM build of its runtime ({exporter.runtime}) to validate "
                         f"on; --validate-on arm takes {', '.join(arm_formats())} (use --validate-on host)")
    return require_arm_runtime(exporter.runtime, options.precision)


def arm_formats() -> list[str]:
    """The formats whose runtime has an emulated ARM build (``--validate-on arm``)."""
    return [name for name, cls in exporter_classes().items() if arm_runtime_for(cls.runtime) is not None]


def check_output(target: Path, exporter: Exporter) -> None:
    """Refuse an ``--output`` whose suffix belongs to another format (before any work). The suffix is the
    longest one some format writes that the name ends with (``x.qnn.onnx`` is ``.qnn.onnx``, not ``.onnx``).

    Raises:
        UsageError: the suffix is not one of the format's, with the format that does write it.
    """
    formats = exporter_classes()
    name = target.name.lower()
    known = [s for cls in formats.values() for s in cls.file_suffixes() if name.endswith(s)]
    suffix = max(known, key=len) if known else "".join(target.suffixes[-1:]).lower()
    accepted = exporter.file_suffixes()
    if suffix in accepted:
        return
    owner = next((name for name, cls in formats.items() if suffix in cls.file_suffixes()), None)
    fix = f"use --format {owner} for a {suffix} file, or " if owner else ""
    stem = target.name[:len(target.name) - len(suffix)] if suffix else target.name
    raise UsageError(f"--output {target} does not end in {' or '.join(accepted)}, the suffix of --format "
                     f"{exporter.name} files; {fix}name it {stem}{exporter.suffix}")


def export_model(model: "torch.nn.Module | Callable[[], torch.nn.Module]", fmt: "str | ExportPlan",
                 output: str | Path | None = None, options: ExportOptions | None = None,
                 progress: Progress | None = None) -> ExportResult:
    """Export ``model`` to ``fmt`` at ``output``, validated, atomically.

    Args:
        model: an LSNet, or a model containing one (fused or not; it is copied, never modified), or a
            function that builds it: every check that needs no model then runs before it is built.
        fmt: format name or alias (``onnx``, ``ort``, ``coreml``, ``executorch``, ``tensorrt``...), or the
            plan ``check_export`` made (``output`` and ``options`` are then the plan's).
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
    plan = fmt if isinstance(fmt, ExportPlan) else check_export(fmt, options or ExportOptions(), output)
    exporter, options, accelerator = plan.exporter, plan.options, plan.accelerator
    progress = progress or _quiet_progress
    if callable(model) and not isinstance(model, torch.nn.Module):
        model = model()
    network = network_of(model)
    target = plan.output if plan.output is not None else default_output(model, exporter.suffix)
    if plan.output is None:
        check_writable_dir(target, exporter.writes_directory)  # the name is known now (a directory of that name)
    if options.labels is not None and len(options.labels) != network.num_classes:
        raise UsageError(f"{len(options.labels)} labels given but the model has {network.num_classes} classes; "
                         "give one label per class")
    if options.data is not None:
        # every scorer of --data shares this mapping; a folder set that does not fit the model's classes fails
        # before any work
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

    calibration = plan.calibration
    warnings = calibration.warnings() if calibration is not None else []
    reference = reference_model(model)
    pytorch_accuracy = None
    if options.data is not None:  # measured at the first gate, once for every attempt of the export
        pytorch_accuracy = functools.cache(lambda: evaluate(reference, options.data, per_class=False,
                                                            labels=options.labels, class_map=options.class_map))
    with contextlib.ExitStack() as resources, staged_output(target, exporter.side_files) as tmp:
        context = ExportContext(target=target, options=options, ska_form=ska_form, metadata=MappingProxyType(metadata),
                                reference=reference, progress=progress, resources=resources,
                                calibration=calibration, accelerator=accelerator,
                                validation_runtime=plan.validation_runtime, pytorch_accuracy=pytorch_accuracy)

        def attempt(ctx: ExportContext) -> Attempt:
            written = _write(exporter, prepared, example, tmp, ctx)
            placement = check_placement(written, tmp, ctx)
            report, details = check_artifact(exporter, written, tmp, ctx)
            if placement is not None:
                details["placement"] = placement.to_dict()
            return Attempt(written, report, details)

        if options.int8 and options.validate:
            outcome = int8_search.search(prepared, context, attempt, exporter.int8_keep_float)
            done, context = outcome.attempt, outcome.context
            if outcome.ranking is not None:
                done.details["int8_ranking"] = [unit.to_dict() for unit in outcome.ranking]
            done.details["int8_float_layers"] = sorted(context.keep_float)
        else:
            done = attempt(context)
            if options.int8_ranking:
                done.details["int8_ranking"] = [unit.to_dict() for unit in int8_search.ranking(prepared, context)]
        if options.int8 and not options.validate:
            warnings.append("--no-validate: the int8 accuracy gate was skipped, so this artifact may have lost "
                            "accuracy; use it for latency work only")
        metadata = {**metadata, **done.written.metadata}
        skipped = (None if done.report is not None else "--no-validate" if not options.validate
                   else exporter.cannot_validate(context))
        if options.int8 and skipped is not None and options.validate:
            warnings.append(f"the int8 accuracy gate could not run here ({skipped}); measure this artifact's "
                            "accuracy on the target with lsnet-bench --data before shipping it")
        size = _size(tmp)
    return ExportResult(format=exporter.name, path=target, size_bytes=size, seconds=time.perf_counter() - start,
                        precision=options.precision, ska_form=ska_form, fused=options.fuse, metadata=metadata,
                        validation=done.report, validation_skipped=skipped, details=done.details,
                        notes=[*(getattr(network, "load_notes", None) or []),
                               *export_notes(exporter, options, metadata)], warnings=warnings)


#: what each attention-bias mode of a backbone means, for its summary
BIAS_MODE_NOTES = {
    "table": ("attention bias: table mode (the offset table resampled to this grid); the reference detection "
              "code's semantics are --bias-mode matrix (stage 4's outputs differ between the two; "
              "docs/backbone.md)"),
    "matrix": ("attention bias: matrix mode (the gathered bias resized bicubically), the reference detection "
               "code's semantics"),
}


def export_notes(exporter: Exporter, options: ExportOptions, metadata: dict[str, str]) -> list[str]:
    """What the summary and ``--json`` say about how this artifact was made: the format's precision
    default where it differs from float32, a backbone's attention-bias mode."""
    notes = [note] if (note := exporter.precision_note(options)) else []
    if (mode := backbone_bias_mode(metadata)) is not None:
        notes.append(BIAS_MODE_NOTES[mode])
    return notes


def _write(exporter: Exporter, prepared: torch.nn.Module, example: torch.Tensor, tmp: Path,
           context: ExportContext) -> Written:
    """One call of the format's ``write``, its failures turned into one-line ExportErrors."""
    context.progress(f"exporting to {exporter.name}")
    try:
        written = exporter.write(prepared, example, tmp, context) or Written()
    except (UsageError, ExportError, OutputWriteError):
        raise
    except Exception as exc:
        raise ExportError(f"{exporter.name} export failed: {first_line(exc)}") from exc
    if not tmp.exists() or (tmp.is_file() and tmp.stat().st_size == 0):
        raise ExportError(f"{exporter.name} export produced no file")
    return written


def accelerator_record(target: AcceleratorTarget, options: ExportOptions) -> dict:
    """The ``accelerator`` metadata entry: the accelerator's name and the options that pick its variant."""
    record = {"name": target.name, **target.probe_arguments(options.own_values())}
    if options.allow_fallback:
        record["allow_fallback"] = True  # runtimes then let the operators the accelerator leaves run on the CPU
    return record


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _quiet_progress(_: str) -> None:
    pass
