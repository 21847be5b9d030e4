"""Bounded fuzzing runs of every reader: a fixed number of inputs, a fixed seed, the committed corpus.

With atheris installed each target runs coverage-guided in a subprocess (libFuzzer exits its process);
without it, the same targets replay the seed corpus and seeded random mutations of it, so the rules
are still checked. Longer campaigns: ``tests/test_fuzz/run_fuzz.py`` (see its docstring).
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .targets import CORPUS, SCRATCH_ENV, TARGETS

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parents[0] / "data" / "fuzz_corpus"
RUNS = {"checkpoint": 600, "checkpoint_model": 300, "metadata": 400, "labels": 1000, "image": 600}
SEED = 1
PER_INPUT_TIMEOUT_S = 10
HAS_ATHERIS = importlib.util.find_spec("atheris") is not None


def _system_scratch() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("lsnet-fuzz-*"))


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The targets' scratch folders go under tmp_path, each removed after its input; none lands in /tmp."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv(SCRATCH_ENV, str(folder))
    before = _system_scratch()
    yield folder
    assert not list(folder.iterdir()), "an input's scratch folder was left behind"
    assert _system_scratch() <= before, "a scratch folder was left in the system's temp dir"


def _corpus_copy(target: str, tmp_path: Path) -> Path:
    copy = tmp_path / "corpus"
    shutil.copytree(SEEDS / CORPUS[target], copy)
    return copy


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """A few byte flips, truncations, duplications or insertions (the fallback without atheris)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if out and choice < 0.4:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif out and choice < 0.6:
            del out[rng.randrange(len(out)):]
        elif out and choice < 0.8:
            start = rng.randrange(len(out))
            out[start:start] = out[start:start + rng.randint(1, 64)]
        else:
            out[rng.randrange(len(out) + 1):0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(out)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seed_corpus_is_committed_and_small(target):
    files = [p for p in (SEEDS / CORPUS[target]).iterdir() if p.is_file()]
    assert files and all(p.stat().st_size < 8192 for p in files)


@pytest.mark.skipif(not HAS_ATHERIS, reason="atheris is not installed: the mutation replay below runs instead")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bounded_atheris_run(target, tmp_path, scratch):
    corpus = _corpus_copy(target, tmp_path)
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    command = [sys.executable, str(HERE / "run_fuzz.py"), target, str(corpus), f"-runs={RUNS[target]}",
               f"-seed={SEED}", f"-timeout={PER_INPUT_TIMEOUT_S}", "-rss_limit_mb=4096",
               f"-artifact_prefix={crashes}/"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300,
                            env={**os.environ, SCRATCH_ENV: str(scratch)})
    found = sorted(p.name for p in crashes.iterdir())
    assert result.returncode == 0 and not found, f"{found}\n{result.stderr[-4000:]}"
    assert f"Done {RUNS[target]} runs" in result.stderr
    assert not list(work.iterdir()), "the fuzzed readers wrote into the working directory"


@pytest.mark.skipif(HAS_ATHERIS, reason="covered by the coverage-guided run")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bounded_mutation_replay(target, scratch):
    rng = random.Random(SEED)
    seeds = [p.read_bytes() for p in sorted((SEEDS / CORPUS[target]).iterdir()) if p.is_file()]
    for data in seeds:
        TARGETS[target](data)
    for _ in range(RUNS[target] // 4):
        TARGETS[target](_mutate(rng.choice(seeds), rng))


def test_regressions_found_by_fuzzing_stay_fixed(scratch):
    """Inputs the fuzzer found that once escaped the project's errors."""
    for target, data in REGRESSIONS:
        TARGETS[target](data)


REGRESSIONS: list[tuple[str, bytes]] = [
    ("checkpoint", b"XK"),  # struct.error from torch's legacy unpickler escaped read_checkpoint
]


# Found by fuzzing: JSON nested deeper than Python's parser goes raised RecursionError (fixed; kept as
# regression inputs).
KNOWN_BUGS = [
    pytest.param("labels", b"[" * 3000, id="read_labels-RecursionError"),
    pytest.param("metadata", b"[" * 3000, id="sidecar-RecursionError"),
]


@pytest.mark.parametrize("target, data", KNOWN_BUGS)
def test_deeply_nested_json_is_a_project_error(target, data, scratch):
    TARGETS[target](data)
