"""Ctrl-C and the exit code agree, with real SIGINTs: 130 means nothing was left, 0 means the artifact is
complete (it was renamed into place before the interrupt took effect, and the command then finished)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO, SIZED_CHECKPOINTS

#: a command built from the CLI's own pieces; a real SIGINT (os.kill) lands at the moment named in argv[2]
COMMAND = '''
import os, signal, sys
from pathlib import Path

import typer
from lsnet_deploy import atomic
from lsnet_deploy.cli.common import cli_errors, whole_command

target, moment = Path(sys.argv[1]), sys.argv[2]
ctrl_c = lambda: os.kill(os.getpid(), signal.SIGINT)
real_replace = atomic.replace_path

def replace_path(source, dest):
    if moment == "renaming":
        ctrl_c()
    real_replace(source, dest)
    if moment == "renamed":
        ctrl_c()

atomic.replace_path = replace_path
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def command() -> None:
    with cli_errors("prog"):
        with atomic.staged_output(target, (".json",)) as tmp:
            tmp.write_text("complete artifact")
            Path(f"{tmp}.json").write_text("{}")
            if moment == "writing":
                ctrl_c()
                for _ in range(1000):  # Python delivers the signal at the next bytecode
                    pass
    if moment == "summary":
        ctrl_c()
    print("summary: wrote", target)


with whole_command("prog"):
    app(args=[], prog_name="prog")
'''


def run_command(tmp_path: Path, moment: str) -> subprocess.CompletedProcess:
    script = tmp_path / "command.py"
    script.write_text(COMMAND)
    return subprocess.run([sys.executable, str(script), str(tmp_path / "out" / "model.bin"), moment],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))


@pytest.mark.parametrize("moment", ["renaming", "renamed", "summary"])
def test_ctrl_c_once_the_artifact_is_in_place_exits_0(tmp_path, moment):
    (tmp_path / "out").mkdir()
    done = run_command(tmp_path, moment)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model.bin").read_text() == "complete artifact"
    assert (tmp_path / "out" / "model.bin.json").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.bin", "model.bin.json"]
    assert "summary: wrote" in done.stdout  # the command finished its report
    assert "interrupted after" in done.stderr and "kept and valid" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_before_the_rename_exits_130_and_leaves_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    done = run_command(tmp_path, "writing")
    assert done.returncode == 130, done.stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert done.stderr.strip() == "prog: interrupted" and done.stdout == ""


@pytest.mark.slow
def test_a_real_export_interrupted_midway_agrees_with_its_exit_code(tmp_path):
    """lsnet-export, Ctrl-C from outside while it validates: either 130 and no file, or 0 and a whole one."""
    output = tmp_path / "tiny.onnx"
    scratch = tmp_path.parent / f"{tmp_path.name}-tmp"  # the export's own temp files, away from /tmp
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "lsnet_deploy.cli.export", "-w", str(SIZED_CHECKPOINTS / "tiny.pth"),
                             "-o", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "TMPDIR": str(scratch)}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while time.monotonic() < deadline and "exporting to" not in seen:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert "exporting to" in seen, seen
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    if proc.returncode == 130:
        assert left == [], left
    else:
        assert proc.returncode == 0, stderr
        import onnx

        onnx.checker.check_model(str(output))
        assert left == ["tiny.onnx"] and "Export complete" in stdout
