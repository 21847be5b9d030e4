"""Accelerator targets of the mobile formats, and the probes that ask each accelerator's own tool where an
artifact's operators run.

Public API::

    from lsnet_deploy.accelerators import probe, inspect_artifact

    probe("lsnet_t.onnx", "nnapi")            # one PlacementReport
    inspect_artifact("lsnet_t.pte")           # one per accelerator the file's format reaches

Each probe imports its vendor's library when it runs, so importing this package needs none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import MissingDependencyError, UsageError
from .report import PlacementReport
from .targets import AcceleratorTarget, get_target, targets_of

#: the export format of an artifact, by its suffix (tests check it against the exporters' own suffixes);
#: QNN's EPContext ``.onnx`` files are told apart by content (``artifact_format``)
FORMAT_OF_SUFFIX = {".onnx": "onnx", ".ort": "ort", ".tflite": "litert", ".pte": "executorch",
                    ".mlpackage": "coreml"}


def artifact_format(path: str | Path) -> str:
    """The export format that writes files like ``path`` (``onnx``, ``ort``, ``litert``, ``executorch``,
    ``coreml``, ``qnn``).

    Raises:
        UsageError: the file does not exist, or its suffix is no format's.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    # lazy: the runtimes package imports accelerators.qnn_socs, which runs this package first
    from ..runtimes.registry import runtime_for_path

    try:
        if runtime_for_path(path) == "qnn":
            return "qnn"
    except UsageError:
        pass
    suffix = path.suffix.lower()
    if suffix not in FORMAT_OF_SUFFIX:
        raise UsageError(f"cannot tell the format of {path} from its suffix (known: {', '.join(FORMAT_OF_SUFFIX)})")
    return FORMAT_OF_SUFFIX[suffix]


def probe(path: str | Path, accelerator: str, **options) -> PlacementReport:
    """Ask ``accelerator``'s own tool where the operators of the artifact at ``path`` run.

    Args:
        path: an exported artifact (``.onnx``, ``.ort``, ``.tflite``, ``.pte``, ...).
        accelerator: an accelerator name or alias (``lsnet_deploy.accelerators.targets``).
        options: passed to the probe (e.g. ``soc="SM8650"`` for the QNN HTP).

    Raises:
        UsageError: an unknown accelerator (with the closest name), a missing file, or an accelerator the
            file's format does not reach.
        MissingDependencyError: the accelerator's tool is not installed (with the pip command).
    """
    target = get_target(accelerator)
    fmt = artifact_format(path)
    if fmt not in target.formats:
        raise UsageError(f"--accelerator {target.name} does not apply to {Path(path).name} (format {fmt}; "
                         f"{target.name} takes {' or '.join(target.formats)} files); accelerators of {fmt}: "
                         f"{', '.join(t.name for t in targets_of(fmt)) or 'none'}")
    return target.run_probe(Path(path), **options)


def inspect_artifact(path: str | Path, accelerators: Iterable[str] | None = None,
                     **options) -> list[PlacementReport]:
    """One report per accelerator that applies to the artifact at ``path``.

    An accelerator whose tool is not installed here gives a report that says so (``partitions`` None, the
    pip command in ``note``) instead of failing the others.

    Args:
        accelerators: names to probe (default: every accelerator the file's format reaches).
        options: passed to each probe that takes them (e.g. ``soc``).

    Raises:
        UsageError: a missing file, an unknown accelerator, or one the file's format does not reach.
    """
    fmt = artifact_format(path)
    if accelerators:
        targets = [get_target(name) for name in accelerators]
        for target in targets:
            if fmt not in target.formats:
                probe(path, target.name)  # raises the one-line refusal
    else:
        targets = targets_of(fmt)
    reports = []
    for target in targets:
        try:
            reports.append(target.run_probe(Path(path), **target.probe_arguments(options)))
        except MissingDependencyError as exc:
            reports.append(not_available(target, str(exc)))
    return reports


def not_available(target: AcceleratorTarget, reason: str) -> PlacementReport:
    """The report of an accelerator whose tool is not installed here (``reason`` names the pip command)."""
    return PlacementReport(accelerator=target.name, tool="not available", tool_version="", partitions=None,
                           nodes_total=None, nodes_on_accelerator=None, verified=False,
                           note=f"not available: {reason}")


__all__ = ["FORMAT_OF_SUFFIX", "artifact_format", "inspect_artifact", "not_available", "probe"]
