"""The host side of an emulated ARM worker: start it once, load one artifact, send batches, stop it.

``ArmWorker`` starts ``worker.py`` under ``qemu-aarch64-static`` with the cached environment and talks
to it over its stdin/stdout pipes (the wire format is defined in ``worker.py``). The worker reads its
requests from a pipe only this process holds, so it ends when this process does, even on a crash;
``close()`` (also run when the object is collected) ends it at once. Its stderr goes to a temporary
file whose last lines explain a worker that died.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from ..errors import RuntimeUnavailableError
from .environment import ArmEnvironment, find_environment
from .worker import ProtocolError, read_message, write_message

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
#: stderr lines quoted when the worker dies
STDERR_TAIL_LINES = 3


def _stop(process: subprocess.Popen, stderr_file) -> None:
    """End the worker: close its request pipe (it exits on EOF), then make sure."""
    try:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
        process.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    finally:
        if process.stdout:
            process.stdout.close()
        stderr_file.close()


class ArmWorker:
    """One emulated aarch64 Python serving one artifact.

    Args:
        environment: the cached environment (default: ``find_environment()``).
        command: the worker's command line instead of the emulated one (tests of the protocol run
            ``worker.py`` with the host's Python this way).

    Raises:
        RuntimeUnavailableError: no emulator or no cached environment (one line naming the fix).
    """

    def __init__(self, environment: ArmEnvironment | None = None, command: list[str] | None = None):
        if command is None:
            self.environment = environment or find_environment()
            command, env = self.environment.command(str(WORKER_SCRIPT)), self.environment.process_env()
        else:
            self.environment, env = environment, None
        self._stderr = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._stderr, env=env, close_fds=True)
        self._finalizer = weakref.finalize(self, _stop, self.process, self._stderr)
        self.info: dict = {}
        self.input: list | None = None

    def _stderr_lines(self, start: int = 0) -> list[str]:
        try:
            self._stderr.seek(start)
            return [line.strip() for line in self._stderr.read().decode("utf-8", "replace").splitlines()
                    if line.strip()]
        except (OSError, ValueError):
            return []

    def _stderr_tail(self) -> str:
        return " | ".join(self._stderr_lines()[-STDERR_TAIL_LINES:])

    def request(self, header: dict, arrays=()) -> tuple[dict, list[np.ndarray]]:
        """Send one request and return the reply.

        Raises:
            RuntimeUnavailableError: the worker died or answered with an error (one line).
        """
        with self._lock:
            logged_before = os.fstat(self._stderr.fileno()).st_size
            try:
                write_message(self.process.stdin, header, arrays)
                reply = read_message(self.process.stdout)
            except (OSError, ProtocolError) as exc:
                reply, broken = None, str(exc)
            else:
                broken = "it closed its pipe"
        if reply is None:
            try:  # a closed pipe comes a moment before the exit status
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            tail = self._stderr_tail()
            status = f"exit status {code}" if code is not None else broken
            raise RuntimeUnavailableError(f"the emulated arm64 worker died ({status})" + (f": {tail}" if tail else ""))
        header_back, arrays_back = reply
        if not header_back.get("ok"):
            # the runtimes log the cause of a failed load from C++ ("ERROR: Node number 187 ... failed to prepare")
            logged = [line for line in self._stderr_lines(logged_before) if line.startswith("ERROR:")]
            cause = f" ({logged[-1]})" if logged else ""
            raise RuntimeUnavailableError(f"arm64 {header.get('runtime') or 'worker'}: {header_back.get('error')}{cause}")
        return header_back, arrays_back

    def load(self, runtime: str, path: str | Path, **options) -> dict:
        """Load the artifact in the worker's ``runtime`` (``ort``, ``litert``, ``litert-fp16``); returns its info."""
        reply, _ = self.request({"op": "load", "runtime": runtime, "path": str(Path(path).resolve()),
                                 "options": options})
        self.info, self.input = reply.get("info", {}), reply.get("input")
        return self.info

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of one batch, in the artifact's order."""
        _, outputs = self.request({"op": "infer"}, [np.ascontiguousarray(x)])
        return outputs

    def close(self) -> None:
        """End the worker (idempotent)."""
        self._finalizer()

    @property
    def alive(self) -> bool:
        """The worker process is still running."""
        return self.process.poll() is None
