"""The checks every artifact passes before it is renamed into place: outputs compared with the user's model,
top-1 gated on ``--data``, placement on the targeted accelerator.

The limits are ``lsnet_deploy.gates``'; this module runs the artifact and applies them.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import numpy as np

from ..accelerators.report import PlacementReport
from ..accuracy import evaluate
from ..errors import ExportError, ValidationError
from ..gates import (ACCELERATOR_DRIFT_HINT, DRIFT_HINTS, FALLBACK_HINT, INT8_MIN_AGREEMENT, accuracy_drop_failure,
                     int8_agreement_failure)
from ..models.outputs import network_of
from ..runtimes import get_runtime, runner_for
from ..runtimes.arm_runners import ArmEmulatedRunner, arm_kernels_description
from ..verify import ComparisonReport, compare_runner
from .context import ExportContext, Written, output_entries
from .exporter import Exporter

#: runtime threads used to validate artifacts (the numbers do not depend on it)
VALIDATION_THREADS = 2

#: what to try when a float16 export of random-init weights drifts: their logits are about 1e-3 across
#: (LSNet-S: 1.4e-3; a trained model's are units), so float16's rounding of the features is large beside
#: them whatever the SKA form (measured: ExecuTorch LSNet-S 2.09e-2 with tap_slices, worse with shifted_slices)
RANDOM_INIT_FLOAT16_HINT = ("The weights come from no checkpoint (random init without --weights?): random-init "
                            "logits are near zero, so float16 rounding is large beside them and another --ska form "
                            "does not help; export trained weights (--weights), or drop --half to time a random "
                            "model")


def drift_hint(exporter: Exporter, context: ExportContext) -> str:
    """What to try when the artifact drifts from PyTorch: the format's hint, or, for float16 on random-init
    weights, ``RANDOM_INIT_FLOAT16_HINT`` (a drift only their near-zero logits cause)."""
    if (context.options.precision == "float16"
            and getattr(network_of(context.reference), "checkpoint_sha256", None) is None):
        return RANDOM_INIT_FLOAT16_HINT
    return exporter.drift_hint(context.options)


def kernels_of(runtime: str) -> str:
    """The kernels a validation on ``runtime`` ran on, for the record: ``arm64 cortex-a76 (qemu)`` for an
    emulated ARM runtime, else this machine's architecture (``x86_64 host``)."""
    if issubclass(get_runtime(runtime), ArmEmulatedRunner):
        return arm_kernels_description()
    return f"{platform.machine()} host"


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
                   int8_agreement_failure(report.top1_agreement, report.samples)
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
        placement = target.run_probe(tmp, **target.probe_arguments(options.own_values()))
    if not placement.whole and not options.allow_fallback:
        raise ExportError(f"--accelerator {target.name} cannot take the whole model ({placement.partitions} "
                          f"partition(s)); these operators fall back to the CPU: {placement.fallback_summary()} "
                          f"[{placement.tool} {placement.tool_version}]; nothing was written. "
                          f"{FALLBACK_HINT.format(ska=target.ska or 'auto')}")
    return placement


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
    runtime = context.validation_runtime or exporter.runtime
    details = dict(written.details)
    # the ARM build's name goes into messages, so a refusal says which kernels missed
    name = exporter.name if runtime == exporter.runtime else f"{exporter.name} on {runtime}"
    if reason is None and (options.validate or options.data is not None):
        details["validated_on"] = {"runtime": runtime, "kernels": kernels_of(runtime)}
    if options.validate and reason is None:
        context.progress(f"validating against PyTorch ({runtime})")
        report = validate_file(written.validate_path or tmp, runtime, context,
                               f"{exporter.name} artifact" + ("" if name == exporter.name else f" on {runtime}"),
                               hint=drift_hint(exporter, context))
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
    sorted folders; ``--class-map`` entries first). The PyTorch measurement is made once per export
    (``ExportContext.pytorch_accuracy``: the int8 search gates several artifacts).

    Args:
        path: the file to run; runtime: the runtime that runs it; what: its name in messages (``onnx``).

    Returns:
        ``{"pytorch": report, "artifact": report, "drop": points, "max_drop": points, "classes": mapping}``
        (reports and the class mapping as dicts).

    Raises:
        ValidationError: the artifact's top-1 is more than ``max_drop`` points below the model's.
    """
    options = context.options
    context.progress(f"measuring top-1 on {options.data} (PyTorch and {what})")
    pytorch = context.pytorch_accuracy()
    artifact = evaluate(path, options.data, runtime=runtime, threads=VALIDATION_THREADS, per_class=False,
                        classes=pytorch.classes)
    drop = pytorch.top1 - artifact.top1
    if drop > options.max_drop:
        failure = accuracy_drop_failure(options.data, pytorch.top1, artifact.top1, what, options.precision,
                                        artifact.count, options.max_drop)
        raise ValidationError(f"{failure}; nothing was written. {DRIFT_HINTS[options.precision]}")
    return {"pytorch": _accuracy_fields(pytorch), "artifact": _accuracy_fields(artifact),
            "drop": round(drop, 4), "max_drop": options.max_drop, "classes": pytorch.classes.to_dict()}


def _accuracy_fields(report) -> dict:
    return {"top1": round(report.top1, 4), "top5": round(report.top5, 4), "count": report.count,
            "unreadable": report.unreadable}

