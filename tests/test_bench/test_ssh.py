"""``lsnet-bench --host`` against a real OpenSSH server on 127.0.0.1 that this module starts with
throwaway keys (the remote side is this checkout's Python, as on a Jetson with lsnet-deploy installed)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsnet_deploy.bench.results import read_records
from lsnet_deploy.bench.targets import SshTransport
from lsnet_deploy.cli.bench import app, normalize_args
from lsnet_deploy.errors import UsageError

runner = CliRunner()
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A loopback sshd for the current user; yields the ssh options that reach it."""
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server openssh-client)")
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True)
    (home / "authorized_keys").write_text((home / "user_key.pub").read_text())
    port = _free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home / 'host_key'}", f"PidFile {home / 'sshd.pid'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}", "StrictModes no", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", f"AllowUsers {getpass.getuser()}", "LogLevel ERROR", ""]))
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        try:  # sshd started by root wants its privilege-separation directory (Debian's init makes it)
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        except OSError as exc:
            pytest.skip(f"cannot create /run/sshd for a root sshd: {exc}")
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"sshd refuses the test configuration: {check.stderr.strip()}")
    log = open(home / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"sshd did not start: {(home / 'sshd.log').read_text().strip()}")
                time.sleep(0.1)
        (home / "known_hosts").write_text(f"[127.0.0.1]:{port} {(home / 'host_key.pub').read_text()}")
        options = [f"Port={port}", f"IdentityFile={home / 'user_key'}", "IdentitiesOnly=yes",
                   f"UserKnownHostsFile={home / 'known_hosts'}", "StrictHostKeyChecking=yes",
                   "GlobalKnownHostsFile=/dev/null"]
        yield {"destination": f"{getpass.getuser()}@127.0.0.1", "options": options, "port": port}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def ssh_args(sshd, *extra) -> list[str]:
    args = ["--host", sshd["destination"], "--remote-python", sys.executable]
    for option in sshd["options"]:
        args += ["--ssh-option", option]
    return args + list(extra)


def test_benchmark_over_ssh_copies_once_and_records_here(sshd, tiny_onnx, tmp_path, quick):
    remote_cache = tmp_path / "remote cache; $(touch pwned)"    # must reach the remote shell as one word
    out = tmp_path / "r.jsonl"
    common = [str(tiny_onnx), *quick, "--threads", "1", "-o", str(out), "--remote-cache", str(remote_cache),
              *ssh_args(sshd)]
    result = runner.invoke(app, normalize_args(common))
    assert result.exit_code == 0, result.output
    assert "copying tiny.onnx" in result.stderr and "tiny" in result.stdout
    (record,) = read_records([out])[0]
    assert record["target"] == f"ssh:{sshd['destination']}"
    assert record["source"]["path"] == str(tiny_onnx.resolve()) and record["model"] == "tiny"
    remote_path = Path(record["source"]["remote_path"])
    assert remote_path.parent == remote_cache and remote_path.name == f"{record['source']['sha256']}.onnx"
    assert remote_path.read_bytes() == tiny_onnx.read_bytes()
    assert record["stats"]["n"] == 5 and record["machine"]["hostname"] == socket.gethostname()
    assert record["metadata"]["producer"] == "lsnet-deploy"
    assert not list(tmp_path.rglob("pwned")) and not Path.home().joinpath("pwned").exists()
    # a second run finds the file in the remote cache; an error there comes back as one line
    again = runner.invoke(app, normalize_args([*common, "--batch", "4"]))
    assert again.exit_code == 2, again.output
    assert "copying" not in again.stderr
    errors = [ln for ln in again.stderr.splitlines() if "error" in ln]
    assert errors == [f"lsnet-bench: error: on ssh:{sshd['destination']}: tiny has a fixed batch of 1, not 4; "
                      "export it with --batch 4 or --dynamic, or drop --batch"]
    assert len(read_records([out])[0]) == 1


def test_missing_remote_python(sshd, tiny_onnx, tmp_path):
    result = runner.invoke(app, normalize_args([str(tiny_onnx), "--no-save", "--remote-cache", str(tmp_path),
                                                *ssh_args(sshd), "--remote-python", "/nonexistent/python3"]))
    assert result.exit_code == 1 and "/nonexistent/python3 was not found" in result.stderr


def test_unreachable_host(sshd, tiny_onnx, tmp_path):
    options = [o if not o.startswith("Port=") else f"Port={_free_port()}" for o in sshd["options"]]
    args = [str(tiny_onnx), "--no-save", "--host", sshd["destination"]]
    for option in options:
        args += ["--ssh-option", option]
    result = runner.invoke(app, normalize_args(args))
    assert result.exit_code == 1
    assert f"cannot reach {sshd['destination']} over ssh" in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if "error" in ln]) == 1


@pytest.mark.parametrize("host", ["-oProxyCommand=touch pwned", "user@host; touch pwned", "a b", "", "$(id)"])
def test_hosts_that_could_be_options_or_shell_are_refused(host, tmp_path):
    with pytest.raises(UsageError, match="is not an ssh destination"):
        SshTransport(host)
    assert not list(tmp_path.glob("pwned"))


def test_ssh_command_is_an_argument_list():
    transport = SshTransport("ssh://me@jetson:2222", ["IdentityFile=/keys/my key"])
    argv = transport.command(["/opt/venv/bin/python", "-m", "x", "--cache-dir", "/data/it's here"])
    assert argv[argv.index("--") + 1] == "ssh://me@jetson:2222"
    assert argv[-1] == "/opt/venv/bin/python -m x --cache-dir '/data/it'\"'\"'s here'"
    assert ["-o", "IdentityFile=/keys/my key"] == argv[argv.index("IdentityFile=/keys/my key") - 1:][:2]
    with pytest.raises(UsageError, match="Key=Value"):
        SshTransport("jetson", ["-oProxyCommand=x"])


def test_remote_store_checks_hashes_and_unpacks_directories(tmp_path):
    """The receiving end on its own: files are kept only under their true hash; directories arrive as tar."""
    import hashlib
    import io
    import tarfile

    from lsnet_deploy.bench.provenance import file_sha256
    from lsnet_deploy.bench.remote import check_name, store

    data = b"model bytes" * 100
    name = hashlib.sha256(data).hexdigest() + ".onnx"
    stream = io.BytesIO(data + b'{"next": "header"}\n')
    assert store(tmp_path, name, stream, len(data), is_tar=False).read_bytes() == data
    assert stream.readline() == b'{"next": "header"}\n'           # exactly `size` bytes were consumed
    with pytest.raises(ValueError, match="altered in transfer"):
        store(tmp_path, "0" * 64 + ".onnx", io.BytesIO(data), len(data), is_tar=False)
    with pytest.raises(ValueError, match="cut short"):
        store(tmp_path, name, io.BytesIO(data[:10]), len(data), is_tar=False)
    assert not (tmp_path / ("0" * 64 + ".onnx")).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]     # no staging left behind
    for bad in ("../x.onnx", "a" * 64 + "/x", "abc.onnx"):
        with pytest.raises(ValueError, match="content-addressed"):
            check_name(bad)

    package = tmp_path / "src" / "m.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "w.bin").write_bytes(b"\x01" * 50)
    (package / "Manifest.json").write_text("{}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(package, arcname=package.name)
    payload = buffer.getvalue()
    name = file_sha256(package) + ".mlpackage"
    stored = store(tmp_path, name, io.BytesIO(payload), len(payload), is_tar=True)
    assert stored.is_dir() and file_sha256(stored) == file_sha256(package)
