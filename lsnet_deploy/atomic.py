"""Writing artifacts atomically: build beside the target, rename into place only on success.

An existing file (or ``.mlpackage`` directory) at the target survives any failure, and no temporary
file is left behind. Finished artifacts get the modes a plain ``open()`` / ``mkdir`` would give them
(``0666`` / ``0777`` less the umask), not the private ``0600`` / ``0700`` of ``mkstemp`` / ``mkdtemp``.

Ctrl-C and the rename: while an artifact (and its side files) moves into place, SIGINT is caught and held,
so an interrupt lands either before the rename (the artifact is not there: nothing is left, the command
exits 130) or after it (the artifact is complete). Inside ``finish_after_output`` (the command-line tools'
scope) an interrupt that arrives once an artifact is in place is held until the scope ends, so the command
reports what it wrote and exits as it would have; elsewhere it is raised right after the rename.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import OutputWriteError, UsageError


def ensure_writable(path: str | Path, option: str = "--output", artifact_is_directory: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written; raise one UsageError line if not.

    The folder that will hold ``path`` must exist, be a folder, and take a new file: a one-byte probe
    file is created and removed there, so a read-only mount, a full disk and a pseudo file system such as
    ``/proc`` are refused as well as a folder whose permissions forbid writing (which root ignores).
    Nothing is created at ``path`` itself, and nothing is left behind.

    Args:
        path: the file (or, with ``artifact_is_directory``, the package directory) that will be written.
        option: the option that named ``path``, used in the message (``--output``, ``--plot``).
        artifact_is_directory: the artifact is itself a directory (a Core ML package), so an existing
            directory at ``path`` is a previous artifact to replace, not a mistake.

    Returns:
        ``path`` as a Path.

    Raises:
        UsageError: the path cannot be written; the message names why and what to do.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not str(path).strip():
        raise UsageError(f"{option} is empty; give a file name")
    if not parent.exists():
        raise UsageError(f"{option} {target}: folder {parent} does not exist; create it or choose another {option}")
    if not parent.is_dir():
        raise UsageError(f"{option} {target}: {parent} is not a directory; choose another {option}")
    if target.is_dir() and not artifact_is_directory:
        raise UsageError(f"{option} {target} is a directory; give a file name")
    if not os.access(parent, os.W_OK | os.X_OK):
        why = " (a read-only file system)" if os.statvfs(parent).f_flag & os.ST_RDONLY else ""
        raise UsageError(f"{option} {target}: folder {parent} is not writable{why}; choose another {option}")
    if target.exists() and not target.is_dir() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {target} is not writable; choose another {option}")
    _probe_write(parent, target, option)
    return target


def _probe_write(parent: Path, target: Path, option: str) -> None:
    """Create, write one byte to and remove a hidden file in ``parent``: the only sure test of writability."""
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".lsnet-write-probe-", dir=parent)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{option} {target}: cannot create a file in {parent} ({reason}); choose another {option}") from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def check_writable_dir(target: Path, artifact_is_directory: bool = False) -> None:
    """Raise UsageError unless the directory that will hold ``target`` can take it (see ``ensure_writable``).

    Args:
        target: the artifact path.
        artifact_is_directory: the artifact is itself a directory (a Core ML package).
    """
    ensure_writable(target, "--output", artifact_is_directory=artifact_is_directory)


def remove_path(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_modes(path: Path) -> None:
    """Give ``path`` (and, for a directory, everything inside) the default modes of new files and dirs.

    Files get ``0666 & ~umask``, directories ``0777 & ~umask``; symbolic links are left alone.
    """
    mask = current_umask()
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    path = Path(path)
    if path.is_symlink():
        return
    if not path.is_dir():
        os.chmod(path, file_mode)
        return
    os.chmod(path, dir_mode)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), file_mode)


def replace_path(source: Path, target: Path) -> None:
    """Move ``source`` onto ``target``; for directories the old target is swapped out first."""
    if source.is_dir():
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
        try:
            os.replace(source, target)
        except OSError:
            if backup is not None:
                os.replace(backup, target)
            raise
        if backup is not None:
            remove_path(backup)
    else:
        os.replace(source, target)


#: who stages a file: a process that dies without cleaning up (SIGKILL, the OOM killer, a native library
#: calling exit()) leaves its staged files, and the next export of that target removes them
_OWNER = f"{socket.gethostname().replace('.', '_').replace('-', '_')}-{os.getpid()}"


def _staging_prefix(target: Path) -> str:
    return f".{target.stem}."


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staged files of ``target`` left by dead processes of this host; return what was removed.

    A staged file is ``.<stem>.<host>-<pid>-<random>.tmp<suffix>`` (plus side-file suffixes); one whose
    process is still running, or that another host wrote (a shared folder), is left alone.
    """
    folder = target.parent if str(target.parent) else Path(".")
    host = _OWNER.rsplit("-", 1)[0]
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{glob.escape(_staging_prefix(target))}{host}-*.tmp{glob.escape(target.suffix)}*"):
            pid = path.name[len(_staging_prefix(target)) + len(host) + 1:].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                remove_path(path)
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but is another user's
    return True


