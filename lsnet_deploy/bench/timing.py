"""The clock: warm-up, then interleaved timed iterations until a count and a minimum time are reached.

The harness, not the runtime, measures: ``perf_counter`` before ``runner.infer(x)`` and after
``runner.synchronize()``, so queued device work is inside the measurement and every runtime is timed
the same way. Several candidates run interleaved (A B C A B C ...): a machine that speeds up or slows
down during the run (thermal throttling, a neighbour's job) moves all of them alike, so their ratios hold.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

Clock = Callable[[], float]

#: timed iterations a time-bounded run makes at least (what trtexec does by default)
DEFAULT_MIN_ITERS = 10
DEFAULT_MIN_TIME = 2.0
DEFAULT_WARMUP_ITERS = 10
DEFAULT_WARMUP_TIME = 0.5


class Timeable(Protocol):
    """What the clock needs from a runner (every ``lsnet_deploy.runtimes.Runner`` has it)."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def synchronize(self) -> None: ...


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how long to measure.

    Warm-up runs until each candidate has done ``warmup_iters`` iterations and spent ``warmup_time``
    seconds in them. Measurement runs until each candidate has ``min_iters`` timed iterations and
    ``min_time`` seconds of them; interleaving gives every candidate the same count.

    Attributes:
        warmup_iters: untimed iterations per candidate, at least.
        warmup_time: seconds of untimed iterations per candidate, at least.
        min_iters: timed iterations per candidate, at least (``--iters``).
        min_time: seconds of timed iterations per candidate, at least (``--min-time``; 0 for a fixed count).
    """

    warmup_iters: int = DEFAULT_WARMUP_ITERS
    warmup_time: float = DEFAULT_WARMUP_TIME
    min_iters: int = DEFAULT_MIN_ITERS
    min_time: float = DEFAULT_MIN_TIME

    def __post_init__(self):
        if self.warmup_iters < 0 or self.warmup_time < 0:
            raise ValueError("warm-up iterations and time cannot be negative")
        if self.min_iters < 1:
            raise ValueError(f"at least one timed iteration is needed, got {self.min_iters}")
        if self.min_time < 0:
            raise ValueError(f"minimum time cannot be negative, got {self.min_time}")

    @classmethod
    def from_options(cls, iters: int | None = None, min_time: float | None = None,
                     warmup: int | None = None, warmup_time: float | None = None) -> "TimingPolicy":
        """The policy for command-line options: ``--iters`` alone is an exact count, ``--min-time`` alone
        adapts the count (at least 10), both are two minima, neither means 2 s and at least 10."""
        if iters is not None and min_time is None:
            min_time = 0.0
        return cls(warmup_iters=DEFAULT_WARMUP_ITERS if warmup is None else warmup,
                   warmup_time=DEFAULT_WARMUP_TIME if warmup_time is None else warmup_time,
                   min_iters=DEFAULT_MIN_ITERS if iters is None else iters,
                   min_time=DEFAULT_MIN_TIME if min_time is None else min_time)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TimingPolicy":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def time_once(runner: Timeable, x: np.ndarray, clock: Clock = time.perf_counter) -> float:
    """Seconds for one ``infer`` plus ``synchronize``."""
    start = clock()
    runner.infer(x)
    runner.synchronize()
    return clock() - start


def _run_rounds(runners: Sequence[Timeable], inputs: Sequence[np.ndarray], min_iters: int, min_time: float,
                clock: Clock) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in runners]
    totals = [0.0] * len(runners)
    while any(len(s) < min_iters for s in samples) or any(t < min_time for t in totals):
        for i, (runner, x) in enumerate(zip(runners, inputs)):
            elapsed = time_once(runner, x, clock)
            samples[i].append(elapsed)
            totals[i] += elapsed
    return samples


def measure_interleaved(runners: Sequence[Timeable], inputs: Sequence[np.ndarray], policy: TimingPolicy,
                        clock: Clock = time.perf_counter) -> list[list[float]]:
    """Warm up, then time every runner in turn, round after round.

    Args:
        runners: active runners (or anything with ``infer`` and ``synchronize``).
        inputs: one input batch per runner, fed unchanged on every iteration.
        policy: warm-up and measurement lengths.
        clock: seconds as a float; ``time.perf_counter`` except in tests.

    Returns:
        The timed durations in seconds, one list per runner, all the same length; warm-up excluded.
    """
    if len(runners) != len(inputs):
        raise ValueError("one input per runner is needed")
    if not runners:
        return []
    if policy.warmup_iters or policy.warmup_time:
        _run_rounds(runners, inputs, max(policy.warmup_iters, 1), policy.warmup_time, clock)
    return _run_rounds(runners, inputs, policy.min_iters, policy.min_time, clock)
