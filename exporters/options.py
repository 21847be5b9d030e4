"""What shapes an export: ``ExportOptions``, the flags that set them, and the checks of their values.

``ExportOptions`` holds the options several formats share; a format's own options are its own dataclass
(``FormatSpec.own_options``), carried in ``ExportOptions.format_options``.

The checks here need neither a format nor a model; a format's own refusals are ``Exporter.check_options``,
and the export plan (``pipeline.check_export``) runs both once, before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..accelerators.targets import accelerator_help
from ..errors import UsageError
from ..gates import DEFAULT_MAX_DROP, INT8_HELP
from ..option_fields import changed_fields, option, option_fields

#: called with a short message as each export step starts
Progress = Callable[[str], None]
#: a format's own options dataclass
FormatOptions = TypeVar("FormatOptions")


@dataclass
class ExportOptions:
    """Everything that shapes an export. Fields left at their defaults are 'not set'."""

    batch: int = option(1, flag="--batch", common=True, help="Batch size (the minimum with --dynamic).")
    dynamic: bool = option(False, flag="--dynamic", help="Dynamic batch dimension. The spatial size stays fixed "
                           "(the attention bias is computed for one token grid); see --dynamic-hw.")
    #: dynamic height and width (backbones in the ``matrix`` bias mode; ONNX and ORT)
    dynamic_hw: bool = option(False, flag="--dynamic-hw", help="Dynamic height and width: with --task features "
                              "--bias-mode matrix only; the attention bias is resized in the graph at every input "
                              "(ONNX Resize cubic, a=-0.75, half_pixel, as PyTorch's bicubic). --imgsz is the size "
                              "validated and written in the metadata.")
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
    #: class names (``lsnet-export --labels FILE`` reads them from a file)
    labels: list[str] | None = option(None, flag="--labels", common=True, cli=False)
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
    #: the accelerator the artifact targets (``lsnet_deploy.accelerators.targets``), None for none
    accelerator: str | None = option(None, flag="--accelerator", common=True, help=accelerator_help)
    #: keep an artifact the accelerator cannot take whole (the operators it leaves run on the CPU)
    allow_fallback: bool = option(False, flag="--allow-fallback", common=True, help="With --accelerator: keep an "
                                  "artifact the accelerator cannot take whole (the operators it leaves run on the "
                                  "CPU, listed in the summary) instead of refusing it.")
    #: the format's own options: an instance of its spec's ``own_options`` dataclass (``CoreMLOptions``,
    #: ``TensorRTOptions``, ``QnnOptions``...), or of its accelerator's; None for their defaults
    format_options: Any = option(None, flag=None)

    def changed(self) -> set[str]:
        """Names of the shared options set to something other than their default (``format_options`` aside)."""
        return set(changed_fields(self)) - {"format_options"}

    def own(self, kind: type[FormatOptions]) -> FormatOptions:
        """The format's own options of dataclass ``kind``: those given, else ``kind``'s defaults."""
        return self.format_options if isinstance(self.format_options, kind) else kind()

    def own_values(self) -> dict[str, Any]:
        """The given format options as a name -> value map (empty when none were given)."""
        return dataclasses.asdict(self.format_options) if self.format_options is not None else {}

    @property
    def precision(self) -> str:
        """``int8``, ``float16`` or ``float32``."""
        return "int8" if self.int8 else "float16" if self.half else "float32"


#: the shared options, each with its flag and help
SHARED_OPTIONS = option_fields(ExportOptions)
#: options every format understands
COMMON_OPTIONS = frozenset(f.name for f in SHARED_OPTIONS if f.common)
#: the CLI flag of each shared option, for messages
OPTION_FLAGS = {f.name: f.flag for f in SHARED_OPTIONS}

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
