"""Reading an artifact's metadata (preprocessing recipe, labels, ...) from any format lsnet-export writes.

Every artifact carries the string map of ``metadata.build_metadata`` (JSON-encoded values). Where it lives
depends on the format; ``read_artifact_metadata`` looks in this order and takes the first map that holds
``input_size`` (the field every lsnet-export artifact has):

1. inside the artifact:
   - ``.onnx``: ``ModelProto.metadata_props`` (read with ``onnx``; ONNX Runtime's ``modelmeta`` when
     ``onnx`` is not installed, or when the caller passes an ONNX Runtime runner that is already loaded);
   - ``.ort``: ONNX Runtime's ``modelmeta.custom_metadata_map`` (the ORT format keeps metadata_props);
   - ``.pte``: an ExecuTorch constant method (no inputs) returning the map as one JSON string;
     ``lsnet_metadata`` is tried first, then any other method that is not ``forward``;
   - ``.mlpackage`` / ``.mlmodel``: Core ML user-defined metadata (read from the spec with coremltools,
     which works on any OS; another reader can be plugged in with ``register_metadata_reader``);
   - TensorRT engines (``.engine``, ``.plan``, ``.trt``): nothing is embedded;
2. a sidecar JSON file named after the artifact plus ``.json`` (``lsnet_t.engine.json``,
   ``lsnet_t.pte.json``) holding the same string map; values may also be plain JSON values, and a
   ``{"metadata": {...}}`` wrapper is accepted.

When neither has the recipe, the result is empty (``found`` is False) and callers ask the user for
``--imgsz``/``--mean``/``--std``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import LsnetDeployError, UsageError, require
from .metadata import decode_metadata

SIDECAR_SUFFIX = ".json"
#: the field whose presence marks a map as lsnet-deploy metadata
REQUIRED_KEY = "input_size"
#: the ExecuTorch constant method tried first for embedded metadata
PTE_METADATA_METHOD = "lsnet_metadata"

Reader = Callable[[Path], "dict[str, str] | None"]


@dataclass(frozen=True)
class ArtifactMetadata:
    """An artifact's metadata and where it came from.

    Attributes:
        fields: decoded values (lists, numbers, strings), empty when nothing was found.
        raw: the string map as stored.
        source: where the map was read (``onnx metadata_props``, ``sidecar lsnet_t.engine.json``...),
            None when nothing was found.
    """

    fields: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    source: str | None = None

    @property
    def found(self) -> bool:
        """True when the map holds the preprocessing recipe."""
        return REQUIRED_KEY in self.fields


def sidecar_path(artifact: str | Path) -> Path:
    """The sidecar metadata file of an artifact: its full name plus ``.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SIDECAR_SUFFIX)


# -------------------------------------------------------------------------------- embedded readers


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file (external weights are not loaded)."""
    try:
        onnx = require("onnx", "onnx")
    except ImportError:
        return read_onnxruntime_metadata(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise LsnetDeployError(f"{path} is not a readable ONNX file ({type(exc).__name__}); re-export it") from None
    return {prop.key: prop.value for prop in model.metadata_props}


def read_onnxruntime_metadata(path: Path) -> dict[str, str]:
    """The custom metadata map ONNX Runtime reports for an ``.onnx`` or ``.ort`` file."""
    ort = require("onnxruntime", "onnx", "to read ONNX Runtime models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LsnetDeployError(f"ONNX Runtime cannot read {path}: {first}") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_pte_metadata(path: Path) -> dict[str, str] | None:
    """The metadata map an ExecuTorch program returns from a constant method, or None."""
    runtime = require("executorch.runtime", "executorch", "to read .pte programs")
    try:
        program = runtime.Runtime.get().load_program(str(path))
    except Exception as exc:
        raise LsnetDeployError(f"ExecuTorch cannot load {path}: {exc}") from None
    names = sorted(program.method_names - {"forward"}, key=lambda n: (n != PTE_METADATA_METHOD, n))
    for name in names:
        try:
            outputs = program.load_method(name).execute([])
        except Exception:  # a method that needs inputs: not a metadata getter
            continue
        if len(outputs) == 1 and isinstance(outputs[0], str):
            parsed = _parse_map(outputs[0])
            if parsed is not None and REQUIRED_KEY in parsed:
                return parsed
    return None


def read_coreml_metadata(path: Path) -> dict[str, str]:
    """Core ML user-defined metadata, read from the model spec (no macOS needed)."""
    ct = require("coremltools", "coreml", "to read Core ML models")
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as exc:
        raise LsnetDeployError(f"coremltools cannot read {path}: {exc}") from None
    return dict(spec.description.metadata.userDefined)


def _no_embedded_metadata(path: Path) -> None:
    return None


_READERS: dict[str, Reader] = {
    ".onnx": read_onnx_metadata,
    ".ort": read_onnxruntime_metadata,
    ".pte": read_pte_metadata,
    ".mlpackage": read_coreml_metadata,
    ".mlmodel": read_coreml_metadata,
    ".engine": _no_embedded_metadata,
    ".plan": _no_embedded_metadata,
    ".trt": _no_embedded_metadata,
}


def register_metadata_reader(suffix: str, reader: Reader) -> None:
    """Plug in (or replace) the reader of embedded metadata for a file suffix.

    Args:
        suffix: e.g. ``".mlpackage"``.
        reader: takes the artifact path, returns its raw string map or None.
    """
    _READERS[suffix.lower()] = reader


# ------------------------------------------------------------------------------------------ sidecar


def _parse_map(text: str) -> dict[str, str] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict) and REQUIRED_KEY not in data:
        data = data["metadata"]
    if not isinstance(data, dict):
        return None
    # keep strings as stored; re-encode plain JSON values so every map has one form
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def read_sidecar_metadata(artifact: str | Path) -> dict[str, str] | None:
    """The map in ``<artifact>.json``, or None when there is no such file.

    Raises:
        LsnetDeployError: the sidecar exists but is not a JSON object.
    """
    sidecar = sidecar_path(artifact)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LsnetDeployError(f"cannot read metadata sidecar {sidecar}: {exc}") from None
    parsed = _parse_map(text)
    if parsed is None:
        raise LsnetDeployError(f"metadata sidecar {sidecar} is not a JSON object; fix it or delete it")
    return parsed


# ------------------------------------------------------------------------------------------ lookup


def read_artifact_metadata(artifact: str | Path, runner=None) -> ArtifactMetadata:
    """Find an artifact's metadata: embedded first, then the sidecar (see the module docstring).

    Args:
        artifact: the artifact file (or ``.mlpackage`` directory).
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
        embedded = _READERS.get(path.suffix.lower(), _no_embedded_metadata)(path)
    if embedded and REQUIRED_KEY in embedded:
        return ArtifactMetadata(decode_metadata(embedded), dict(embedded), where)
    sidecar = read_sidecar_metadata(path)
    if sidecar is not None:
        return ArtifactMetadata(decode_metadata(sidecar), sidecar, f"sidecar {sidecar_path(path).name}")
    # a foreign file's own metadata (if any) is still returned, for labels or display
    return ArtifactMetadata(decode_metadata(embedded or {}), dict(embedded or {}), None)
