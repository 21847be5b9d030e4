"""Fixtures of the emulated ARM tests: the cached environment (a skip naming what is missing without it) and
one emulated worker shared by the whole session (starting one costs 5-45 s of emulation; each runner loads
its artifact into it in turn)."""

from __future__ import annotations

import pytest

from lsnet_deploy.errors import RuntimeUnavailableError


@pytest.fixture(scope="session")
def arm_environment():
    """The cached arm64 environment; a skip naming what is missing when there is none."""
    from lsnet_deploy.arm.environment import find_environment

    try:
        return find_environment()
    except RuntimeUnavailableError as exc:
        pytest.skip(f"no emulated arm64 runtime: {exc}")


@pytest.fixture(scope="session")
def arm_executorch(arm_environment):
    """The environment with the aarch64 ExecuTorch runner; a skip saying how to build it otherwise."""
    pytest.importorskip("executorch.runtime")
    if arm_environment.pte_library is None:
        pytest.skip("the aarch64 ExecuTorch runner is not built: python -m lsnet_deploy.arm.setup --with-executorch")
    return arm_environment


@pytest.fixture(scope="session")
def arm_worker(arm_environment):
    """One emulated aarch64 worker for every runner of the session (``ArmEmulatedRunner(worker=...)``)."""
    from lsnet_deploy.arm.client import ArmWorker

    worker = ArmWorker(arm_environment)
    yield worker
    worker.close()
