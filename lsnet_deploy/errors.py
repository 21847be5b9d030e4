"""The project's exceptions. Each carries a message that names the cause and the fix in one line.

Command-line entry points turn these into that line and an exit code (``exit_code``): 2 for usage
errors, 1 for failures. Anything else is a bug and shows a traceback.
"""

from __future__ import annotations


class LsnetDeployError(Exception):
    """Base class of every error this project raises on purpose."""

    exit_code = 1


class UsageError(LsnetDeployError, ValueError):
    """A bad option or argument: the user can fix the command line."""

    exit_code = 2


class CheckpointError(LsnetDeployError, ValueError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose unpickling would execute code or build arbitrary objects."""


class MissingDependencyError(LsnetDeployError, ImportError):
    """An optional dependency is not installed; the message names the pip command that adds it."""

    def __init__(self, package: str, extra: str, purpose: str = ""):
        self.package = package
        self.extra = extra
        what = f" ({purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}: pip install \"lsnet-deploy[{extra}]\"")


class OutputWriteError(LsnetDeployError):
    """An output that failed while being written (a disk that filled up); nothing partial is left."""


class ExportError(LsnetDeployError):
    """An export that failed; nothing is left at the output path."""


class ValidationError(ExportError):
    """An artifact whose outputs drift from PyTorch beyond the tolerance."""


class RuntimeUnavailableError(LsnetDeployError):
    """A runtime or device that this machine does not have (TensorRT, CUDA, Core ML off macOS)."""


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency or raise MissingDependencyError naming the extra to install.

    Args:
        module: importable module name, e.g. ``"onnxruntime"``.
        extra: the lsnet-deploy extra that provides it, e.g. ``"onnx"``.
        purpose: what it is needed for, shown in the message.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports is broken: show the real cause
        raise MissingDependencyError(top, extra, purpose) from exc


def first_line(exc: BaseException, fallback: str | None = None) -> str:
    """The first non-empty line of an exception's message: third-party errors are often pages long.

    Args:
        exc: the exception.
        fallback: returned when the message is empty (default: the exception's type name).
    """
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return fallback if fallback is not None else type(exc).__name__


def did_you_mean(value: str, choices, cutoff: float = 0.6) -> str:
    """``"; did you mean 'onnx'?"`` for the closest of ``choices`` (difflib), or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""
