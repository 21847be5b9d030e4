"""What every result records about its machine and file, and the Jetson probes' parsing."""

from __future__ import annotations

import hashlib

from lsnet_deploy.bench.provenance import (file_sha256, machine_info, parse_jetson_clocks, parse_nvpmodel)

# In the format `jetson_clocks --show` prints on JetPack 6 (AGX Orin); hand-written, not captured here.
JETSON_CLOCKS_LOCKED = """\
SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu11: Online=0 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE: Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
FAN Dynamic Speed control=active hwmon4_pwm=0
NV Power Mode: MAXN
"""


def test_nvpmodel_output():
    assert parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"power_mode": "MAXN", "mode_id": 0}
    assert parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n2") == {"power_mode": "15W",
                                                                                         "mode_id": 2}
    assert parse_nvpmodel("nvpmodel: command failed") == {}


def test_jetson_clocks_locked_and_not():
    state = parse_jetson_clocks(JETSON_CLOCKS_LOCKED)
    assert state["power_mode"] == "MAXN"
    assert set(state["clocks"]) == {"cpu0", "cpu1", "GPU", "EMC", "DLA0_CORE"}   # offline cpu11 left out
    assert state["clocks"]["GPU"] == {"min": 1300500000, "max": 1300500000, "current": 1300500000, "locked": True}
    assert state["clocks"]["EMC"]["locked"] is False
    assert state["locked"] is False              # EMC and DLA are not pinned
    pinned = "\n".join(ln for ln in JETSON_CLOCKS_LOCKED.splitlines() if not ln.startswith(("EMC", "DLA")))
    assert parse_jetson_clocks(pinned)["locked"] is True
    assert parse_jetson_clocks("")["locked"] is None


def test_machine_info_here():
    info = machine_info()
    assert info["hostname"] and info["os"] and info["python"] and info["cpu"]
    assert info["cpu_count"] >= 1 and 1 <= info["cpu_usable"] <= info["cpu_count"]
    assert set(info["cpu_state"]) == {"governor", "cur_mhz", "max_mhz", "min_mhz"}
    assert isinstance(info["temperatures_c"], dict)
    assert info["jetson"] is None or "power_mode" in info["jetson"]
    assert info["lsnet_deploy_version"]


def test_file_and_directory_hashes(tmp_path):
    file = tmp_path / "model.onnx"
    file.write_bytes(b"abc" * 1000)
    assert file_sha256(file) == hashlib.sha256(b"abc" * 1000).hexdigest()
    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    (package / "Data" / "weights.bin").write_bytes(b"\x00" * 10)
    first = file_sha256(package)
    assert first == file_sha256(package)
    (package / "Data" / "weights.bin").write_bytes(b"\x01" * 10)
    assert file_sha256(package) != first
