"""The Snapdragon SoCs ``--soc`` names, each with the Hexagon HTP generation QNN compiles for.

QNN's HTP backend takes two numbers: ``soc_model`` (Qualcomm's SoC id, ``QNN_SOC_MODEL_*`` in the QNN SDK's
``QnnTypes.h``) and ``htp_arch`` (the Hexagon generation: 69, 73, 75...). A context binary compiled for one
generation does not load on another, so an artifact is compiled for one named SoC. The ids are the ones
ExecuTorch's Qualcomm backend lists (``backends/qualcomm/serialization/qc_schema.py``). Every row here was
compiled and run on the HTP emulator of onnxruntime-qnn 2.7 (v68, SM8350, fails there with a memory error,
so it is not offered).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError, did_you_mean
from ..option_fields import option


@dataclass(frozen=True)
class Soc:
    """One Snapdragon SoC as QNN knows it.

    Attributes:
        name: Qualcomm's part number (``SM8650``).
        soc_model: QNN's SoC id (the QNN EP's ``soc_model`` option).
        htp_arch: the Hexagon HTP generation (the QNN EP's ``htp_arch`` option).
        product: the marketing name.
    """

    name: str
    soc_model: int
    htp_arch: int
    product: str

    @property
    def arch(self) -> str:
        """``v75``."""
        return f"v{self.htp_arch}"

    def provider_options(self) -> dict[str, str]:
        """The QNN EP options that compile for this SoC's HTP."""
        return {"backend_type": "htp", "htp_arch": str(self.htp_arch), "soc_model": str(self.soc_model)}


SOCS = {soc.name: soc for soc in (
    Soc("SM8850", 87, 81, "Snapdragon 8 Elite Gen 5"),
    Soc("SM8750", 69, 79, "Snapdragon 8 Elite"),
    Soc("SM8650", 57, 75, "Snapdragon 8 Gen 3"),
    Soc("SM8550", 43, 73, "Snapdragon 8 Gen 2"),
    Soc("SC8380XP", 60, 73, "Snapdragon X Elite"),
    Soc("SM8475", 42, 69, "Snapdragon 8+ Gen 1"),
    Soc("SM8450", 36, 69, "Snapdragon 8 Gen 1"),
)}
#: what ``--soc`` defaults to: the most widespread current flagship generation (v75)
DEFAULT_SOC = "SM8650"


def get_soc(name: str | None) -> Soc:
    """The SoC named ``name`` (case-insensitive), or the default one for None.

    Raises:
        UsageError: an unknown name, with the closest known one suggested.
    """
    if name is None:
        return SOCS[DEFAULT_SOC]
    key = name.strip().upper()
    if key in SOCS:
        return SOCS[key]
    raise UsageError(f"unknown --soc {name!r}{did_you_mean(key, SOCS, cutoff=0.5)} (supported: {soc_list()})")


def soc_list() -> str:
    """``SM8850 (v81), SM8750 (v79), ...`` for help texts and errors."""
    return ", ".join(f"{soc.name} ({soc.arch})" for soc in SOCS.values())


def soc_help() -> str:
    """``--soc``'s help: the supported SoCs and the default."""
    return (f"Snapdragon SoC (its Hexagon HTP generation) to compile for: {soc_list()}. Default {DEFAULT_SOC}.")


@dataclass(frozen=True)
class QnnOptions:
    """The options of ``--format qnn`` and of ``--accelerator htp`` (``FormatSpec.own_options``): checked when
    made, so an unknown SoC fails before any work."""

    #: Snapdragon SoC (``SOCS``); None for ``DEFAULT_SOC``
    soc: str | None = option(None, flag="--soc", help=soc_help)

    def __post_init__(self):
        if self.soc is not None:
            get_soc(self.soc)
