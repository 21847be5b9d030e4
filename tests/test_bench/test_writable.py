"""``atomic.ensure_writable``: every unwritable output path is one UsageError line, before any work."""

from __future__ import annotations

import pytest

from lsnet_deploy.atomic import ensure_writable
from lsnet_deploy.errors import UsageError

from ..mounts import full_disk, tmpfs, visible_files


def refusal(path, **kwargs) -> str:
    with pytest.raises(UsageError) as caught:
        ensure_writable(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_writable_path_passes_and_nothing_is_created(tmp_path):
    target = tmp_path / "out.jsonl"
    assert ensure_writable(target) == target
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_may_be_replaced(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    ensure_writable(target)
    assert target.read_text() == "old\n"


def test_missing_folder(tmp_path):
    message = refusal(tmp_path / "no" / "such" / "x.onnx")
    assert "does not exist" in message and "--output" in message


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "is not a directory" in refusal(tmp_path / "f" / "x.onnx")


def test_a_directory_is_not_a_file_name(tmp_path):
    assert "is a directory" in refusal(tmp_path, option="--plot")
    assert "--plot" in refusal(tmp_path, option="--plot")
    ensure_writable(tmp_path, artifact_is_directory=True)  # a Core ML package replaces its old self


def test_proc():
    assert "cannot create a file in /proc" in refusal("/proc/x.onnx")


def test_read_only_mount(tmp_path):
    with tmpfs(tmp_path / "ro", read_only=True) as folder:
        assert "read-only file system" in refusal(folder / "x.jsonl")


def test_full_disk(tmp_path):
    with full_disk(tmp_path / "full") as folder:
        assert "No space left on device" in refusal(folder / "x.jsonl")
        assert visible_files(folder) == []  # the probe is gone


def test_empty_name():
    assert "empty" in refusal("")
