"""Coverage-guided fuzzing of the readers with atheris (libFuzzer); the test suite runs it bounded.

Usage::

    python tests/test_fuzz/run_fuzz.py TARGET [CORPUS_DIR ...] [libFuzzer flags]
    python tests/test_fuzz/run_fuzz.py image /tmp/corpus -runs=300 -seed=1 -timeout=10   # bounded
    python tests/test_fuzz/run_fuzz.py checkpoint /tmp/corpus -max_total_time=3600        # a campaign

TARGET is one of ``targets.TARGETS``. libFuzzer adds the inputs it finds to the first CORPUS_DIR, so
pass a copy of ``tests/data/fuzz_corpus/<target>``, not the committed folder; crashes are written
where ``-artifact_prefix=`` says (default: the working directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    """Instrument the project's modules, then hand the target to libFuzzer (which exits at the end)."""
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    name = sys.argv.pop(1)
    sys.path.insert(0, str(REPO))
    with atheris.instrument_imports(include=["lsnet_deploy"]):
        import lsnet_deploy.artifact_metadata  # noqa: F401  (imported here so its bytecode is instrumented)
        import lsnet_deploy.metadata  # noqa: F401
        import lsnet_deploy.models  # noqa: F401
        import lsnet_deploy.models.checkpoint  # noqa: F401
        import lsnet_deploy.preprocess  # noqa: F401
        from tests.test_fuzz.targets import TARGETS
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
