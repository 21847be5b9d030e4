"""Runtimes print nothing of their own: ExecuTorch's threadpool probes the CPU from C++ and logs it."""

import subprocess
import sys

import pytest


def test_executorch_runner_keeps_cpuinfo_lines_off_stderr(tiny_pte):
    pytest.importorskip("executorch.runtime")
    code = ("import numpy as np\n"
            "from lsnet_deploy.runtimes import runner_for\n"
            f"with runner_for({str(tiny_pte)!r}, threads=2) as runner:\n"
            "    print(runner.infer(np.zeros((1, 3, 128, 128), np.float32)).shape)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 10)"
    assert "cpuinfo" not in run.stderr, run.stderr


def test_captured_native_stderr_is_replayed_when_the_block_fails(capfd):
    import os

    from lsnet_deploy.quiet import native_stderr_captured

    with pytest.raises(RuntimeError):
        with native_stderr_captured():
            os.write(2, b"native detail\n")
            raise RuntimeError("boom")
    with native_stderr_captured():
        os.write(2, b"harmless chatter\n")
    err = capfd.readouterr().err
    assert "native detail" in err and "harmless chatter" not in err
