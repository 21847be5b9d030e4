"""Format specs: each export format declared once, read by its exporter and by its runner.

A ``FormatSpec`` holds the facts both sides need: the format's name and aliases, the suffixes of its files,
the extra that installs it, the runtime that runs it (and that runtime's aliases), where its metadata lives
(``MetadataStore``, one codec: ``metadata_codec``), the shared export options it takes beyond the common ones,
and its own options dataclass (``own_options``: the options no other format takes, each field with its flag
and help, from which ``lsnet-export`` builds those flags).
A format's spec is declared beside its runner (``runtimes/<runtime>_runner.py``: torch-free, so that
artifact-only installs read it too); the exporter class (``exporters/<format>_format.py``) and the runner
class both set ``spec = <SPEC>`` and take those facts from it (``Exporter.__init_subclass__``,
``Runner.__init_subclass__``). Adding a format is a spec, an exporter, a runner, tests and an extra: no
central table to edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .metadata_codec import METADATA_ENTRY


class MetadataStore(Enum):
    """Where an artifact keeps its metadata map."""

    #: the format holds a string map natively (ONNX ``metadata_props``, Core ML user-defined metadata)
    NATIVE_MAP = "native map"
    #: one JSON text under ``metadata_codec.METADATA_ENTRY`` inside the file (a LiteRT flatbuffer metadata
    #: entry, an ExecuTorch constant method)
    ENTRY = "entry"
    #: a JSON file beside the artifact (``metadata_codec.sidecar_path``): engines that embed nothing
    SIDECAR = "sidecar"

    def describe(self) -> str:
        """Where the map is, in words, for docs and ``lsnet-inspect``."""
        return {MetadataStore.NATIVE_MAP: "the format's own metadata map",
                MetadataStore.ENTRY: f"the embedded entry {METADATA_ENTRY!r} (one JSON object)",
                MetadataStore.SIDECAR: "a sidecar JSON file, <artifact>.json"}[self]


@dataclass(frozen=True)
class FormatSpec:
    """One export format, declared once.

    Attributes:
        name: the format's name (``--format``).
        aliases: other names ``--format`` accepts.
        suffixes: the suffixes of its files, the default first (lower case, with the dot).
        extra: the lsnet-deploy extra that installs what exports and runs it (``pip install "lsnet-deploy[X]"``).
        runtime: the runtime (``lsnet_deploy.runtimes`` name) that runs and validates its files.
        runtime_aliases: other names ``--runtime`` accepts for that runtime.
        description: one line for ``lsnet-export --help``.
        metadata: where its files keep the metadata map.
        options: the ``ExportOptions`` fields it takes beyond the common ones (``--half``, ``--opset``...);
            every other option set is refused with its flag named.
        own_options: the dataclass of the options only it takes (``option_fields.option`` fields; passed as
            ``ExportOptions.format_options``), or None.
    """

    name: str
    aliases: tuple[str, ...]
    suffixes: tuple[str, ...]
    extra: str
    runtime: str
    description: str
    metadata: MetadataStore
    options: frozenset[str] = frozenset()
    own_options: type | None = None
    runtime_aliases: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.suffixes or any(s != s.lower() or not s.startswith(".") for s in self.suffixes):
            raise ValueError(f"format {self.name!r}: suffixes must be lower case and start with a dot")

    @property
    def suffix(self) -> str:
        """The default suffix of its files."""
        return self.suffixes[0]