def write_file(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` from Python, so a full disk is an error with its cause, not a native
    library's ``exit()``; a partly written file is removed.

    Raises:
        OutputWriteError: the write failed (the message names the cause, e.g. no space left on device).
    """
    path = Path(path)
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        remove_path(path)
        raise OutputWriteError(f"cannot write in {path.parent}: {exc.strerror or exc}; free some space or choose "
                               "another --output") from None


@contextlib.contextmanager
def staged_output(target: Path, extra_suffixes: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    Args:
        target: the final artifact path.
        extra_suffixes: side files that travel with the artifact (e.g. ``.json``): if the exporter
            writes ``<tmp><suffix>``, it is moved to ``<target><suffix>`` too.

    On any exception everything temporary is removed and the target is left as it was.
    """
    check_writable_dir(target, artifact_is_directory=True)  # the caller said what the artifact is
    remove_stale_staging(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_staging_prefix(target) + f"{_OWNER}-", suffix=f".tmp{target.suffix}",
                                    dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the exporter creates it (some write directories)
    try:
        yield tmp
        normal_modes(tmp)
        for suffix in extra_suffixes:
            side = Path(f"{tmp}{suffix}")
            if side.exists():
                normal_modes(side)
        with _interrupts_held(target):
            replace_path(tmp, target)
            for suffix in extra_suffixes:
                side = Path(f"{tmp}{suffix}")
                if side.exists():
                    replace_path(side, Path(f"{target}{suffix}"))
    finally:
        remove_path(tmp)
        for suffix in extra_suffixes:
            remove_path(Path(f"{tmp}{suffix}"))


@dataclass
class OutputScope:
    """What ``finish_after_output`` saw: the artifacts put in place, and whether a Ctrl-C was held."""

    written: list[Path] = field(default_factory=list)
    interrupted: bool = False


_scopes: list[OutputScope] = []
#: while SIGINT is held: "previous" (the handler to restore) and "interrupted" (a Ctrl-C came meanwhile)
_held: dict = {}


def _hold(_signum, _frame) -> None:
    _held["interrupted"] = True


@contextlib.contextmanager
def _interrupts_held(target: Path) -> Iterator[None]:
    """Hold SIGINT while ``target`` moves into place. If the move fails, a held Ctrl-C is raised at once; if
    it succeeds, it is raised right after, unless a ``finish_after_output`` scope keeps holding it until the
    command has reported (so the exit code says the artifact is there)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        for scope in _scopes:
            scope.written.append(target)
        return
    holding = "previous" in _held  # a scope already holds it, since an earlier artifact
    if not holding:
        _held.update(previous=signal.signal(signal.SIGINT, _hold), interrupted=False)
    moved = False
    try:
        yield
        moved = True
        for scope in _scopes:
            scope.written.append(target)
    finally:
        if not holding and not (moved and _scopes):
            _release()


def _release() -> None:
    """Restore the SIGINT handler and deliver a held Ctrl-C to it."""
    signal.signal(signal.SIGINT, _held.pop("previous"))
    if _held.pop("interrupted", False):
        signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def finish_after_output() -> Iterator[OutputScope]:
    """A command's scope for Ctrl-C: once an artifact is completely written and renamed into place, an
    interrupt no longer stops the command (it reports what it wrote and exits with its own code); before
    that, Ctrl-C raises KeyboardInterrupt as usual and the staged files are removed.

    Yields:
        An OutputScope: ``written`` lists the artifacts put in place; ``interrupted`` (set when the
        scope ends) whether a Ctrl-C was held after one was in place (the caller says so).
    """
    scope = OutputScope()
    _scopes.append(scope)
    try:
        yield scope
    finally:
        _scopes.remove(scope)
        if not _scopes and "previous" in _held:
            signal.signal(signal.SIGINT, _held.pop("previous"))  # the Ctrl-C was for this command: not raised
            scope.interrupted = _held.pop("interrupted", False)
