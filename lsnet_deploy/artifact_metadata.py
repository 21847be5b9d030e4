"""Reading an artifact's metadata (preprocessing recipe, labels, ...) from any format lsnet-export writes.

Every artifact carries the string map of ``metadata.build_metadata`` (JSON-encoded values). Where it lives
depends on the format; ``read_artifact_metadata`` looks in this order and takes the first map that holds
``input_size`` (the field every lsnet-export artifact has):

1. inside the artifact, read by the ``read_metadata`` of the runtime that runs its suffix
   (``lsnet_deploy.runtimes``): ONNX ``metadata_props``, an ExecuTorch constant method, Core ML
   user-defined metadata (read from the spec, on any OS); TensorRT engines embed nothing. Another reader
   can be plugged in for a suffix with ``register_metadata_reader``;
2. a sidecar JSON file named after the artifact plus ``.json`` (``lsnet_t.pte.json``) holding the same
   string map; values may also be plain JSON values, and a ``{"metadata": {...}}`` wrapper is accepted
   (``metadata_codec``: the one codec writers and readers share).

When neither has the recipe, the result is empty (``found`` is False) and callers ask the user for
``--imgsz``/``--mean``/``--std``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import LsnetDeployError, UsageError
from .metadata import decode_metadata
from .metadata_codec import (REQUIRED_KEY, SIDECAR_SUFFIX, parse_metadata_map, read_sidecar_metadata,  # noqa: F401
                             sidecar_path)
from .runtimes import runtime_for_suffix

Reader = Callable[[Path], "dict[str, str] | None"]


@dataclass(frozen=True)
class ArtifactMetadata:
    """An artifact's metadata and where it came from.

    Attributes:
        fields: decoded values (lists, numbers, strings), empty when nothing was found.
        raw: the string map as stored.
        source: where the map was read (``onnx metadata_props``, ``sidecar lsnet_t.pte.json``...),
            None when nothing was found.
    """

    fields: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    source: str | None = None

    @property
    def found(self) -> bool:
        """True when the map holds the preprocessing recipe."""
        return REQUIRED_KEY in self.fields


# -------------------------------------------------------------------------------- embedded readers

_PLUGGED: dict[str, Reader] = {}


def register_metadata_reader(suffix: str, reader: Reader) -> None:
    """Plug in (or replace) the reader of embedded metadata for a file suffix.

    It takes precedence over the ``read_metadata`` of the runtime that runs the suffix.

    Args:
        suffix: the file suffix, with the dot.
        reader: takes the artifact path, returns its raw string map or None.
    """
    _PLUGGED[suffix.lower()] = reader


def read_embedded_metadata(path: Path) -> dict[str, str] | None:
    """The raw map embedded in an artifact, by its suffix's plugged reader or runtime; None for a suffix
    no runtime runs, or an artifact that embeds nothing."""
    suffix = path.suffix.lower()
    if suffix in _PLUGGED:
        return _PLUGGED[suffix](path)
    runtime = runtime_for_suffix(suffix)
    return runtime.read_metadata(path) if runtime is not None else None


# ------------------------------------------------------------------------------------------ lookup


def read_artifact_metadata(artifact: str | Path, runner=None) -> ArtifactMetadata:
    """Find an artifact's metadata: embedded first, then the sidecar (see the module docstring).

    Args:
        artifact: the artifact file (or directory, for formats stored as one).
        runner: an already active runner of this artifact; if it exposes ``metadata()`` (ONNX Runtime),
            that map is used instead of loading the file a second time.

    Returns:
        The metadata; ``found`` is False when the artifact carries none (a file not made by lsnet-export).

    Raises:
        UsageError: the artifact does not exist.
        LsnetDeployError: the artifact or its sidecar cannot be parsed.
    """
    path = Path(artifact)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    embedded: dict[str, str] | None = None
    where = f"{path.suffix.lstrip('.') or 'embedded'} metadata"
    if runner is not None and hasattr(runner, "metadata"):
        try:
            embedded = runner.metadata()
        except LsnetDeployError:  # e.g. a runner that reads a sidecar that is not there: look ourselves
            embedded = None
    else:
        embedded = read_embedded_metadata(path)
    if embedded and REQUIRED_KEY in embedded:
        return ArtifactMetadata(decode_metadata(embedded), dict(embedded), where)
    sidecar = read_sidecar_metadata(path)
    if sidecar is not None:
        return ArtifactMetadata(decode_metadata(sidecar), sidecar, f"sidecar {sidecar_path(path).name}")
    # a foreign file's own metadata (if any) is still returned, for labels or display
    return ArtifactMetadata(decode_metadata(embedded or {}), dict(embedded or {}), None)
