"""Where a benchmark runs: this process, or another machine that runs the same harness.

``LocalTarget`` runs the plan here. ``RemoteTarget`` runs it on a machine reached through a
``Transport`` (something that starts a command there and carries its stdin and stdout), in one remote
process (``bench.remote serve``, which documents the exchange): the plan goes over as JSON with files
named by their SHA-256, the remote cache answers which it lacks, only those are streamed (and checked
against their hash before use), and each group's records come back as one JSON line, written to the
local results file as they arrive. An unchanged file is never copied twice and a changed one always is.

``SshTransport`` uses the system's ``ssh`` client (so ``~/.ssh/config``, agents and jump hosts work as
usual). Nothing passes through a local shell: ``ssh`` gets an argument list, the destination comes after
``--`` so it can never be read as an option, and the remote command line is built with ``shlex.join``,
so paths and the Python command reach the remote shell as single words.

Over adb (``lsnet-bench --adb``), ``bench.adb.AdbTransport`` carries the same exchange through ``adb -s
SERIAL shell`` for Linux devices with Python (``bench.phone.AdbRemoteTarget``), and ``bench.phone.PhoneTarget``
is the target for phones without Python: it pushes the artifacts and the runtimes' own benchmark tools,
runs them pinned to chosen cores in interleaved rounds, and turns their output into the same records.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import json
import queue
import re
import shutil
import shlex
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator

from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError
from .harness import run_plan
from .plan import BenchPlan
from .provenance import file_sha256

Progress = Callable[[str], None]
DEFAULT_REMOTE_CACHE = "~/.cache/lsnet-deploy/bench"
REMOTE_MODULE = "lsnet_deploy.bench.remote"
FILE_REF = "@file:"


def _quiet(_: str) -> None:
    pass


class Target(abc.ABC):
    """A place that runs a plan and yields each group's records as soon as they are measured."""

    #: recorded in each result's ``target`` field
    name: str = "target"

    @abc.abstractmethod
    def run(self, plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
        """Measure ``plan`` and yield the records of each group."""


class LocalTarget(Target):
    """This process."""

    name = "local"

    def run(self, plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
        yield from run_plan(plan, progress)


class Transport(abc.ABC):
    """How to start a command on another machine with its stdin and stdout connected here."""

    @abc.abstractmethod
    def command(self, remote_argv: list[str]) -> list[str]:
        """The local argument list that runs ``remote_argv`` on the other machine."""

    @abc.abstractmethod
    def describe(self) -> str:
        """``ssh:user@host``: recorded with the results."""

    def failure(self, returncode: int, stderr: str) -> str | None:
        """A one-line explanation of a transport-level failure (unreachable host ...), or None."""
        return None


_SAFE_DESTINATION = re.compile(r"^[A-Za-z0-9_.@:%\[\]/+-]+$")
_SSH_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*=.+$", re.DOTALL)


class SshTransport(Transport):
    """The system ``ssh`` client, non-interactive (key or agent authentication; no password prompts).

    Args:
        destination: ``user@host``, ``host`` (a ``~/.ssh/config`` alias) or ``ssh://user@host:port``.
        options: extra ``-o`` options as ``Key=Value`` (``Port=2222``, ``IdentityFile=...``).

    Raises:
        UsageError: a destination that is empty, starts with ``-`` or holds spaces or shell characters,
            or an option that is not ``Key=Value``.
    """

    def __init__(self, destination: str, options: list[str] | None = None):
        if not destination or destination.startswith("-") or not _SAFE_DESTINATION.match(destination):
            raise UsageError(f"--host {destination!r} is not an ssh destination; use user@host, a host alias "
                             "from ~/.ssh/config, or ssh://user@host:port")
        for option in options or []:
            if not _SSH_OPTION.match(option) or "\n" in option:
                raise UsageError(f"--ssh-option {option!r} is not Key=Value (for example Port=2222)")
        self.destination = destination
        self.options = list(options or [])

    def command(self, remote_argv: list[str]) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15"]
        for option in self.options:
            argv += ["-o", option]
        return argv + ["--", self.destination, shlex.join(remote_argv)]

    def describe(self) -> str:
        return f"ssh:{self.destination}"

    def failure(self, returncode: int, stderr: str) -> str | None:
        if returncode == 255:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else "connection failed"
            return f"cannot reach {self.destination} over ssh: {last}"
        return None


class RemoteTarget(Target):
    """Another machine that runs ``python -m lsnet_deploy.bench.remote serve``.

    Args:
        transport: how to reach it.
        python: the Python command there (a virtual environment's ``bin/python`` if needed).
        cache_dir: where copied artifacts are kept there (``~`` is the remote user's home).
    """

    def __init__(self, transport: Transport, python: str = "python3", cache_dir: str = DEFAULT_REMOTE_CACHE):
        if not python.strip():
            raise UsageError("--remote-python cannot be empty")
        self.transport = transport
        self.python = python
        self.cache_dir = cache_dir
        self.name = transport.describe()

    def _explain(self, returncode: int, stderr: str) -> LsnetDeployError:
        where = self.transport.describe()
        reason = self.transport.failure(returncode, stderr)
        if reason:
            return RuntimeUnavailableError(reason)
        if returncode == 127 or "command not found" in stderr or "No such file or directory" in stderr:
            return RuntimeUnavailableError(f"{self.python} was not found on {where}; pass --remote-python PATH")
        if "No module named" in stderr and "lsnet_deploy" in stderr:
            return RuntimeUnavailableError(f"lsnet-deploy is not installed for {self.python} on {where}: "
                                           "pip install lsnet-deploy there, or pass --remote-python")
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
        return LsnetDeployError(f"the remote harness on {where} failed (exit {returncode}): {last}")

    def request(self, plan: BenchPlan) -> tuple[dict, dict[str, Path], dict[str, Path]]:
        """The opening request (plan with files named by content), the files by name, and the way back
        from remote names to local paths."""
        files: dict[str, Path] = {}
        entries: dict[str, dict] = {}
        back: dict[str, Path] = {}

        def add(path: Path) -> str:
            if not path.exists():
                raise UsageError(f"{path} does not exist")
            name = f"{file_sha256(path)}{path.suffix}"
            files[name] = path
            entries[name] = {"tar": path.is_dir(), "verify": True}
            back[name] = path.resolve()
            sidecar = Path(f"{path}.json")
            if sidecar.is_file():  # metadata written beside an artifact travels with it, always fresh
                files[f"{name}.json"] = sidecar
                entries[f"{name}.json"] = {"tar": False, "verify": False}
            return name

        data = plan.to_dict()
        for candidate in data["candidates"]:
            if candidate.get("path"):
                candidate["path"] = FILE_REF + add(Path(candidate["path"]))
            elif candidate.get("weights") and Path(candidate["weights"]).is_file():
                candidate["weights"] = FILE_REF + add(Path(candidate["weights"]))
        return {"plan": data, "files": entries, "cache_dir": self.cache_dir}, files, back

    def run(self, plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
        opening, files, back = self.request(plan)
        argv = self.transport.command([self.python, "-m", REMOTE_MODULE, "serve"])
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise RuntimeUnavailableError(f"{argv[0]} is not installed here") from None
        stderr_tail: collections.deque[bytes] = collections.deque(maxlen=40)
        messages: queue.Queue = queue.Queue()
        threads = [threading.Thread(target=lambda: stderr_tail.extend(proc.stderr), daemon=True),
                   threading.Thread(target=_read_messages, args=(proc.stdout, messages), daemon=True)]
        for thread in threads:
            thread.start()
        error = None
        try:
            try:
                proc.stdin.write(json.dumps(opening).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass
            while True:
                message = messages.get()
                if message is None:
                    break
                if "need" in message:
                    self._send_files([files[n] for n in message["need"] if n in files],
                                     [n for n in message["need"] if n in files], proc, progress)
                elif "progress" in message:
                    progress(f"[{self.transport.describe()}] {message['progress']}")
                elif "records" in message:
                    yield [self._localize(r, back) for r in message["records"]]
                elif "error" in message:
                    error = _remote_error(message, self.transport.describe())
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            for thread in threads:
                thread.join(timeout=5)
        if error is not None:
            raise error
        if proc.returncode != 0:
            raise self._explain(proc.returncode, b"".join(stderr_tail).decode("utf-8", "replace"))

    def _send_files(self, paths: list[Path], names: list[str], proc, progress: Progress) -> None:
        try:
            for path, name in zip(paths, names):
                if not name.endswith(".json"):
                    progress(f"copying {path.name} to {self.transport.describe()}")
                with _payload(path) as (handle, size):
                    proc.stdin.write(json.dumps({"name": name, "size": size}).encode() + b"\n")
                    shutil.copyfileobj(handle, proc.stdin, 1 << 20)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the remote side stopped reading; its error message explains why

    def _localize(self, record: dict, back: dict[str, Path]) -> dict:
        record["target"] = self.transport.describe()
        source = record.get("source") or {}
        for key in ("path", "weights"):
            remote_path = source.get(key)
            local = back.get(Path(remote_path).name) if isinstance(remote_path, str) else None
            if local is not None:
                source[f"remote_{key}"] = remote_path
                source[key] = str(local)
                if key == "path":
                    source["file"] = local.name
        return record


@contextlib.contextmanager
def _payload(path: Path):
    """An open binary stream of a file, or of a tar of a directory, and its size."""
    if not path.is_dir():
        with open(path, "rb") as handle:
            yield handle, path.stat().st_size
        return
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(path, arcname=path.name)
        size = archive.tell()
        archive.seek(0)
        yield archive, size


def _read_messages(stdout, messages: queue.Queue) -> None:
    for raw in stdout:
        message = _parse(raw.decode("utf-8", "replace"))
        if message is not None:
            messages.put(message)
    messages.put(None)


def _parse(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _remote_error(message: dict, where: str) -> LsnetDeployError:
    text = f"on {where}: {message['error']}"
    code = message.get("exit_code", 1)
    if code == 2:
        return UsageError(text)
    error = LsnetDeployError(text)
    error.exit_code = code
    return error


def target_for(host: str | None, python: str = "python3", ssh_options: list[str] | None = None,
               cache_dir: str | None = None) -> Target:
    """The target for ``--host`` (None: this machine)."""
    if not host:
        return LocalTarget()
    return RemoteTarget(SshTransport(host, ssh_options), python=python, cache_dir=cache_dir or DEFAULT_REMOTE_CACHE)


__all__ = ["Target", "LocalTarget", "RemoteTarget", "Transport", "SshTransport", "target_for",
           "DEFAULT_REMOTE_CACHE"]
