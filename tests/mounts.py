"""Small real file systems for the write-failure tests: a read-only mount and a full disk (tmpfs).

Mounting needs root (as in the adb tests); without it the tests that use these skip with the reason.
Each mount lives under the test's ``tmp_path`` and is unmounted when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def mount_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not found"
    return None


@contextlib.contextmanager
def tmpfs(where: Path, size_kb: int = 64, read_only: bool = False) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs on ``where`` (created), read-only if asked; unmount afterwards."""
    reason = mount_unavailable()
    if reason:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "lsnet-test", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def full_disk(where: Path, size_kb: int = 64, free_pages: int = 0) -> Iterator[Path]:
    """A tmpfs on ``where`` filled by one hidden filler file, to the last byte or with ``free_pages``
    4 KiB pages left free (room for a small probe, not for much more)."""
    with tmpfs(where, size_kb) as root:
        fd = os.open(root / ".filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for block in (4096, 1):  # whole pages, then the last bytes
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * block)
            if free_pages:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size // 4096 - free_pages) * 4096)
        finally:
            os.close(fd)
        yield root


def visible_files(folder: Path) -> list[str]:
    """Everything in ``folder`` but the filler: what a failed write must not leave."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".filler")
