"""Every bad input of lsnet-export: one clear line, the right exit code, no traceback, nothing on disk."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


from ..conftest import conformance_case, error_line, invoke_export as invoke
from ..mounts import tmpfs

TINY = str(conformance_case("tiny")[0])


def assert_clean_failure(result, code: int, *fragments: str):
    assert result.exit_code == code, result.output
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line


def test_unknown_format_suggests_the_closest(tmp_path):
    result = invoke("--format", "onxx", "--weights", TINY, "-o", tmp_path / "x.onnx")
    assert_clean_failure(result, 2, "unknown format 'onxx'", "did you mean 'onnx'")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("imgsz", ["abc", "0", "224,224,3", "8", "99999"])
def test_nonsensical_imgsz(tmp_path, imgsz):
    assert_clean_failure(invoke("--imgsz", imgsz, "-o", tmp_path / "x.onnx"), 2, "--imgsz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("batch", ["0", "-3"])
def test_nonsensical_batch(tmp_path, batch):
    assert_clean_failure(invoke("--batch", batch, "-o", tmp_path / "x.onnx"), 2, "--batch")


def test_unknown_ska_form(tmp_path):
    assert_clean_failure(invoke("--ska", "im2col", "-o", tmp_path / "x.onnx"), 2, "unknown SKA form")


def test_option_the_format_does_not_accept(tmp_path):
    assert_clean_failure(invoke("--dla-core", "0", "-o", tmp_path / "x.onnx"), 2, "--format onnx does not accept --dla-core")
    assert_clean_failure(invoke("-f", "ort", "--float32", "-o", tmp_path / "x.ort"), 2, "does not accept --float32")
    assert_clean_failure(invoke("--int8", "-o", tmp_path / "x.onnx"), 2, "--calib")
    assert_clean_failure(invoke("--float32", "-o", tmp_path / "x.onnx"), 2, "does not accept --float32")


@pytest.mark.parametrize("content, fragment", [(None, "not found"), (b"", "empty"), (b"garbage bytes", "corrupt")])
def test_unreadable_or_corrupt_weights(tmp_path, content, fragment):
    weights = tmp_path / "w.pth"
    if content is not None:
        weights.write_bytes(content)
    assert_clean_failure(invoke("--weights", weights, "-o", tmp_path / "x.onnx"), 1, fragment)
    assert not (tmp_path / "x.onnx").exists()


def test_mismatched_weights(tmp_path):
    assert_clean_failure(invoke("--model", "lsnet_s", "--weights", TINY, "-o", tmp_path / "x.onnx"), 1,
                         "does not fit")


def test_missing_output_directory(tmp_path):
    assert_clean_failure(invoke("--weights", TINY, "-o", tmp_path / "no" / "such" / "x.onnx"), 2, "does not exist")


def _export_without_root_powers(*args) -> subprocess.CompletedProcess:
    """``lsnet-export ARGS`` in a child process that keeps uid 0 but loses the capabilities that let root
    ignore file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): folder modes then apply to it."""
    code = "import sys; from lsnet_deploy.cli.export import main; sys.argv[0] = 'lsnet-export'; main()"
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code,
                           *map(str, args)], capture_output=True, text=True, timeout=600)


def test_output_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:
            assert_clean_failure(invoke("--weights", TINY, "-o", locked / "x.onnx"), 2, "not writable")
        else:  # how CI runs: root ignores the folder's mode unless its capabilities are dropped
            if shutil.which("setpriv") is None:
                pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
            done = _export_without_root_powers("--weights", TINY, "-o", locked / "x.onnx")
            lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if "error:" in line]
            assert done.returncode == 2, done.stdout + done.stderr
            assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
            assert f"folder {locked} is not writable" in lines[0], lines[0]
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a file system mounted read-only (a tmpfs; mounting needs root, which is how CI runs)."""
    with tmpfs(tmp_path / "ro", read_only=True) as folder:
        yield folder


def test_output_folder_on_a_read_only_file_system(read_only_folder):
    assert_clean_failure(invoke("--weights", TINY, "-o", read_only_folder / "x.onnx"), 2,
                         f"folder {read_only_folder} is not writable (a read-only file system)")
    assert not list(read_only_folder.iterdir())


def test_output_in_a_pseudo_file_system():
    # /proc takes no new files, for root too: the write probe finds out before any work
    assert_clean_failure(invoke("--weights", TINY, "-o", "/proc/lsnet_t.onnx"), 2, "/proc", "choose another --output")
    assert not Path("/proc/lsnet_t.onnx").exists()


def test_output_directory_that_is_a_file(tmp_path):
    parent = tmp_path / "plain-file"
    parent.write_text("x")
    assert_clean_failure(invoke("--weights", TINY, "-o", parent / "x.onnx"), 2, "is not a directory")


def test_output_that_is_a_directory(tmp_path):
    assert_clean_failure(invoke("--weights", TINY, "-o", tmp_path), 2, "is a directory")


def test_missing_optional_dependency_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # import onnxsim now raises ImportError
    result = invoke("--weights", TINY, "-o", tmp_path / "x.onnx")
    assert_clean_failure(result, 1, 'pip install "lsnet-deploy[onnx]"')
    assert not list(tmp_path.iterdir())


def test_drifting_artifact_fails_and_keeps_the_existing_file(tmp_path, monkeypatch):
    from lsnet_deploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner

    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous artifact")
    original = OnnxRuntimeRunner._infer
    monkeypatch.setattr(OnnxRuntimeRunner, "_infer", lambda self, x: original(self, x) * 1.01)
    result = invoke("--weights", TINY, "-o", target)
    assert_clean_failure(result, 1, "drifts from PyTorch")
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_failure_inside_the_exporter_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous artifact")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated converter crash\nwith a second line")

    monkeypatch.setattr(torch.onnx, "export", broken)
    result = invoke("--weights", TINY, "-o", target)
    assert_clean_failure(result, 1, "simulated converter crash")
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_random_init_warning(tmp_path):
    result = invoke("--model", "lsnet", "--imgsz", "64", "-o", tmp_path / "r.onnx", "--no-validate")
    assert result.exit_code == 0, result.output
    assert "randomly initialized" in result.output and "useless for predictions" in result.output


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNET_DEPLOY_DEBUG", "1")
    result = invoke("--weights", tmp_path / "missing.pth", "-o", tmp_path / "x.onnx")
    assert result.exit_code != 0 and result.exception is not None
