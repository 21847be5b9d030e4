"""Export options declared as dataclass fields that carry their own command-line flag and help.

``ExportOptions`` (every format's options) and each format's own options dataclass (``FormatSpec.own_options``:
``CoreMLOptions``, ``TensorRTOptions``, ``QnnOptions``) declare their fields with ``option``. ``lsnet-export``
builds its flags, defaults and help from these declarations, and the refusals name the same flags, so a
format's options live in one place: its own dataclass. Torch-free, so that the runners' modules, where the
format specs are declared, can use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

#: a help text, or a function that writes one when the help is shown (help that lists registered formats)
HelpText = str | Callable[[], str]


def option(default=None, *, flag: str | None, help: HelpText = "", common: bool = False, cli: bool = True):
    """An option field.

    Args:
        default: the value when the option is not given ("not set").
        flag: the ``lsnet-export`` flag that sets it; a bool option that defaults to True has a flag that
            turns it off (``--no-fuse``, ``--tensor-input``).
        help: its help text, or a function that returns it.
        common: every format takes it (only ``ExportOptions`` fields; others are taken by the formats whose
            spec lists them).
        cli: ``lsnet-export`` derives its flag from this declaration (False: the command declares the flag
            itself, because it reads something else, such as a labels file).
    """
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help, "common": common, "cli": cli})


@dataclass(frozen=True)
class OptionField:
    """One option as the CLI and the messages see it."""

    name: str
    flag: str
    help: HelpText
    default: Any
    #: the value's type with ``None`` removed (``Path`` for ``Path | None``)
    type: Any
    optional: bool
    common: bool
    cli: bool

    @property
    def turns_off(self) -> bool:
        """The flag sets a True-by-default bool option to False."""
        return self.type is bool and self.default is True

    def from_flag(self, given):
        """The option's value from its flag's value (a flag that turns the option off is True when given)."""
        return (not given) if self.turns_off else given

    def help_text(self) -> str:
        """The help text, written now where it is a function."""
        return self.help() if callable(self.help) else self.help


def option_fields(cls: type) -> tuple[OptionField, ...]:
    """The fields of an options dataclass that carry a flag, in declaration order."""
    hints = typing.get_type_hints(cls)
    fields = []
    for field in dataclasses.fields(cls):
        if field.metadata.get("flag") is None:
            continue
        kind, optional = _without_none(hints[field.name])
        fields.append(OptionField(field.name, field.metadata["flag"], field.metadata["help"], field.default, kind,
                                  optional, field.metadata["common"], field.metadata["cli"]))
    return tuple(fields)


def made_from_flags(cls: type, values: Any):
    """An options dataclass made from command-line flag values keyed by field name (so its own checks run)."""
    return cls(**{field.name: field.from_flag(values[field.name]) for field in option_fields(cls)})


def changed_fields(options: Any) -> list[str]:
    """Names of an options instance's fields set to something other than their default, in declaration order."""
    return [f.name for f in dataclasses.fields(options) if getattr(options, f.name) != f.default]


def flags_of(options: Any, names) -> str:
    """The flags of the named fields of an options instance or class, for messages (``--soc, --target``)."""
    flags = {f.name: f.flag for f in option_fields(options if isinstance(options, type) else type(options))}
    return ", ".join(flags.get(name, name) for name in names)


def _without_none(hint) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            return members[0], len(members) != len(typing.get_args(hint))
    return hint, False
