"""The one measurement every benchmark script makes: artifacts timed A B C A B C ... in one process, through
lsnet-bench's harness (``lsnet_deploy.bench.run_plan``), so each figure is a full lsnet-bench record: the
machine, the runtime versions, each artifact's sha256 and metadata, the timing policy. ``--results FILE``
appends those records to a JSONL file (``lsnet-bench report FILE`` reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from lsnet_deploy.bench.harness import run_plan
from lsnet_deploy.bench.plan import BenchPlan, CandidateSpec
from lsnet_deploy.bench.results import append_records
from lsnet_deploy.bench.timing import TimingPolicy
from lsnet_deploy.runtimes.registry import runtime_for_path


def add_timing_arguments(parser: argparse.ArgumentParser, rounds: int = 200, warmup: int = 20) -> None:
    """``--rounds``, ``--warmup`` (timed and untimed rounds of every artifact), ``--threads`` (2: the speed
    goals' setting) and ``--results FILE``, the options every timing benchmark here shares."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed rounds (default {rounds})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds first (default {warmup})")
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    parser.add_argument("--results", type=Path, default=None, metavar="FILE",
                        help="append every measurement, with its provenance, to this JSONL file")


def add_workdir_argument(parser: argparse.ArgumentParser) -> None:
    """``--workdir DIR``: where the benchmark keeps its exports, reused by the next run when nothing that
    made them changed (``cached_export.py``); default: a temporary folder, removed at the end."""
    parser.add_argument("--workdir", type=Path, default=None, help="keep/reuse exports here")


@contextlib.contextmanager
def workdir_of(args: argparse.Namespace) -> Iterator[Path]:
    """The folder ``--workdir`` names (created if needed), or a temporary one for the ``with`` block."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = getattr(args, "workdir", None) or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir


def interleaved_records(artifacts: dict[str, Path], args: argparse.Namespace) -> list[dict]:
    """Time ``artifacts`` (label -> file) interleaved with lsnet-bench's harness: each in its own runtime
    (by its suffix; ONNX Runtime with spinning off), on its own fixed input shape, ``args.warmup`` untimed
    and ``args.rounds`` timed rounds, ``args.threads`` threads. Appends the records to ``args.results``
    when given.

    Returns:
        One lsnet-bench record per artifact, in the order given.
    """
    candidates = [CandidateSpec(label=label, runtime=runtime_for_path(path), path=str(path), name=Path(path).stem)
                  for label, path in artifacts.items()]
    plan = BenchPlan(candidates=candidates, threads=args.threads,
                     timing=TimingPolicy(warmup_iters=args.warmup, warmup_time=0, min_iters=args.rounds, min_time=0))
    records = [record for group in run_plan(plan) for record in group]
    if getattr(args, "results", None):
        append_records(args.results, records)
        print(f"{len(records)} records appended to {args.results}")
    return records


def interleaved_medians(artifacts: dict[str, Path], args: argparse.Namespace) -> dict[str, float]:
    """Median latency (ms) per label of ``interleaved_records``."""
    return {r["label"]: r["stats"]["median_ms"] for r in interleaved_records(artifacts, args)}
