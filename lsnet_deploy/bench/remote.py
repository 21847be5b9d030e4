"""The far end of a remote benchmark: ``python3 -m lsnet_deploy.bench.remote serve``.

A remote target (``lsnet-bench --host``) starts this on the other machine, which has lsnet-deploy
installed, over a transport that carries stdin and stdout (ssh, or ``adb shell`` for ``--adb``). One process
does the whole exchange, so Python and its libraries load once:

1. in: one JSON line ``{"plan": ..., "files": {NAME: {"tar": bool, "verify": bool}}, "cache_dir": DIR}``.
   Files are content-addressed (``<sha256><suffix>``) and the plan names them as ``@file:NAME``;
   nothing machine-specific goes through the command line.
2. out: ``{"need": [NAME...]}``, the files the cache lacks (side files are always sent).
3. in: for each needed file a header line ``{"name": NAME, "size": BYTES}`` then exactly that many
   bytes (a tar stream for directory artifacts); each is stored only once its SHA-256 matches its name.
4. out: ``{"progress": ...}`` lines, one ``{"records": [...]}`` line per measured group, or
   ``{"error": ..., "exit_code": N}``.

Native libraries that print to stdout would corrupt this stream, so the real stdout is kept for protocol
lines and fd 1 is pointed at stderr for everything else.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from ..atomic import remove_path, replace_path
from ..errors import LsnetDeployError
from .harness import run_plan
from .plan import BenchPlan
from .provenance import file_sha256

CHUNK = 1 << 20
FILE_REF = "@file:"


def _protocol_stream() -> IO[str]:
    """Keep the real stdout for protocol lines; send anything else written to fd 1 to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return stream


def _send(stream: IO[str], obj: dict) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def cache_dir(text: str) -> Path:
    """The cache directory, ``~`` expanded on this machine, created if needed."""
    path = Path(os.path.expanduser(text))
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str) -> str:
    """A content-addressed name: 64 hex digits, then a suffix, no path separators."""
    stem = name.partition(".")[0]
    if len(stem) != 64 or any(c not in "0123456789abcdef" for c in stem) or "/" in name or "\\" in name \
            or name.endswith("."):
        raise ValueError(f"not a content-addressed file name: {name!r}")
    return name


def _extract(source: IO[bytes], destination: Path) -> None:
    """Unpack a tar stream, refusing members that would land outside ``destination``."""
    with tarfile.open(fileobj=source, mode="r|") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
            return
        for member in archive:  # Pythons without extraction filters (before 3.10.12)
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"unsafe member in directory archive: {member.name!r}")
            archive.extract(member, destination)


class _Limited:
    """A read-only view of the next ``size`` bytes of a stream."""

    def __init__(self, source: IO[bytes], size: int):
        self.source, self.left = source, size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.source.read(n)
        if not data:
            raise ValueError(f"the stream ended {self.left} bytes early (the transfer was cut short)")
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.left > 0:
            self.read(CHUNK)


def store(directory: Path, name: str, source: IO[bytes], size: int, is_tar: bool, verify: bool = True) -> Path:
    """Store ``size`` bytes of ``source`` (a file, or a tar of a directory) as ``directory/name``.

    Raises:
        ValueError: the data's SHA-256 does not match the name (when ``verify``), or the stream is short.
    """
    target = directory / check_name(name)
    body = _Limited(source, size)
    staging = Path(tempfile.mkdtemp(prefix=".receive-", dir=directory))
    try:
        if is_tar:
            _extract(body, staging / "tree")
            body.drain()
            entries = list((staging / "tree").iterdir()) if (staging / "tree").exists() else []
            received = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging / "tree"
        else:
            received = staging / "file"
            with open(received, "wb") as out:
                for chunk in iter(lambda: body.read(CHUNK), b""):
                    out.write(chunk)
        if verify:
            actual, expected = file_sha256(received), name.partition(".")[0]
            if actual != expected:
                raise ValueError(f"{name[:12]}... arrived with SHA-256 {actual[:12]}... (altered in transfer)")
        replace_path(received, target)
    finally:
        remove_path(staging)
    return target


def serve(source: IO[bytes], stream: IO[str]) -> int:
    """Run the exchange described in the module docstring; returns the exit code."""
    try:
        request = json.loads(source.readline() or b"{}")
        directory = cache_dir(request.get("cache_dir") or "~/.cache/lsnet-deploy/bench")
        files: dict[str, dict] = request.get("files", {})
        for name in files:
            check_name(name)
        need = [n for n, f in files.items() if not f.get("verify", True) or not (directory / n).exists()]
        _send(stream, {"need": need})
        for _ in need:
            header = json.loads(source.readline() or b"{}")
            name = header.get("name")
            if name not in files:
                raise ValueError(f"unexpected file {name!r}")
            store(directory, name, source, int(header["size"]), bool(files[name].get("tar")),
                  verify=files[name].get("verify", True))
        plan_data = request["plan"]
        for candidate in plan_data["candidates"]:
            for key in ("path", "weights"):
                value = candidate.get(key)
                if isinstance(value, str) and value.startswith(FILE_REF):
                    candidate[key] = str(directory / check_name(value[len(FILE_REF):]))
        plan = BenchPlan.from_dict(plan_data)
        for records in run_plan(plan, lambda message: _send(stream, {"progress": message})):
            _send(stream, {"records": records})
    except LsnetDeployError as exc:
        _send(stream, {"error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except KeyboardInterrupt:
        _send(stream, {"error": "interrupted", "exit_code": 130})
        return 130
    except (OSError, ValueError, KeyError, TypeError, tarfile.TarError) as exc:
        _send(stream, {"error": f"the remote harness could not follow the request: {exc}", "exit_code": 1})
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lsnet_deploy.bench.remote serve``."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["serve"]:
        print("usage: python -m lsnet_deploy.bench.remote serve  (the remote side of lsnet-bench --host; "
              "it speaks JSON on stdin/stdout)", file=sys.stderr)
        return 2
    stream = _protocol_stream()
    return serve(sys.stdin.buffer, stream)


if __name__ == "__main__":
    sys.exit(main())
