"""The one measurement every benchmark script makes: artifacts timed A B C A B C ... in one process."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from lsnet_deploy.bench.timing import TimingPolicy, measure_interleaved
from lsnet_deploy.runtimes import runner_for


def add_timing_arguments(parser: argparse.ArgumentParser, rounds: int = 200, warmup: int = 20) -> None:
    """``--rounds``, ``--warmup`` (timed and untimed rounds of every artifact) and ``--threads`` (2: the
    speed goals' setting), the options every benchmark here shares."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed rounds (default {rounds})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds first (default {warmup})")
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")


def add_workdir_argument(parser: argparse.ArgumentParser) -> None:
    """``--workdir DIR``: where the benchmark keeps its exports, reused by the next run (default: a
    temporary folder, removed at the end)."""
    parser.add_argument("--workdir", type=Path, default=None, help="keep/reuse exports here")


@contextlib.contextmanager
def workdir_of(args: argparse.Namespace) -> Iterator[Path]:
    """The folder ``--workdir`` names (created if needed), or a temporary one for the ``with`` block."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir


def interleaved_medians(artifacts: dict[str, Path], shape: tuple[int, ...], rounds: int, warmup: int,
                        threads: int, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, float]:
    """Median latency (ms) of each artifact, each run by the runtime of its suffix (ONNX Runtime with
    spinning off), interleaved in one process so that machine noise hits them alike. ``shapes`` gives
    the input shape of the artifacts that do not take ``shape``."""
    runners = {name: runner_for(path, threads=threads) for name, path in artifacts.items()}
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((shapes or {}).get(name, shape), dtype=np.float32) for name in runners]
    for runner in runners.values():
        runner.activate()
    try:
        policy = TimingPolicy(warmup_iters=warmup, warmup_time=0, min_iters=rounds, min_time=0)
        samples = measure_interleaved(list(runners.values()), inputs, policy)
    finally:
        for runner in runners.values():
            runner.deactivate()
    return {name: statistics.median(t) * 1e3 for name, t in zip(runners, samples)}
