"""What every command-line tool shares: error handling, argument parsing helpers, messages.

Errors the project raises on purpose become one line on stderr and an exit code (2 for usage errors,
1 for failures); ``LSNET_DEPLOY_DEBUG=1`` shows the traceback as well. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

import typer
from typer.core import TyperCommand

from ..atomic import finish_after_output
from ..errors import LsnetDeployError, MissingDependencyError, UsageError
from ..model_choice import RANDOM_INIT_WARNING, resolve_model  # noqa: F401  (re-exported for the CLIs)

DEBUG_ENV = "LSNET_DEPLOY_DEBUG"
#: modules of the ``torch`` extra: the core (running artifacts) works without them
TORCH_EXTRA_MODULES = frozenset({"torch", "safetensors", "huggingface_hub"})


def err(message: str) -> None:
    """Print a line to stderr."""
    typer.echo(message, err=True)


@contextlib.contextmanager
def cli_errors(prog: str) -> Iterator[None]:
    """Turn project errors into ``prog: error: ...`` and an exit code; Ctrl-C exits 130."""
    try:
        yield
    except LsnetDeployError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        err(f"{prog}: error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except ModuleNotFoundError as exc:
        _missing_torch_extra(prog, exc)
    except KeyboardInterrupt:
        err(f"{prog}: interrupted")
        raise typer.Exit(130) from None


JSON_OPTION = "--json"


def json_error(message: str, exit_code: int) -> None:
    """Print the JSON object a failed ``--json`` command gives on stdout."""
    typer.echo(json.dumps({"ok": False, "error": message, "exit_code": exit_code}))


@contextlib.contextmanager
def json_errors(enabled: bool) -> Iterator[None]:
    """With --json, a failure still prints one JSON object on stdout (the one-line error goes to stderr too)."""
    try:
        yield
    except LsnetDeployError as exc:
        if enabled:
            json_error(str(exc), exc.exit_code)
        raise


def _click_usage_errors() -> tuple[type[Exception], ...]:
    """Click's UsageError classes: recent typer ships its own copy of click, older typer uses click itself."""
    found = {cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError"}
    with contextlib.suppress(ImportError):
        import click

        found.add(click.UsageError)
    return tuple(found)


class JsonParseErrors(TyperCommand):
    """A command whose command-line errors (an unknown option, a bad value, a missing argument) also print
    the ``--json`` error object on stdout when ``--json`` is among its arguments, as its own failures do
    (``json_errors``): a script reading stdout always gets JSON. Use as ``@app.command(cls=JsonParseErrors)``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        wants_json = JSON_OPTION in args[:args.index("--")] if "--" in args else JSON_OPTION in args
        try:
            return super().parse_args(ctx, args)
        except _click_usage_errors() as exc:
            if wants_json:
                json_error(exc.format_message(), exc.exit_code)
            raise


@contextlib.contextmanager
def whole_command(prog: str) -> Iterator[None]:
    """Around a whole command in ``main()`` (help texts included).

    - A torch-free install (``lsnet-deploy[runtime]``) that reaches code needing PyTorch gets one line
      naming the extra, not a traceback.
    - Ctrl-C and the exit code agree: an interrupt before the artifact is in place exits 130 with nothing
      left (``cli_errors``); one after it was completely written and renamed into place lets the command
      finish (its summary, its ``--json`` object, its exit code) and says the interrupt came too late.
    """
    outputs = None
    try:
        with finish_after_output() as outputs:
            try:
                yield
            except ModuleNotFoundError as exc:
                _missing_torch_extra(prog, exc)
    finally:
        if outputs is not None and outputs.interrupted:
            written = ", ".join(str(path) for path in outputs.written)
            err(f"{prog}: interrupted after {written} was completely written; it is kept and valid")


def _missing_torch_extra(prog: str, exc: ModuleNotFoundError):
    if os.environ.get(DEBUG_ENV) or (exc.name or "").split(".")[0] not in TORCH_EXTRA_MODULES:
        raise exc
    missing = MissingDependencyError(exc.name.split(".")[0], "torch", "to load models and checkpoints and export")
    err(f"{prog}: error: {missing}")
    raise SystemExit(missing.exit_code) from None


def parse_imgsz(text: str | None) -> tuple[int, int] | None:
    """``224`` -> (224, 224); ``192,256`` or ``192x256`` -> (192, 256).

    Raises:
        UsageError: not one or two integers, or outside 32..4096.
    """
    if text is None:
        return None
    parts = [p for p in text.replace("x", ",").replace("X", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--imgsz {text!r} is not a size; use 224 or H,W such as 192,256") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise UsageError(f"--imgsz {text!r} has {len(values)} numbers; use 224 or H,W")
    if not all(32 <= v <= 4096 for v in values):
        raise UsageError(f"--imgsz {text!r} is out of range: each side must be between 32 and 4096 pixels")
    return (values[0], values[1])


def human_size(size: int) -> str:
    """1234567 -> '1.2 MB'."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
