"""Android Debug Bridge: which device, commands on it with their exit codes, and files pushed once.

Everything goes through the system's ``adb`` client as an argument list (never a local shell). The
device's shell gets one command string, built by the caller with ``shlex`` quoting. Exit codes come back
through a marker line the command echoes (``@@lsnet-exit N``), so devices whose adbd predates the shell
protocol (Android 6 and older, where ``adb shell`` always exits 0) report failures too.

``AdbTransport`` carries the Python far end (``bench.remote serve``) over ``adb shell`` for Linux devices
with Python, as ``SshTransport`` does over ssh. ``DeviceFiles`` keeps models and tools on the device,
named by their SHA-256 so an unchanged file is pushed once; a push lands under a temporary name and is
renamed only when complete, so an interrupted or failed push (a full disk) never leaves a wrong file
under a cached name.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError
from .targets import Transport

EXIT_MARKER = "@@lsnet-exit"
#: how long plain housekeeping commands (ls, mkdir, getprop) may take
QUICK_TIMEOUT_S = 30.0
ANDROID_TMP = "/data/local/tmp"
LINUX_TMP = "/tmp"
BENCH_SUBDIR = "lsnet-bench"

#: what to do about each state ``adb devices`` can show instead of ``device``
STATE_HINTS = {
    "unauthorized": "accept the 'Allow USB debugging' prompt on the device (unlock it first), then retry",
    "offline": "the device does not answer: unplug and replug it, or run `adb reconnect offline`",
    "no permissions": "this user may not open the USB device: install Android's udev rules (apt-get install "
                      "android-sdk-platform-tools-common) or run adb as a user in the plugdev group",
    "authorizing": "the device is still authorizing this computer: wait a few seconds and retry",
    "connecting": "adb is still connecting to the device: wait a few seconds and retry",
    "bootloader": "the device is in its bootloader: boot Android first",
    "recovery": "the device is in recovery: boot Android first",
    "sideload": "the device is in sideload mode: boot Android first",
}


def adb_executable() -> str:
    """The ``adb`` client on PATH.

    Raises:
        RuntimeUnavailableError: adb is not installed.
    """
    found = shutil.which("adb")
    if found is None:
        raise RuntimeUnavailableError("adb is not installed here: install Android's platform-tools (Debian/Ubuntu: "
                                      "apt-get install adb, or the SDK's platform-tools) and put adb on PATH")
    return found


@dataclass(frozen=True)
class AttachedDevice:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        model = self.details.get("model")
        return f"{self.serial} ({self.state}{', ' + model if model else ''})"


def parse_devices(text: str) -> list[AttachedDevice]:
    """Read ``adb devices -l`` output (states ``device``, ``unauthorized``, ``offline``, ``no permissions``...)."""
    devices = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith(("List of devices", "*", "adb server", "adb: ")):
            continue
        serial, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
        rest = rest.strip()
        details = dict(re.findall(r"(\w+):(\S+)", rest))
        state = re.split(r"\s+\w+:\S+", rest)[0].strip() if rest else "unknown"
        if state.startswith("no permissions"):
            state = "no permissions"
        devices.append(AttachedDevice(serial.strip(), state, details))
    return devices


def list_devices() -> list[AttachedDevice]:
    """The devices the adb server knows about.

    Raises:
        RuntimeUnavailableError: no adb, or an adb server that cannot start.
    """
    adb = adb_executable()
    try:
        done = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailableError(f"`adb devices` did not answer within {QUICK_TIMEOUT_S:g} s; restart the adb "
                                      "server (adb kill-server)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeUnavailableError(f"`adb devices` failed: {last}")
    return parse_devices(done.stdout)


def choose_device(serial: str | None, devices: list[AttachedDevice]) -> AttachedDevice:
    """The device a run uses: ``serial``, or the only one attached.

    Raises:
        RuntimeUnavailableError: no device, the serial is not attached, or the device is not usable
            (unauthorized, offline ...), with what to do about it.
        UsageError: several devices and no serial (they are listed).
    """
    if serial:
        chosen = next((d for d in devices if d.serial == serial), None)
        if chosen is None:
            attached = ", ".join(str(d) for d in devices) or "none"
            raise RuntimeUnavailableError(f"device {serial} is not attached (adb devices lists: {attached})")
    elif not devices:
        raise RuntimeUnavailableError("no Android device is attached (adb devices lists none): plug one in with USB "
                                      "debugging on, or `adb connect HOST:PORT`")
    elif len(devices) > 1:
        raise UsageError(f"{len(devices)} devices are attached: {', '.join(str(d) for d in devices)}; choose one "
                         f"with --adb SERIAL (e.g. --adb {devices[0].serial})")
    else:
        chosen = devices[0]
    if chosen.state != "device":
        hint = STATE_HINTS.get(chosen.state, "check it with `adb devices -l`")
        raise RuntimeUnavailableError(f"device {chosen.serial} is {chosen.state}: {hint}")
    return chosen


@dataclass
class ShellResult:
    """Exit code and output of one command run on the device."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr (tools print their results on either)."""
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr


