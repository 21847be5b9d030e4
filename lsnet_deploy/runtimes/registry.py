"""The runtime registry: every runner class under its name, aliases and artifact suffixes.

Runner modules register their class with ``@register_runtime``; ``runtimes/__init__.py`` imports each
module once, so the registry is complete whenever ``lsnet_deploy.runtimes`` is imported. Lookups by name
(``get_runtime``), by file (``runtime_for_path``) and the lists in help texts all read it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..registry import Registry
from .base import Runner

_RUNTIMES: Registry[type[Runner]] = Registry("runtime", cutoff=0.6)
_SUFFIXES: dict[str, str] = {}  # suffix -> runtime name


def register_runtime(cls: type[Runner]) -> type[Runner]:
    """Class decorator: make a runner available under its name, aliases and suffixes.

    Raises:
        ValueError: a name, alias or suffix that another runtime already claims.
    """
    # a runner of another runtime's files (an emulated ARM twin) runs them only when named: no suffix claim
    claimed = cls.suffixes if cls.claims_suffixes else ()
    _RUNTIMES.check_free(cls.name, (cls.name, *cls.aliases), cls.__name__)
    for suffix in claimed:
        owner = _SUFFIXES.get(suffix.lower())
        if owner is not None and owner != cls.name:
            raise ValueError(f"{cls.__name__} claims {suffix!r}, which runtime {owner!r} already has")
    _RUNTIMES.add(cls.name, cls, cls.aliases, cls.__name__)
    for suffix in claimed:
        _SUFFIXES[suffix.lower()] = cls.name
    return cls


def runtimes() -> dict[str, type[Runner]]:
    """Every registered runner class by runtime name, in registration order."""
    return _RUNTIMES.entries()


def artifact_suffixes() -> list[str]:
    """Every artifact suffix some runtime runs, in registration order (for help texts)."""
    return list(_SUFFIXES)


def canonical_runtime(name: str) -> str:
    """Normalize a runtime name or alias (``onnxruntime`` -> ``ort``, ``trt`` -> ``tensorrt``).

    Raises:
        UsageError: unknown name, with the closest known name or alias suggested.
    """
    return _RUNTIMES.canonical(name)


def get_runtime(name: str) -> type[Runner]:
    """The runner class of a runtime name or alias.

    Raises:
        UsageError: unknown name, with the closest one suggested.
    """
    return _RUNTIMES.get(name)


def runtime_for_suffix(suffix: str) -> type[Runner] | None:
    """The runner class that runs files with this suffix (``.onnx``, ``.qnn.onnx``), or None."""
    name = _SUFFIXES.get(suffix.lower())
    return _RUNTIMES.find(name) if name else None


def file_suffix(path: str | Path) -> str:
    """The longest registered suffix ``path`` ends with (``x.qnn.onnx`` -> ``.qnn.onnx``), else its last one."""
    name = Path(path).name.lower()
    matches = [suffix for suffix in _SUFFIXES if name.endswith(suffix)]
    return max(matches, key=len) if matches else Path(path).suffix.lower()


def runtime_for_path(path: str | Path) -> str:
    """The name of the runtime that runs an artifact: from its suffix (the longest registered one it ends
    with), unless a runtime that sniffs that suffix claims the file by its content (a QNN EPContext model
    saved as ``.onnx`` is not plain ONNX).

    Raises:
        UsageError: a suffix no runtime runs.
    """
    suffix = file_suffix(path)
    for cls in _RUNTIMES.entries().values():
        if suffix in getattr(cls, "sniffed_suffixes", ()) and cls.claims(path):
            return cls.name
    cls = runtime_for_suffix(suffix)
    if cls is None:
        raise UsageError(f"cannot tell the runtime of {path} from its suffix; pass --runtime "
                         f"(known suffixes: {', '.join(_SUFFIXES)})")
    return cls.name


def runner_for(path: str | Path, runtime: str | None = None, **options) -> Runner:
    """Build (not activate) the runner for an artifact file.

    Args:
        path: the artifact.
        runtime: force a runtime (name or alias); default from the suffix.
        **options: common settings (``threads``, ``provider``, ``spinning``, ``device``, ``compute_units``...);
            each runner takes those it uses.

    Raises:
        UsageError: unknown runtime or suffix, or a runtime that runs models rather than files.
    """
    cls = get_runtime(runtime) if runtime else _RUNTIMES.get(runtime_for_path(path))
    if not cls.suffixes:
        raise UsageError(f"runtime {cls.name!r} runs PyTorch models, not files; use --model")
    return cls.from_options(path, **options)
