"""What shapes an export: ``ExportOptions``, the flags that set them, and the checks of their values.

The checks here need neither a format nor a model; a format's own refusals are ``Exporter.check_options``,
and the export plan (``pipeline.check_export``) runs both once, before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..gates import DEFAULT_MAX_DROP, INT8_HELP

#: called with a short message as each export step starts
Progress = Callable[[str], None]


def option(default=None, *, flag: str | None = None, common: bool = False, help: str = ""):
    """An ``ExportOptions`` field: its default, the CLI flag that sets it (``lsnet-export`` and the messages
    read it here), whether every format takes it (``common``; the others are taken by the formats whose
    spec lists them: ``FormatSpec.options``), and its help text where the flag means one thing everywhere."""
    return dataclasses.field(default=default, metadata={"flag": flag, "common": common, "help": help})


@dataclass
class ExportOptions:
    """Everything that shapes an export. Fields left at their defaults are 'not set'."""

    batch: int = option(1, flag="--batch", common=True)
    dynamic: bool = option(False, flag="--dynamic")
    #: dynamic height and width (backbones in the ``matrix`` bias mode; ONNX and ORT)
    dynamic_hw: bool = option(False, flag="--dynamic-hw")
    half: bool = option(False, flag="--half", help="float16 (float32 kept where half precision is unsafe; "
                        "float32 inputs and outputs). Without it every format exports float32 except Core ML, "
                        "which computes in float16 unless --float32 (its Neural Engine runs float16 only).")
    int8: bool = option(False, flag="--int8", help=INT8_HELP)
    calib: Path | None = option(None, flag="--calib", help="Directory of calibration images for --int8 (every "
                                "fifth is held out to check the result).")
    opset: int | None = option(None, flag="--opset", help="ONNX opset (default 18).")
    simplify: bool = option(True, flag="--no-simplify", help="Skip onnxsim and the ONNX Runtime graph rewrites.")
    ska: str = option("auto", flag="--ska", common=True)
    fuse: bool = option(True, flag="--no-fuse", common=True,
                        help="Keep BatchNorms and re-parameterizable branches.")
    validate: bool = option(True, flag="--no-validate", common=True, help="Skip the comparison with PyTorch.")
    #: where the artifact is validated and ``--data``-gated: ``host`` (this machine's runtime) or ``arm``
    #: (the aarch64 build of the format's runtime, emulated: ``runtimes.arm_runners``)
    validate_on: str = option("host", flag="--validate-on", common=True)
    labels: list[str] | None = option(None, flag="--labels", common=True)
    #: an ImageFolder of labelled pictures: the artifact's top-1 there may drop by at most ``max_drop``
    #: points below the PyTorch model's
    data: Path | None = option(None, flag="--data", common=True, help="ImageFolder of labelled pictures: the "
                               "artifact's top-1 there is measured against PyTorch's and gated by --max-drop.")
    max_drop: float = option(DEFAULT_MAX_DROP, flag="--max-drop", common=True,
                             help="Largest top-1 drop (points) allowed on --data.")
    #: explicit folder -> class entries for ``data`` (``accuracy.parse_class_map``: a file or FOLDER=CLASS,...)
    class_map: str | None = option(None, flag="--class-map", common=True)
    #: int8: report the per-layer sensitivity ranking (``details["int8_ranking"]``), even when all-int8 passes
    int8_ranking: bool = option(False, flag="--int8-ranking", common=True, help="With --int8: print the layers "
                                "ranked by the error each adds alone in int8 (those the mixed-precision search keeps "
                                "in float first).")
    # Core ML
    deployment_target: str | None = option(None, flag="--target", help="Minimum deployment target (default "
                                           "iOS16).")
    image_input: bool = option(True, flag="--tensor-input", help="Plain tensor input instead of an image.")
    float32: bool = option(False, flag="--float32", help="Core ML: float32 compute (CPU and GPU only: the "
                           "Neural Engine runs float16, so float16 is Core ML's default).")
    # TensorRT
    workspace: float | None = option(None, flag="--workspace", help="Builder workspace in GiB.")
    dla_core: int | None = option(None, flag="--dla-core", help="Build for this DLA core (Jetson).")
    timing_cache: Path | None = option(None, flag="--timing-cache", help="Timing cache file (reused across "
                                       "builds).")
    max_batch: int | None = option(None, flag="--max-batch", help="Largest batch of the --dynamic profile.")
    #: the accelerator the artifact targets (``lsnet_deploy.accelerators.targets``), None for none
    accelerator: str | None = option(None, flag="--accelerator", common=True)
    #: keep an artifact the accelerator cannot take whole (the operators it leaves run on the CPU)
    allow_fallback: bool = option(False, flag="--allow-fallback", common=True)
    #: Snapdragon SoC (``lsnet_deploy.accelerators.qnn_socs``) of --format qnn and --accelerator htp
    soc: str | None = option(None, flag="--soc")

    def changed(self) -> set[str]:
        """Names of the options set to something other than their default."""
        defaults = ExportOptions()
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}

    @property
    def precision(self) -> str:
        """``int8``, ``float16`` or ``float32``."""
        return "int8" if self.int8 else "float16" if self.half else "float32"


#: options every format understands
COMMON_OPTIONS = frozenset(f.name for f in dataclasses.fields(ExportOptions) if f.metadata["common"])
#: the CLI flag of each option, for the CLI and messages
OPTION_FLAGS = {f.name: f.metadata["flag"] for f in dataclasses.fields(ExportOptions)}
#: the help text of each option whose meaning does not depend on the command line around it
OPTION_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(ExportOptions) if f.metadata["help"]}
#: each option's default, for the CLI
OPTION_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExportOptions)}

#: the ``--validate-on`` choices: this machine's runtime, or the ARM build of it (emulated)
VALIDATE_ON = ("host", "arm")



def check_values(options: ExportOptions) -> None:
    """Refuse option values and combinations that make no sense for any format (one message each).

    Raises:
        UsageError: a batch below 1, an unknown ``--validate-on``, two precisions, ``--int8`` without
            ``--calib`` (or the reverse), ``--int8-ranking`` without ``--int8``, ``--max-drop`` or
            ``--class-map`` without ``--data``, a negative ``--max-drop``.
    """
    if options.batch < 1:
        raise UsageError(f"--batch must be a positive integer, got {options.batch}")
    if options.validate_on not in VALIDATE_ON:
        raise UsageError(f"unknown --validate-on {options.validate_on!r}; choose {' or '.join(VALIDATE_ON)}")
    if options.half and options.int8:
        raise UsageError("--half and --int8 are exclusive; pick one precision")
    if options.int8 and options.calib is None:
        raise UsageError("--int8 needs calibration images: --calib DIR")
    if options.calib is not None and not options.int8:
        raise UsageError("--calib is only used with --int8")
    if options.int8_ranking and not options.int8:
        raise UsageError("--int8-ranking ranks layers for an --int8 export; add --int8 --calib DIR")
    if options.max_drop != DEFAULT_MAX_DROP and options.data is None:
        raise UsageError("--max-drop bounds the accuracy drop measured on --data DIR; add --data")
    if not options.max_drop >= 0:
        raise UsageError(f"--max-drop is in top-1 points and must be 0 or more, got {options.max_drop}")
    if options.class_map is not None and options.data is None:
        raise UsageError("--class-map maps the class folders of --data DIR; add --data")
