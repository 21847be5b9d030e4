"""The statistics and the clock, on a deterministic fake runner (the one place a fake is right: real
runtimes never take the same time twice)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lsnet_deploy.bench.harness import Prepared, measure_group
from lsnet_deploy.bench.plan import BenchPlan, CandidateSpec
from lsnet_deploy.bench.stats import LatencyStats, ratio, summarize
from lsnet_deploy.bench.timing import TimingPolicy, measure_interleaved, time_once


class FakeClock:
    """A clock that moves only when a fake runner completes work."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """``infer`` queues work of the next scripted duration; ``synchronize`` completes it, as a GPU stream
    does. A harness that stopped its clock without synchronizing would measure zero."""

    runtime = "fake"

    def __init__(self, name, clock, durations, log):
        self.name, self.clock, self.log = name, clock, log
        self.durations = iter(durations)
        self.pending = 0.0

    def infer(self, x):
        self.pending = next(self.durations)
        self.log.append(self.name)
        return np.zeros((x.shape[0], 10), dtype=np.float32)

    def synchronize(self):
        self.clock.now += self.pending
        self.pending = 0.0

    def info(self):
        return {"runtime": self.runtime, "runtime_version": "0", "threads": 1}

    def deactivate(self):
        pass


X = np.zeros((1, 3, 8, 8), dtype=np.float32)


def test_summarize_exact_values():
    samples = [i / 1000 for i in range(1, 11)]  # 1..10 ms
    stats = summarize(samples, batch=4)
    assert stats.n == 10
    np.testing.assert_allclose(
        [stats.median_ms, stats.mean_ms, stats.p90_ms, stats.p99_ms, stats.min_ms, stats.max_ms],
        [5.5, 5.5, 9.1, 9.91, 1.0, 10.0], rtol=1e-12)
    np.testing.assert_allclose(stats.std_ms, math.sqrt(sum((v - 5.5) ** 2 for v in range(1, 11)) / 9), rtol=1e-12)
    np.testing.assert_allclose(stats.throughput, 4 / 0.0055, rtol=1e-12)  # images/s = batch / mean
    np.testing.assert_allclose(stats.total_s, 0.055, rtol=1e-12)
    assert LatencyStats.from_dict(stats.to_dict()).median_ms == pytest.approx(5.5, abs=1e-6)


def test_summarize_single_sample_and_bad_input():
    one = summarize([0.002])
    assert (one.n, one.std_ms, one.median_ms, one.p99_ms) == (1, 0.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="no timed iterations"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([0.001, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        summarize([-0.001])
    with pytest.raises(ValueError, match="batch"):
        summarize([0.001], batch=0)


def test_ratio():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(3.0, 0.0) is None


def test_warmup_is_excluded_and_synchronize_is_inside_the_clock():
    clock, log = FakeClock(), []
    warm = [1.0, 1.0, 1.0]                       # slow first iterations (allocation, JIT, caches)
    timed = [i / 1000 for i in range(1, 11)]
    runner = FakeRunner("A", clock, warm + timed, log)
    policy = TimingPolicy(warmup_iters=3, warmup_time=0, min_iters=10, min_time=0)
    (samples,) = measure_interleaved([runner], [X], policy, clock)
    np.testing.assert_allclose(samples, timed, rtol=0, atol=1e-12)
    assert len(log) == 13
    assert time_once(FakeRunner("B", clock, [0.25], []), X, clock) == 0.25


def test_warmup_time_is_a_minimum():
    clock, log = FakeClock(), []
    runner = FakeRunner("A", clock, itertools.repeat(0.25), log)
    policy = TimingPolicy(warmup_iters=1, warmup_time=1.0, min_iters=2, min_time=0)
    measure_interleaved([runner], [X], policy, clock)
    assert len(log) == 4 + 2  # 4 x 0.25 s reach the warm-up time, then 2 timed


@pytest.mark.parametrize("duration, min_iters, min_time, expected", [
    (0.125, 3, 1.0, 8),      # time decides: 8 x 0.125 s = 1 s
    (0.125, 12, 1.0, 12),    # count decides
    (0.5, 1, 0.0, 1),        # a fixed count of one
    (0.001, 10, 0.0, 10),    # --iters alone is exact
])
def test_iteration_count_adapts_to_a_minimum_time(duration, min_iters, min_time, expected):
    clock = FakeClock()
    runner = FakeRunner("A", clock, itertools.repeat(duration), [])
    (samples,) = measure_interleaved([runner], [X], TimingPolicy(0, 0, min_iters, min_time), clock)
    assert len(samples) == expected
    assert sum(samples) >= min_time


def test_candidates_run_interleaved_with_equal_counts():
    clock, log = FakeClock(), []
    fast = FakeRunner("A", clock, itertools.repeat(0.125), log)
    slow = FakeRunner("B", clock, itertools.repeat(0.5), log)
    policy = TimingPolicy(warmup_iters=2, warmup_time=0, min_iters=1, min_time=1.0)
    a, b = measure_interleaved([fast, slow], [X, X], policy, clock)
    assert log == ["A", "B"] * (2 + 8)          # A B A B ..., warm-up included
    assert len(a) == len(b) == 8                 # the fast one sets the count; the slow one keeps pace
    np.testing.assert_allclose(a, 0.125)
    np.testing.assert_allclose(b, 0.5)


def test_policy_from_options_and_bad_values():
    assert TimingPolicy.from_options(iters=50) == TimingPolicy(10, 0.5, 50, 0.0)
    assert TimingPolicy.from_options(min_time=3) == TimingPolicy(10, 0.5, 10, 3.0)
    assert TimingPolicy.from_options(iters=5, min_time=1, warmup=0, warmup_time=0) == TimingPolicy(0, 0, 5, 1.0)
    assert TimingPolicy.from_options() == TimingPolicy(10, 0.5, 10, 2.0)
    with pytest.raises(ValueError):
        TimingPolicy(min_iters=0)
    with pytest.raises(ValueError):
        TimingPolicy(min_time=-1)
    with pytest.raises(ValueError, match="one input per runner"):
        measure_interleaved([FakeRunner("A", FakeClock(), [], [])], [], TimingPolicy())


def test_group_records_ratios_against_the_first():
    clock, log = FakeClock(), []
    durations = {"A": [0.004, 0.002, 0.002, 0.003], "B": [0.006, 0.003, 0.003, 0.009]}
    items = []
    for name in "AB":
        runner = FakeRunner(name, clock, durations[name], log)
        spec = CandidateSpec(label=name, runtime="fake", path=f"{name}.onnx")
        items.append(Prepared(spec, runner, "cpu", name, "float32", {"kind": "artifact"},
                              input=np.zeros((2, 3, 8, 8), np.float32), output_shape=[2, 10]))
    plan = BenchPlan(candidates=[i.spec for i in items], timing=TimingPolicy(1, 0, 3, 0))
    records = measure_group(items, plan, run_id="r1", index=0, clock=clock)
    a, b = records
    assert a["stats"]["median_ms"] == pytest.approx(2.0) and b["stats"]["median_ms"] == pytest.approx(3.0)
    assert a["ratio_to_first"] == 1.0 and b["ratio_to_first"] == pytest.approx(1.5)
    assert a["stats"]["throughput"] == pytest.approx(2 / (0.007 / 3))   # batch 2 over the mean
    assert [r["position"] for r in records] == [0, 1]
    assert b["interleaved_with"] == ["A", "B"] and b["first_label"] == "A"
    assert a["run_id"] == b["run_id"] == "r1"
