"""Every limit an artifact must meet, in one place, and the messages that quote them.

An export is compared with the user's PyTorch model (``verify``) and, with labelled data, gated on top-1
(``exporters.validation``). The numbers below are those limits; every message, help text and docstring that
quotes one reads it from here, so changing a limit changes what the tools say.
"""

from __future__ import annotations

import math

#: the largest output error an artifact may show, relative to the reference's largest magnitude (the
#: conformance definition), by precision. int8 has no error bound: post-training int8 error grows with each
#: model's activation ranges (a few percent of the largest logit is normal), so a fixed limit would refuse
#: good models; what marks a broken calibration is predictions that stop agreeing (``INT8_MIN_AGREEMENT``)
TOLERANCES: dict[str, float | None] = {"float32": 1e-3, "float16": 2e-2, "int8": None}
#: the tolerance of a precision ``TOLERANCES`` does not name
FLOAT32_TOLERANCE = TOLERANCES["float32"]

#: without labelled data, an int8 artifact must agree with the float model's top-1 this often on the
#: calibration images held out (real pictures, not noise); healthy post-training int8 reaches it
INT8_MIN_AGREEMENT = 0.97
#: the top-1 agreement with PyTorch each precision must reach on the validation inputs (class scores only)
MIN_TOP1: dict[str, float] = {"float32": 1.0, "float16": 0.9, "int8": INT8_MIN_AGREEMENT}

#: the default ``--max-drop``: top-1 points an artifact may lose against PyTorch on ``--data``
DEFAULT_MAX_DROP = 1.0

#: held-out images below which a single changed prediction already fails the agreement gate
AGREEMENT_RESOLUTION = math.ceil(1 / (1 - INT8_MIN_AGREEMENT) - 1e-9)


def as_percent(fraction: float) -> str:
    """A gate's fraction as the messages write it: ``0.97`` -> ``97%``."""
    return f"{fraction:.0%}"


#: ``INT8_MIN_AGREEMENT`` as messages write it
INT8_AGREEMENT_TEXT = as_percent(INT8_MIN_AGREEMENT)

#: what to try when an artifact of this precision drifts from PyTorch (the end of a refusal's message)
DRIFT_HINTS = {
    "float32": "Try another --ska form, or report a bug with the command line",
    "float16": "Export float32 (drop --half), or try another --ska form",
    "int8": "Calibrate on more pictures like the ones the model will see (--calib), or use --half",
}
#: what to try when an artifact drifts on its accelerator (which computes float models in float16)
ACCELERATOR_DRIFT_HINT = ("On {name}, float models compute in float16, where some SKA forms lose their numbers: "
                          "use --ska {ska} (the form measured for it)")
#: what to try when an accelerator cannot take the whole model
FALLBACK_HINT = "Use --ska {ska} (the form measured for it), or keep the CPU fallback with --allow-fallback"


def int8_agreement_failure(agreement: float, samples: int) -> str:
    """Why an int8 artifact failed the agreement gate, for its refusal."""
    return (f"int8 top-1 agreement with the float model is {agreement:.1%} on {samples} held-out calibration "
            f"images, below {INT8_AGREEMENT_TEXT}")


def accuracy_drop_failure(data, pytorch_top1: float, artifact_top1: float, what: str, precision: str,
                          count: int, max_drop: float) -> str:
    """Why an artifact failed the ``--data`` gate (a top-1 drop beyond ``--max-drop``), for its refusal."""
    drop = pytorch_top1 - artifact_top1
    return (f"top-1 on {data} drops from {pytorch_top1:.2f}% (PyTorch) to {artifact_top1:.2f}% ({what}, "
            f"{precision}) on {count} images: {drop:.2f} points, more than --max-drop {max_drop:g}")


#: ``lsnet-export --int8``'s help: the gate it passes
INT8_HELP = (f"int8, calibrated on --calib images and gated: top-1 agreement >= {INT8_AGREEMENT_TEXT} on held-out "
             "images, or --max-drop on --data; layers that miss are kept float automatically.")
