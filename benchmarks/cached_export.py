"""The one way benchmark scripts make their artifacts: built once per key, reused from ``--workdir`` after.

A file's key is everything that changes its content: what was built (the model variant and its arguments,
the export format and every export option, or a script's own description of a custom build), the versions
of the packages that build and run it, and a digest of lsnet-deploy's own source (an editable install keeps
its version number while its code changes). The key's digest is part of the file name, so a ``--workdir``
kept from an earlier run reuses an export only when nothing that made it has changed; otherwise the file is
built again beside the old one. Files are built under a temporary name and renamed into place, so an
interrupted run leaves no half-written export to be reused.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import tempfile
from pathlib import Path
from typing import Callable

#: the distributions whose versions change what an export contains or how it runs
PACKAGES = ("lsnet-deploy", "torch", "onnx", "onnxruntime", "onnxscript", "onnxsim", "executorch", "litert-torch",
            "ai-edge-litert", "ai-edge-quantizer", "coremltools", "numpy", "pillow")
PROJECT_SOURCES = ("lsnet_deploy", "exporters", "models", "runtimes")


@functools.lru_cache(maxsize=1)
def environment_key() -> dict:
    """Package versions (None where not installed) and the digest of the project's source files."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for folder in PROJECT_SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return {"versions": versions, "source_sha256": digest.hexdigest()}


def _plain(value):
    """``value`` as JSON-ready data: dataclasses as dicts, paths resolved, with a folder's file listing
    (calibration images) so that changing the pictures changes the key."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        path = value.resolve()
        if path.is_dir():
            return {"folder": str(path), "files": [[str(p.relative_to(path)), p.stat().st_size]
                                                   for p in sorted(path.rglob("*")) if p.is_file()]}
        return {"file": str(path), "size": path.stat().st_size if path.exists() else None}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def cache_key(description: dict) -> str:
    """The 16-hex digest of ``description`` plus the environment (``environment_key``)."""
    text = json.dumps({"build": _plain(description), "environment": environment_key()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_file(workdir: Path, stem: str, suffix: str, description: dict, build: Callable[[Path], object],
                progress: Callable[[str], None] = print) -> Path:
    """``workdir/<stem>-<key><suffix>``, built by ``build(path)`` unless a file with that key is there.

    Args:
        workdir: the folder exports are kept in.
        stem: a readable name for the file.
        suffix: the artifact suffix (``.onnx``, ``.pte`` ...).
        description: everything about the build that changes the file (see the module docstring).
        build: writes the artifact to the path it is given.
        progress: told when a file is built or reused.
    """
    path = workdir / f"{stem}-{cache_key(description)}{suffix}"
    if path.exists():
        progress(f"reusing {path.name}")
        return path
    with tempfile.TemporaryDirectory(prefix=".building-", dir=workdir) as staging:
        build(Path(staging) / path.name)
        for made in sorted(Path(staging).iterdir(), key=lambda p: p.name == path.name):  # the artifact last
            made.replace(workdir / made.name)
    progress(f"built {path.name}")
    return path


def cached_export(workdir: Path, fmt: str, options, variant: str = "lsnet_t", progress: Callable[[str], None] = print,
                  **model_kwargs) -> Path:
    """lsnet-export's artifact of a randomly initialized ``variant`` (latency does not depend on the weights)
    in ``fmt`` with ``options`` (an ``ExportOptions``), cached as ``cached_file`` says.

    Args:
        workdir: the folder exports are kept in.
        fmt: the export format name.
        options: the export options.
        variant: the model variant.
        progress: told when a file is built or reused.
        **model_kwargs: arguments of ``create_model`` (``features_only=True``, ``img_size=640`` ...).
    """
    from lsnet_deploy.exporters import export_model, get_exporter
    from lsnet_deploy.models import create_model

    description = {"format": fmt, "options": options, "variant": variant, "model_kwargs": model_kwargs}
    stem = "_".join([variant, fmt, *(f"{k}{v}" for k, v in sorted(model_kwargs.items()))])

    def build(path: Path) -> None:
        export_model(create_model(variant, **model_kwargs).eval(), fmt, path, options)

    return cached_file(workdir, stem, get_exporter(fmt).suffix, description, build, progress)
