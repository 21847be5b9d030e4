"""Every registered runtime that runs files keeps the Runner contract (Polygraphy's BaseRunner): built
inactive, loaded by ``activate`` (idempotent), input described, outputs equal to PyTorch's, metadata read back,
released by ``deactivate`` (idempotent), and refusing to infer while inactive.

Each runtime is exercised on an artifact its own export format writes from the ``tiny`` conformance model.
A runtime this machine cannot run (Core ML off macOS, TensorRT without a GPU) skips with the export's own
reason; nothing else may skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsnet_deploy.errors import MissingDependencyError, RuntimeUnavailableError
from lsnet_deploy.exporters import ExportOptions, export_model, format_for_runtime
from lsnet_deploy.models import load_model
from lsnet_deploy.runtimes import get_runtime, runner_for, runtimes

from ..conftest import conformance_case

#: float32 artifacts agree with PyTorch to this fraction of the largest logit (the export gate's bound)
RELATIVE_TOLERANCE = 1e-3
#: runtimes that compute float models in float16 (the Snapdragon HTP): the float16 export gate's bound
HALF_PRECISION_TOLERANCE = {"qnn": 2e-2}
#: the default runtime of each file type (the emulated ARM twins run them only when named: tests/test_arm)
FILE_RUNTIMES = [name for name, cls in runtimes().items() if cls.suffixes and cls.claims_suffixes]


@pytest.fixture(scope="module")
def tiny():
    weights, x, y = conformance_case("tiny")
    return load_model(weights), x[:1].contiguous().numpy(), y[:1].numpy()


@pytest.mark.parametrize("name", FILE_RUNTIMES)
def test_runner_contract(name, tiny, tmp_path):
    model, x, y = tiny
    fmt = format_for_runtime(name)
    cls = get_runtime(name)
    path = tmp_path / f"tiny{cls.suffixes[0]}"
    try:
        result = export_model(model, fmt, path, ExportOptions())
    except (MissingDependencyError, RuntimeUnavailableError) as missing:
        pytest.skip(f"{name}: {missing}")
    if result.validation_skipped:
        pytest.skip(f"{name} cannot run here: {result.validation_skipped}")
    runner = runner_for(result.path, threads=1)
    assert type(runner) is cls and not runner.active
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(x)
    runner.activate()
    runner.activate()  # idempotent
    try:
        assert runner.active and runner.info()["runtime"] == name
        described = runner.input_metadata()
        assert described is not None, f"{name} does not describe its input"
        shape, _ = described
        assert [d for d in shape if d is not None] == [d for d, s in zip(x.shape, shape) if s is not None]
        out = runner.infer(x)
        assert out.dtype == np.float32 and out.shape == y.shape
        tolerance = HALF_PRECISION_TOLERANCE.get(name, RELATIVE_TOLERANCE)
        np.testing.assert_allclose(out, y, rtol=0, atol=tolerance * float(np.abs(y).max()))
        assert [o.shape for o in runner.infer_outputs(x)] == [y.shape]
    finally:
        runner.deactivate()
    runner.deactivate()  # idempotent
    assert not runner.active
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(x)
    metadata = cls.read_metadata(result.path)
    assert metadata is not None and metadata.get("num_classes") == str(y.shape[1]), metadata
