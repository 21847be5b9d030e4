"""Typer parameters made from option declarations (``option_fields``), so that a command's option flags,
defaults and help come from the dataclass that declares the options, not from the command's signature.

Torch-free: ``lsnet-inspect`` (artifact-only installs) uses it as well as ``lsnet-export``.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Callable, Iterable, Optional

import typer

from ..option_fields import OptionField


def option_parameter(field: OptionField, help: str) -> inspect.Parameter:
    """The keyword parameter typer reads for one option: its flag, its default (False for a flag that turns a
    True option off) and ``help``."""
    kind = Optional[field.type] if field.optional else field.type
    default = False if field.turns_off else field.default
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, typer.Option(field.flag, help=help)])


def with_parameters(parameters: Callable[[], Iterable[inspect.Parameter]]):
    """Decorator: give a command that takes ``**options`` the keyword parameters ``parameters()`` makes, after
    its own, for typer to read."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        fixed = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
                 if p.kind is not inspect.Parameter.VAR_KEYWORD]
        every = fixed + list(parameters())
        command.__signature__ = signature.replace(parameters=every)
        command.__annotations__ = {p.name: p.annotation for p in every}
        return command

    return decorate
