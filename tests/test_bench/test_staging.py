"""Staged writes when the writer cannot clean up: a full disk under a native writer, a process that dies.

The LiteRT converter writes its flatbuffer through LLVM, which on a full disk prints "IO failure on output
stream" and calls exit(1): no Python cleanup runs. ``write_file`` writes from Python instead (an error with
its cause), and ``staged_output`` removes what dead processes staged for the same target.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lsnet_deploy.atomic import remove_stale_staging, staged_output, write_file
from lsnet_deploy.errors import OutputWriteError

from ..conftest import REPO
from ..mounts import full_disk, visible_files

#: stages target (argv[1]), writes into the staged file, then dies as LLVM's report_fatal_error does
DIES_WHILE_STAGING = '''
import os, sys
from pathlib import Path
from lsnet_deploy.atomic import staged_output

with staged_output(Path(sys.argv[1]), (".json",)) as tmp:
    tmp.write_bytes(b"half an artifact")
    Path(f"{tmp}.json").write_text("{}")
    os._exit(1)
'''


def test_write_file_on_a_full_disk_is_one_error_and_leaves_nothing(tmp_path):
    with full_disk(tmp_path / "full", free_pages=1) as folder:
        with pytest.raises(OutputWriteError, match="No space left on device") as caught:
            write_file(folder / "model.tflite", b"\0" * 200_000)
        assert "\n" not in str(caught.value) and "--output" in str(caught.value)
        assert visible_files(folder) == []


def test_files_staged_by_a_dead_process_are_removed_by_the_next_export(tmp_path):
    target = tmp_path / "model.tflite"
    done = subprocess.run([sys.executable, "-c", DIES_WHILE_STAGING, str(target)], cwd=REPO, timeout=60)
    assert done.returncode == 1
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(".tmp.tflite" in name for name in left), left  # the artifact and its .json
    with staged_output(target, (".json",)) as tmp:
        tmp.write_bytes(b"whole artifact")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]
    assert target.read_bytes() == b"whole artifact"


def test_a_running_writers_staged_file_is_left_alone(tmp_path):
    target = tmp_path / "model.onnx"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from pathlib import Path\nfrom lsnet_deploy.atomic import staged_output\n"
                               "with staged_output(Path(sys.argv[1])) as tmp:\n"
                               "    tmp.write_bytes(b'in progress'); print('staged', flush=True); time.sleep(60)\n",
                               str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "staged"
        assert remove_stale_staging(target) == []
        assert len(list(tmp_path.iterdir())) == 1
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in remove_stale_staging(target)] and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_litert_export_onto_a_nearly_full_disk(tmp_path):
    """A real lsnet-export to LiteRT with room for the probe but not the model: one line, exit 1, nothing left."""
    pytest.importorskip("litert_torch", reason="the litert extra is not installed")
    from ..conftest import SIZED_CHECKPOINTS

    with full_disk(tmp_path / "full", size_kb=256, free_pages=4) as folder:
        done = subprocess.run([sys.executable, "-m", "lsnet_deploy.cli.export", "-w",
                               str(SIZED_CHECKPOINTS / "tiny.pth"), "-f", "litert", "-o", str(folder / "x.tflite")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        left = visible_files(folder)
    errors = [line for line in done.stderr.splitlines() if line.startswith("lsnet-export: error:")]
    assert done.returncode == 1 and left == [], (left, done.stderr[-2000:])
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr[-2000:]
