"""Mixed precision found automatically: keep the layers int8 hurts most in float until the gate passes.

The gate (``validation.check_artifact``): with ``--data``, top-1 on the labelled images may drop by at most
``--max-drop`` points; without labels, top-1 agreement with the float model on the images held out of
calibration must be at least ``gates.INT8_MIN_AGREEMENT``. When the all-int8 artifact misses it, the units of
the model are ranked once by the error each adds alone in int8 (``int8_sensitivity``), and the export is
redone with the worst 1, 2, 4, ... units in float, until it passes or a quarter of the model would stay
float (by then int8 buys little, and the report says what was measured).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import ValidationError
from .context import Attempt, ExportContext
from .int8_sensitivity import UnitError, quantizable_units, rank_units

if TYPE_CHECKING:
    import torch

#: the largest share of units the search keeps in float before it gives up
MAX_FLOAT_SHARE = 0.25


@dataclass(frozen=True)
class Int8Outcome:
    """What the search settled on: the passing attempt, the context it ran with (its ``keep_float``), and
    the ranking (None when the all-int8 artifact passed and no ranking was asked for)."""

    attempt: Attempt
    context: ExportContext
    ranking: list[UnitError] | None


def float_counts(units: int) -> list[int]:
    """How many of the worst units each retry keeps in float: 1, 2, 4, ... up to ``MAX_FLOAT_SHARE``."""
    limit = max(1, int(units * MAX_FLOAT_SHARE))
    counts, k = [], 1
    while k < limit:
        counts.append(k)
        k *= 2
    return counts + [limit]


def ranking(model: "torch.nn.Module", context: ExportContext) -> list[UnitError]:
    """The model's units, worst first, ranked on the calibration images."""
    images = context.calibration.images(dict(context.metadata))
    context.progress(f"ranking {len(quantizable_units(model))} layers by int8 error")
    return rank_units(model, np.asarray(images))


def search(model: "torch.nn.Module", context: ExportContext, attempt: Callable[[ExportContext], Attempt],
           can_keep_float: bool) -> Int8Outcome:
    """Run ``attempt(context)`` (write and gate one artifact); on a gate failure retry with more float.

    Args:
        model: the prepared model (the units are its modules).
        context: the export's context; retries use copies with ``keep_float`` set.
        attempt: writes the artifact for a context and checks it, raising ValidationError on a miss.
        can_keep_float: whether the format honours ``keep_float`` (if not, the first miss is final).

    Returns:
        The passing attempt, the context it ran with, and the ranking.

    Raises:
        ValidationError: still missing the gate with ``MAX_FLOAT_SHARE`` of the units in float; the
            message names the most sensitive layers and the last measurement.
    """
    ranked = ranking(model, context) if context.options.int8_ranking else None
    try:
        return Int8Outcome(attempt(context), context, ranked)
    except ValidationError as first:
        failure = first
    if not can_keep_float:
        raise failure
    ranked = ranked or ranking(model, context)
    for count in float_counts(len(ranked)):
        keep = frozenset(u.name for u in ranked[:count])
        context.progress(f"int8 missed the gate; retrying with {count} layer(s) in float: "
                         f"{', '.join(u.name for u in ranked[:count])}")
        retry = dataclasses.replace(context, keep_float=keep)
        try:
            return Int8Outcome(attempt(retry), retry, ranked)
        except ValidationError as exc:
            failure = exc
    worst = ", ".join(f"{u.name} ({u.error:.3f})" for u in ranked[:5])
    reason = str(failure).split("; nothing was written")[0]
    raise ValidationError(f"int8 misses the gate even with the {count} most sensitive of {len(ranked)} layers "
                          f"in float ({reason}); nothing was written. Most sensitive layers (output error "
                          f"alone in int8): {worst}. Calibrate on more pictures like the ones the model will "
                          "see (--calib), or export --half") from None
