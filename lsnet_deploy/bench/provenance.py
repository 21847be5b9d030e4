"""Where a number came from: the machine, its state, and the exact file that was measured.

Every probe is best effort: a value that cannot be read here is recorded as missing (or as the reason
it is missing), never an error, because the same code runs on laptops, CI containers and Jetson boards.
"""

from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from ..version import __version__

PROBE_TIMEOUT_S = 5.0


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _command(argv: list[str]) -> tuple[int | None, str]:
    """(exit code, stdout+stderr) of a probe command; (None, reason) when it cannot run."""
    if shutil.which(argv[0]) is None:
        return None, f"{argv[0]} not found"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{argv[0]} failed: {exc}"
    return done.returncode, (done.stdout + done.stderr).strip()


def now_utc() -> str:
    """The current time, ISO 8601 in UTC with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a directory artifact (``.mlpackage``: relative names and contents)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def artifact_size(path: str | Path) -> int:
    """Bytes of a file or of all files under a directory artifact."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def cpu_model() -> str:
    """The processor's marketing name (``Intel(R) Xeon(R) ...``, ``ARMv8 Processor rev 1``, ``Apple M2``)."""
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", info, re.MULTILINE)
        if match:
            return match.group(1).strip()
    if sys.platform == "darwin":
        code, out = _command(["sysctl", "-n", "machdep.cpu.brand_string"])
        if code == 0 and out:
            return out
    code, out = _command(["lscpu"])
    if code == 0:
        match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> int | None:
    """CPUs this process may run on (a container's quota of cores, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def cpu_state() -> dict:
    """Frequency governor, current and maximum frequency of CPU 0 where Linux exposes them."""
    base = "/sys/devices/system/cpu/cpu0/cpufreq"
    state = {"governor": _read(f"{base}/scaling_governor")}
    for key, name in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "scaling_max_freq"),
                      ("min_mhz", "scaling_min_freq")):
        value = _read(f"{base}/{name}")
        state[key] = round(int(value) / 1000) if value and value.isdigit() else None
    return state


def temperatures() -> dict[str, float]:
    """Thermal zones (``{type: degrees C}``) where readable."""
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        kind, value = _read(f"{zone}/type"), _read(f"{zone}/temp")
        if value and value.lstrip("-").isdigit():
            temps[kind or Path(zone).name] = int(value) / 1000
    return temps


def nvidia_gpus() -> list[dict] | None:
    """Name, driver, memory, clocks and temperature of each NVIDIA GPU, from ``nvidia-smi``."""
    fields = ["index", "name", "driver_version", "memory.total", "clocks.sm", "clocks.max.sm", "temperature.gpu"]
    code, out = _command(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    if code != 0:
        return None
    gpus = []
    for line in out.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(fields):
            gpus.append(dict(zip(fields, values)))
    return gpus or None


def parse_nvpmodel(text: str) -> dict:
    """``nvpmodel -q`` output -> ``{"power_mode": "MAXN", "mode_id": 0}``."""
    result: dict = {}
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        match = re.match(r"NV Power Mode\s*:\s*(.+)$", line)
        if match:
            result["power_mode"] = match.group(1).strip()
            following = next((ln for ln in lines[i + 1:] if ln), "")
            if following.isdigit():
                result["mode_id"] = int(following)
    return result


def parse_jetson_clocks(text: str) -> dict:
    """``jetson_clocks --show`` output -> whether CPU, GPU and memory clocks are pinned at their maximum.

    ``jetson_clocks`` locks a clock by raising its minimum to its maximum, so a clock counts as locked
    when ``MinFreq == MaxFreq``; ``locked`` is True only if every listed clock is.
    """
    clocks = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\S+?):?\s.*?MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)", line)
        if not match:
            continue
        name, low, high, current = match.group(1), *(int(v) for v in match.groups()[1:])
        if "Online=0" in line:
            continue
        clocks[name] = {"min": low, "max": high, "current": current, "locked": low == high}
    result: dict = {"clocks": clocks, "locked": all(c["locked"] for c in clocks.values()) if clocks else None}
    mode = parse_nvpmodel(text)
    if mode:
        result.update(mode)
    return result


def jetson_state() -> dict | None:
    """Power mode and clock locking on an NVIDIA Jetson (None elsewhere)."""
    release = _read("/etc/nv_tegra_release")
    if release is None and shutil.which("nvpmodel") is None:
        return None
    state: dict = {"board": (_read("/proc/device-tree/model") or "").rstrip("\x00") or None,
                   "l4t": release.splitlines()[0] if release else None}
    code, out = _command(["nvpmodel", "-q"])
    state.update(parse_nvpmodel(out) if code == 0 else {"power_mode": f"unavailable: {out}"})
    code, out = _command(["jetson_clocks", "--show"])
    if code == 0:
        state["jetson_clocks"] = parse_jetson_clocks(out)
        state["clocks_locked"] = state["jetson_clocks"]["locked"]
    else:
        state["clocks_locked"] = None
        state["jetson_clocks"] = f"unavailable: {out.splitlines()[-1] if out else 'exit ' + str(code)}" \
            " (jetson_clocks --show needs root: run lsnet-bench with sudo to record it)"
    return state


def machine_info() -> dict:
    """Everything about this machine that can change a latency: recorded with every result."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    info = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable_cpus(),
        "cpu_state": cpu_state(),
        "temperatures_c": temperatures(),
        "load_avg": load,
        "gpus": nvidia_gpus(),
        "jetson": jetson_state(),
        "lsnet_deploy_version": __version__,
    }
    return info


def cuda_device_info(device: str) -> dict:
    """Name, capability and CUDA version of a torch CUDA device ({} if CUDA is not usable)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {}
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        return {"gpu": props.name, "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "gpu_memory_mb": props.total_memory // (1 << 20)}
    except Exception:  # a broken driver must not stop the record
        return {}
