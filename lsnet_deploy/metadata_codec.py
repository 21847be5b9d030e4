"""One codec for the metadata map every artifact carries: how it is written as text and read back.

The map is ``metadata.build_metadata``'s (string keys, JSON-encoded values). Formats that cannot hold a
string map natively store it as one JSON object: under the entry named ``METADATA_ENTRY`` (an ExecuTorch
constant method, a LiteRT flatbuffer metadata entry) or in a sidecar file beside the artifact (TensorRT
engines). Writers call ``encode_metadata_map``; readers call ``parse_metadata_map`` or ``read_sidecar``.
This module imports nothing of the project's but its errors, so exporters, runtimes and
``artifact_metadata`` can all read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from .errors import LsnetDeployError

#: the name under which artifacts that embed the map as one JSON text store it
METADATA_ENTRY = "lsnet_metadata"
#: the field whose presence marks a map as lsnet-deploy metadata
REQUIRED_KEY = "input_size"
#: a sidecar is the artifact's full name plus this
SIDECAR_SUFFIX = ".json"


def encode_metadata_map(metadata: Mapping[str, str]) -> str:
    """The map as the one JSON object stored under ``METADATA_ENTRY`` or in a sidecar."""
    return json.dumps(dict(metadata))


def parse_metadata_map(text: str | bytes) -> dict[str, str] | None:
    """A JSON object (or a ``{"metadata": {...}}`` wrapper) as a raw string map; None when it is not one."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's parser goes
        return None
    return as_metadata_map(data)


def as_metadata_map(data) -> dict[str, str] | None:
    """A decoded JSON object (or a ``{"metadata": {...}}`` wrapper) as a raw string map; None when it is not
    one."""
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict) and REQUIRED_KEY not in data:
        data = data["metadata"]
    if not isinstance(data, dict):
        return None
    # keep strings as stored; re-encode plain JSON values so every map has one form
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def sidecar_path(artifact: str | Path) -> Path:
    """The sidecar metadata file of an artifact: its full name plus ``.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SIDECAR_SUFFIX)


def read_sidecar(artifact: str | Path) -> dict | None:
    """The JSON object in ``<artifact>.json`` as written (a TensorRT engine's also holds its build settings),
    or None when there is no such file.

    Raises:
        LsnetDeployError: the sidecar exists but cannot be read or is not a JSON object.
    """
    sidecar = sidecar_path(artifact)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LsnetDeployError(f"cannot read metadata sidecar {sidecar}: {exc}") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise LsnetDeployError(f"metadata sidecar {sidecar} is not a JSON object; fix it or delete it")
    return data


def read_sidecar_metadata(artifact: str | Path) -> dict[str, str] | None:
    """The metadata map in ``<artifact>.json``, or None when there is no such file.

    Raises:
        LsnetDeployError: the sidecar exists but is not a JSON object.
    """
    data = read_sidecar(artifact)
    return None if data is None else as_metadata_map(data)
