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


def test_litert_export_and_runner_print_no_native_logs(tiny_checkpoint, tmp_path):
    """TensorFlow's import notices, MLIR's quantizer diagnostics and the interpreter's delegate line are
    C++ writes to stderr; the command line shows its own progress and summary only."""
    pytest.importorskip("litert_torch", reason="litert-torch is not installed")
    pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")
    target = tmp_path / "tiny.tflite"
    export = subprocess.run([sys.executable, "-m", "lsnet_deploy", "-f", "litert", "-w", str(tiny_checkpoint),
                             "-o", str(target)], capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    assert target.is_file() and "validation  ok" in export.stdout + export.stderr
    for noise in ("I0000", "oneDNN", "XNNPACK delegate", "W0000"):
        assert noise not in export.stderr and noise not in export.stdout, (noise, export.stderr[-2000:])


def test_captured_native_stderr_is_replayed_when_the_block_fails(capfd):
    import os

    from lsnet_deploy.quiet import native_stderr_captured

    with pytest.raises(RuntimeError):
        with native_stderr_captured():
            os.write(2, b"native detail\n")
            raise RuntimeError("boom")
    with native_stderr_captured():
        os.write(2, b"harmless chatter\n")
    with pytest.raises(RuntimeError):
        with native_stderr_captured(replay_on_failure=False) as captured:
            os.write(2, b"error: reported by the caller\n")
            assert captured() == "error: reported by the caller\n"
            raise RuntimeError("boom")
    err = capfd.readouterr().err
    assert "native detail" in err and "harmless chatter" not in err and "reported by the caller" not in err