class CommandTimeout(LsnetDeployError):
    """A command on the device did not finish in time (it has been stopped)."""


class AdbDevice:
    """One attached device, reached with ``adb -s SERIAL``."""

    def __init__(self, serial: str):
        self.serial = serial
        self.adb = adb_executable()

    def describe(self) -> str:
        """``adb:SERIAL``: recorded as each result's target."""
        return f"adb:{self.serial}"

    def argv(self, *args: str) -> list[str]:
        """The local argument list of an adb command for this device."""
        return [self.adb, "-s", self.serial, *args]

    def shell(self, command: str, timeout: float | None = QUICK_TIMEOUT_S) -> ShellResult:
        """Run ``command`` (one shell command line, quoted by the caller) on the device.

        Raises:
            CommandTimeout: it ran longer than ``timeout`` seconds (the local adb client is stopped).
            RuntimeUnavailableError: the device went away.
        """
        wrapped = f"{command}\nprintf '\\n{EXIT_MARKER} %d\\n' $?"
        try:
            done = subprocess.run(self.argv("shell", wrapped), capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"`{_short(command)}` on {self.describe()} did not finish within {timeout:g} s") \
                from None
        stdout = done.stdout.decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
        marker = re.search(rf"^{EXIT_MARKER} (\d+)\s*$", stdout, re.MULTILINE)
        if marker is None:
            self._raise_if_gone(done.returncode, stderr)
            return ShellResult(done.returncode or 255, stdout, stderr)
        body = stdout[:marker.start()]
        return ShellResult(int(marker.group(1)), body[:-1] if body.endswith("\n") else body, stderr)

    def _raise_if_gone(self, returncode: int, stderr: str) -> None:
        text = stderr.strip()
        for needle, state in (("unauthorized", "unauthorized"), ("offline", "offline"), ("not found", "gone"),
                              ("no devices", "gone"), ("closed", "gone")):
            if needle in text and text.startswith(("adb: ", "error: ")):
                hint = STATE_HINTS.get(state, "check the cable and `adb devices -l`")
                raise RuntimeUnavailableError(f"lost device {self.serial} ({text.splitlines()[-1]}): {hint}")

    def check(self, command: str, what: str, timeout: float | None = QUICK_TIMEOUT_S) -> str:
        """Run ``command`` and return its stdout; a non-zero exit becomes one line naming ``what``.

        Raises:
            LsnetDeployError: the command failed.
        """
        result = self.shell(command, timeout)
        if result.returncode != 0:
            last = (result.output.strip().splitlines() or ["no message"])[-1]
            raise LsnetDeployError(f"{what} failed on {self.describe()} (exit {result.returncode}): {last}")
        return result.stdout

    def push(self, local: Path, remote: str, timeout: float | None = None) -> None:
        """Copy a file to the device.

        Raises:
            LsnetDeployError: the push failed; a full device disk is named as such.
        """
        try:
            done = subprocess.run(self.argv("push", str(local), remote), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"adb push of {local.name} to {self.describe()} did not finish within "
                                 f"{timeout:g} s") from None
        if done.returncode != 0:
            lines = (done.stderr + "\n" + done.stdout).strip().splitlines() or ["no message"]
            # adb 34 prints its error on stdout, followed by a "1 file pushed" line that is not true
            message = next((ln for ln in lines if "error" in ln.lower()), lines[-1]).strip()
            if "No space left" in message or "ENOSPC" in message:
                directory = remote.rsplit("/", 1)[0] or "/"
                raise LsnetDeployError(f"the device's storage is full: adb push of {local.name} to "
                                       f"{self.describe()}:{directory} failed (No space left on device); free space "
                                       f"there (adb -s {self.serial} shell df {directory}) or choose --device-dir")
            self._raise_if_gone(done.returncode, done.stderr)
            raise LsnetDeployError(f"adb push of {local.name} to {self.describe()}:{remote} failed: {message}")

    def pull(self, remote: str, local: Path, timeout: float | None = QUICK_TIMEOUT_S) -> None:
        """Copy a file from the device.

        Raises:
            LsnetDeployError: the pull failed.
        """
        done = subprocess.run(self.argv("pull", remote, str(local)), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            message = (done.stderr.strip() or "no message").splitlines()[-1]
            raise LsnetDeployError(f"adb pull of {self.describe()}:{remote} failed: {message}")

    def work_dir(self, requested: str | None) -> str:
        """The device folder lsnet-bench keeps its cache and run files in: ``requested``, else
        ``/data/local/tmp/lsnet-bench`` on Android (the folder adb's shell user may write), else
        ``/tmp/lsnet-bench`` on a Linux device."""
        if requested:
            if not requested.startswith("/"):
                raise UsageError(f"--device-dir {requested!r} must be an absolute path on the device")
            return requested.rstrip("/") or "/"
        android = self.shell(f"test -d {ANDROID_TMP}").returncode == 0
        return f"{ANDROID_TMP if android else LINUX_TMP}/{BENCH_SUBDIR}"


def _short(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[:limit - 3] + "..."


class DeviceFiles:
    """Files kept on the device under ``<work dir>/cache``, named by content.

    Args:
        device: the device.
        root: the work directory on the device (``AdbDevice.work_dir``).
    """

    def __init__(self, device: AdbDevice, root: str):
        self.device = device
        self.root = root
        self.cache = f"{root}/cache"
        self._present: set[str] | None = None
        self.pushed: list[str] = []

    def present(self) -> set[str]:
        """Names already in the device cache (read once, then kept up to date)."""
        if self._present is None:
            listing = self.device.check(f"mkdir -p {shlex.quote(self.cache)} && ls -a {shlex.quote(self.cache)}",
                                        f"creating {self.cache}")
            self._present = {n for n in listing.split() if n and not n.startswith(".")}
        return self._present

    def ensure(self, local: Path, name: str, executable: bool = False) -> str:
        """The device path of ``local`` in the cache, pushing it first if it is not there.

        Args:
            local: the file here.
            name: its content-addressed name (``<sha256><suffix>`` or ``<sha256>-<tool>``).
            executable: mark it executable (tools).

        Raises:
            LsnetDeployError: the push, a full disk included, or the rename failed (nothing is left
                under ``name``).
        """
        target = f"{self.cache}/{name}"
        if name in self.present():
            return target
        partial = f"{self.cache}/.{name}.part-{os.getpid()}"
        try:
            self.device.push(local, partial)
            mode = f"chmod 755 {shlex.quote(partial)} && " if executable else ""
            self.device.check(f"{mode}mv -f {shlex.quote(partial)} {shlex.quote(target)}", f"storing {local.name}")
        except BaseException:
            self.device.shell(f"rm -f {shlex.quote(partial)}")
            raise
        self.present().add(name)
        self.pushed.append(name)
        return target


class AdbTransport(Transport):
    """``adb -s SERIAL shell``: carries the Python far end's stdin and stdout like ssh does.

    For Linux devices (and phones with Termux) that have Python and lsnet-deploy. The command line is
    built with ``shlex.join``, so every argument reaches the device's shell as one word.
    """

    def __init__(self, serial: str):
        self.serial = serial
        self.adb = adb_executable()

    def command(self, remote_argv: list[str]) -> list[str]:
        """``adb -s SERIAL shell 'quoted command line'``."""
        return [self.adb, "-s", self.serial, "shell", shlex.join(remote_argv)]

    def describe(self) -> str:
        """``adb:SERIAL``."""
        return f"adb:{self.serial}"

    def failure(self, returncode: int, stderr: str) -> str | None:
        """A lost or unusable device, in one line (None for the far end's own failures)."""
        text = stderr.strip()
        if text.startswith(("adb: ", "error: ")) and any(w in text for w in ("offline", "unauthorized", "not found")):
            return f"cannot reach {self.serial} over adb: {text.splitlines()[-1]}"
        return None


__all__ = ["AdbDevice", "AdbTransport", "AttachedDevice", "DeviceFiles", "ShellResult", "CommandTimeout",
           "adb_executable", "choose_device", "list_devices", "parse_devices", "STATE_HINTS"]
