"""Every export option as a command-line flag, with the formats that take it, and the options a set of flag
values makes.

``lsnet-export`` builds its option flags from here: the shared options (``ExportOptions``) and each
registered format's own options dataclass (``FormatSpec.own_options``) and accelerator's, so a format that
adds options declares them in its own dataclass and edits no command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..accelerators.targets import accelerator_option_kinds, get_target
from ..option_fields import OptionField, changed_fields, made_from_flags, option_fields
from .options import SHARED_OPTIONS, ExportOptions
from .registry import exporter_classes, get_exporter


@dataclass(frozen=True)
class OptionFlag:
    """One option flag of ``lsnet-export``.

    Attributes:
        field: the option's declaration (flag, help, default, type).
        owner: the dataclass that declares it (``ExportOptions`` or a format's own options).
        formats: the formats that take it (empty for the options every format takes).
        accelerators: the accelerators whose own options declare it.
    """

    field: OptionField
    owner: type
    formats: tuple[str, ...]
    accelerators: tuple[str, ...] = ()

    def takers(self) -> str:
        """`` Formats: qnn; accelerators: htp.`` for the help text, or nothing for a common option."""
        if self.field.common:
            return ""
        text = f" Formats: {', '.join(self.formats)}"
        if self.accelerators:
            text += f"; accelerators: {', '.join(self.accelerators)}"
        return text + "."


def own_option_kinds() -> list[type]:
    """The own-options dataclasses of the registered formats, then of the accelerators, each once."""
    kinds = [cls.own_options for cls in exporter_classes().values()]
    return list(dict.fromkeys([*(kind for kind in kinds if kind is not None), *accelerator_option_kinds()]))


def option_flags() -> list[OptionFlag]:
    """Every option flag the command line derives: the shared options' (``cli`` ones), then each own-options
    dataclass's.

    Raises:
        ValueError: two options with one name or one flag (a format declared an option another already has).
    """
    classes = exporter_classes()
    flags = [OptionFlag(field, ExportOptions, () if field.common else
                        tuple(name for name, cls in classes.items() if field.name in cls.supported_options))
             for field in SHARED_OPTIONS if field.cli]
    for kind in own_option_kinds():
        formats = tuple(name for name, cls in classes.items() if cls.own_options is kind)
        accelerators = tuple(accelerator_option_kinds().get(kind, ()))
        flags += [OptionFlag(field, kind, formats, accelerators) for field in option_fields(kind)]
    for attribute in ("name", "flag"):
        seen: dict[str, str] = {}
        for flag in flags:
            value = getattr(flag.field, attribute)
            if value in seen:
                raise ValueError(f"option {attribute} {value!r} is declared by {seen[value]} and "
                                 f"{flag.owner.__name__}; rename one")
            seen[value] = flag.owner.__name__
    return flags


def options_from_flags(fmt: str, values: Mapping[str, Any], **others) -> ExportOptions:
    """The ``ExportOptions`` that command-line flag values make for ``--format fmt``.

    Args:
        fmt: the format name or alias.
        values: each derived flag's value by option name, as the command line gives it (a flag that turns
            an option off is True when given).
        others: shared options the command line sets its own way (``labels`` read from a file).

    Raises:
        UsageError: an unknown format or accelerator, a bad own-option value (an unknown ``--soc``), or
            options of a format other than ``fmt`` (named by their flags).
    """
    exporter = get_exporter(fmt)
    shared = {field.name: field.from_flag(values[field.name]) for field in SHARED_OPTIONS if field.cli}
    target = get_target(shared["accelerator"]) if shared["accelerator"] is not None else None
    given = None
    for kind in own_option_kinds():
        instance = made_from_flags(kind, values)
        if changed_fields(instance):
            exporter.check_format_options(instance, target)  # another format's options: refused by their flags
            given = instance
    return ExportOptions(**shared, **others, format_options=given)
