"""Latency statistics: what one list of timed iterations says about a runtime.

Everything here works on plain seconds, so samples measured anywhere (this process, a remote harness, a
phone's native benchmark binary) are summarized the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the timed iterations of one candidate (milliseconds, images per second).

    ``throughput`` is images per second over the timed work: ``batch / mean``. It is what the reference
    code's speed script reports (with ``batch`` 2048 on a GPU), and for batch 1 the rate a loop of calls
    sustains.
    """

    n: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    total_s: float
    throughput: float

    def to_dict(self) -> dict:
        """JSON-ready form (floats rounded to nanoseconds)."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyStats":
        """Inverse of ``to_dict``."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def summarize(samples_s: Sequence[float], batch: int = 1) -> LatencyStats:
    """Summarize timed iterations.

    Percentiles interpolate linearly between samples (NumPy's default), so p99 of fewer than 100 samples
    lies between the two slowest.

    Args:
        samples_s: duration of each timed iteration, in seconds (warm-up excluded).
        batch: images per iteration.

    Returns:
        The statistics in milliseconds, throughput in images per second.

    Raises:
        ValueError: no samples, a negative or non-finite sample, or a batch below 1.
    """
    if len(samples_s) == 0:
        raise ValueError("no timed iterations to summarize")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    values = np.asarray(samples_s, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("latency samples must be finite and non-negative")
    ms = values * 1e3
    mean_s = float(values.mean())
    return LatencyStats(
        n=int(values.size),
        median_ms=float(np.median(ms)),
        mean_ms=float(ms.mean()),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        std_ms=float(ms.std(ddof=1)) if values.size > 1 else 0.0,
        total_s=float(values.sum()),
        throughput=batch / mean_s if mean_s > 0 else math.inf,
    )


def ratio(value: float, baseline: float) -> float | None:
    """``value / baseline`` (None when the baseline is zero or missing)."""
    if not baseline or baseline <= 0 or value is None:
        return None
    return value / baseline
