"""The format registry: every exporter class under its name and aliases (``lsnet_deploy.registry``).

Format modules register their class with ``@register_exporter``; ``exporters/__init__.py`` imports each
module once, so the registry is complete whenever ``lsnet_deploy.exporters`` is imported.
"""

from __future__ import annotations

from ..errors import UsageError
from ..registry import Registry
from .exporter import Exporter

_FORMATS: Registry[type[Exporter]] = Registry("format")


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make an exporter available under its name and aliases.

    Raises:
        ValueError: a name or alias another format already has, or a second format that declares itself
            the default of its runtime (``Exporter.default_for_runtime``).
    """
    if cls.default_for_runtime:
        other = next((name for name, known in _FORMATS.entries().items()
                      if known.runtime == cls.runtime and known.default_for_runtime and name != cls.name), None)
        if other is not None:
            raise ValueError(f"{cls.__name__} is the default format of runtime {cls.runtime!r}, which format "
                             f"{other!r} already is; set default_for_runtime = False on one of them")
    return _FORMATS.add(cls.name, cls, cls.aliases, cls.__name__)


def exporter_classes() -> dict[str, type[Exporter]]:
    """Every registered format's exporter class by name, in registration order (for help texts)."""
    return _FORMATS.entries()


def available_formats() -> list[str]:
    """Registered format names (aliases excluded)."""
    return list(_FORMATS.entries())


def get_exporter(name: str) -> Exporter:
    """The exporter for a format name or alias.

    Raises:
        UsageError: unknown name, with the closest valid one suggested.
    """
    return _FORMATS.get(name.lstrip("."))()


def format_for_runtime(runtime: str) -> str:
    """The export format whose artifacts ``runtime`` runs by default (``ort`` -> ``onnx``, not ``ort``, whose
    exporter declares ``default_for_runtime = False``): the choice is declared, not the import order.

    Raises:
        UsageError: no registered format produces artifacts for that runtime.
    """
    for name, cls in _FORMATS.entries().items():
        if cls.runtime == runtime and cls.default_for_runtime:
            return name
    raise UsageError(f"no export format produces artifacts for runtime {runtime!r}")

