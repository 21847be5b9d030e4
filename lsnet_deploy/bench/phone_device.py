"""The device record of a phone run: what the device is, how its CPUs are clustered, and its thermal and
battery state before and after each group.

Each probe runs as one shell script on the device that prints sections (``@@NAME ARG`` lines, then the
section's text); the parsers here read that text, so they are tested on recorded output. Every field
that a source could not provide is None and its reason is kept under ``absent`` (a Linux board has no
``getprop`` or ``dumpsys``; a VM has no ``cpufreq``): nothing is guessed.

Sources (as practised in phone labs and in Qualcomm AI Hub's device records):

* ``getprop``: ``ro.product.model``, ``ro.product.manufacturer``, ``ro.soc.manufacturer``,
  ``ro.soc.model`` (Android 12+), ``ro.board.platform``, ``ro.build.version.sdk``,
  ``ro.build.version.release``, ``ro.product.cpu.abi``;
* ``/sys/devices/system/cpu/cpufreq/policy*``: the clusters (``related_cpus``), governor and
  frequencies (kHz);
* ``/sys/class/thermal/thermal_zone*``: zone types and temperatures (millidegrees);
  ``dumpsys thermalservice``: Android's thermal status (0 none ... 6 shutdown);
* ``dumpsys battery`` (temperature in tenths of a degree) or ``/sys/class/power_supply``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

PROPERTIES = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "soc_manufacturer": "ro.soc.manufacturer",
    "soc_model": "ro.soc.model",
    "board_platform": "ro.board.platform",
    "sdk": "ro.build.version.sdk",
    "release": "ro.build.version.release",
    "abi": "ro.product.cpu.abi",
    "abilist": "ro.product.cpu.abilist",
}
POLICY_FILES = ("related_cpus", "scaling_governor", "scaling_min_freq", "scaling_max_freq", "scaling_cur_freq",
                "cpuinfo_min_freq", "cpuinfo_max_freq")
#: Android's thermal status levels (android.os.PowerManager THERMAL_STATUS_*)
THERMAL_STATUS = {0: "none", 1: "light", 2: "moderate", 3: "severe", 4: "critical", 5: "emergency", 6: "shutdown"}
#: thermal zone types that measure the SoC (CPU clusters, GPU, the SoC's own sensors)
SOC_ZONE = re.compile(r"cpu|soc|tsens|cluster|apc|gpu|x86_pkg|core|big|little|mid|prime|ddr|npu|nsp|cdsp",
                      re.IGNORECASE)
#: readings outside this range (°C) are sensor placeholders, not temperatures
PLAUSIBLE_C = (-40.0, 150.0)

STATIC_SCRIPT = r"""
echo "@@getprop"
if command -v getprop >/dev/null 2>&1; then getprop
else echo "@@absent getprop is not on this device (not Android)"; fi
echo "@@uname"
uname -srm 2>&1
echo "@@online"
cat /sys/devices/system/cpu/online 2>/dev/null || echo "@@absent /sys/devices/system/cpu/online is not readable"
for p in /sys/devices/system/cpu/cpufreq/policy*; do
  [ -d "$p" ] || continue
  echo "@@policy ${p##*/}"
  for f in related_cpus scaling_governor scaling_min_freq scaling_max_freq scaling_cur_freq \
           cpuinfo_min_freq cpuinfo_max_freq; do
    [ -r "$p/$f" ] && echo "$f=$(cat "$p/$f" 2>/dev/null)"
  done
done
echo "@@taskset"
command -v taskset 2>/dev/null || echo "@@absent taskset is not on this device"
"""

STATE_SCRIPT = r"""
for z in /sys/class/thermal/thermal_zone*; do
  [ -d "$z" ] || continue
  echo "@@zone ${z##*/}"
  echo "type=$(cat "$z/type" 2>/dev/null)"
  echo "temp=$(cat "$z/temp" 2>/dev/null)"
done
for p in /sys/devices/system/cpu/cpufreq/policy*; do
  [ -d "$p" ] || continue
  echo "@@freq ${p##*/}"
  echo "scaling_cur_freq=$(cat "$p/scaling_cur_freq" 2>/dev/null)"
  echo "scaling_max_freq=$(cat "$p/scaling_max_freq" 2>/dev/null)"
done
echo "@@thermalservice"
if command -v dumpsys >/dev/null 2>&1; then dumpsys thermalservice 2>&1 | head -60
else echo "@@absent dumpsys is not on this device (not Android)"; fi
echo "@@battery"
if command -v dumpsys >/dev/null 2>&1; then dumpsys battery 2>&1 | head -40
else echo "@@absent dumpsys is not on this device (not Android)"; fi
for s in /sys/class/power_supply/*; do
  [ -d "$s" ] || continue
  echo "@@supply ${s##*/}"
  for f in type capacity temp status online; do [ -r "$s/$f" ] && echo "$f=$(cat "$s/$f" 2>/dev/null)"; done
done
"""


def sections(text: str) -> list[tuple[str, str, list[str]]]:
    """Split a probe's output into (name, argument, lines) at each ``@@NAME ARG`` line."""
    found: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("@@") and not line.startswith("@@absent"):
            name, _, arg = line[2:].partition(" ")
            found.append((name, arg.strip(), []))
        elif found:
            found[-1][2].append(line)
    return found


def _absent(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("@@absent"):
            return line[len("@@absent"):].strip() or "absent"
    return None


def parse_getprop(text: str) -> dict[str, str]:
    """``[ro.product.model]: [Pixel 8]`` lines -> {property: value}."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE))


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,6`` or ``0 1 2 3`` (related_cpus) -> [0, 1, 2, 3, 6].

    Raises:
        ValueError: not a CPU list.
    """
    cpus: list[int] = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        low, sep, high = part.partition("-")
        cpus.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    return sorted(set(cpus))


def parse_policy(name: str, lines: list[str]) -> dict:
    """One ``cpufreq/policyN`` section -> a cluster: its CPUs, governor and frequencies (kHz)."""
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    try:
        cpus = parse_cpu_list(values.get("related_cpus", ""))
    except ValueError:
        cpus = []
    return {"policy": name, "cpus": cpus, "governor": values.get("scaling_governor") or None,
            "min_khz": _int(values.get("scaling_min_freq")), "max_khz": _int(values.get("scaling_max_freq")),
            "cur_khz": _int(values.get("scaling_cur_freq")), "cpuinfo_min_khz": _int(values.get("cpuinfo_min_freq")),
            "cpuinfo_max_khz": _int(values.get("cpuinfo_max_freq"))}


def parse_static(text: str) -> dict:
    """The device description from ``STATIC_SCRIPT``'s output.

    Returns:
        ``{"properties": {...}, "kernel", "arch", "online_cpus", "clusters", "taskset", "absent": {field:
        reason}}``; every property is present as a key, None when unknown.
    """
    record: dict = {"properties": {k: None for k in PROPERTIES}, "kernel": None, "arch": None, "online_cpus": None,
                    "clusters": None, "taskset": None, "absent": {}}
    absent = record["absent"]
    clusters = []
    for name, arg, lines in sections(text):
        reason = _absent(lines)
        if name == "getprop":
            if reason:
                absent["properties"] = reason
                continue
            props = parse_getprop("\n".join(lines))
            for key, prop in PROPERTIES.items():
                record["properties"][key] = props.get(prop) or None
                if not props.get(prop):
                    absent[f"properties.{key}"] = f"{prop} is not set on this device"
        elif name == "uname":
            parts = " ".join(lines).split()
            if len(parts) >= 3:
                record["kernel"] = " ".join(parts[:-1])
                record["arch"] = parts[-1]
        elif name == "online":
            if reason:
                absent["online_cpus"] = reason
            else:
                try:
                    record["online_cpus"] = parse_cpu_list(" ".join(lines))
                except ValueError:
                    absent["online_cpus"] = f"unreadable CPU list {' '.join(lines)!r}"
        elif name == "policy":
            clusters.append(parse_policy(arg, lines))
        elif name == "taskset":
            if reason:
                absent["taskset"] = reason
            else:
                record["taskset"] = (lines[0].strip() if lines else None) or None
    if clusters:
        record["clusters"] = sorted(clusters, key=lambda c: (c["cpus"] or [0])[0])
    else:
        absent["clusters"] = "no /sys/devices/system/cpu/cpufreq/policy* (no cpufreq driver, e.g. a VM)"
    return record


_HAL_TEMPERATURE = re.compile(r"Temperature\{mValue=([-\d.]+), mType=(-?\d+), mName=([^,]+), mStatus=(\d+)\}")


def parse_thermalservice(text: str) -> dict:
    """``dumpsys thermalservice`` -> ``{"status": N, "status_name": ..., "hal_temperatures": {name: °C}}``.

    Temperatures come from the ``Current temperatures from HAL:`` list only (the ``Cached temperatures``
    list may be old).
    """
    status = re.search(r"Thermal Status:\s*(\d+)", text)
    temps: dict[str, float] = {}
    in_current = False
    for line in text.splitlines():
        if line.strip().endswith(":") and not line.startswith((" ", "\t")):
            in_current = line.strip() == "Current temperatures from HAL:"
            continue
        match = _HAL_TEMPERATURE.search(line)
        if in_current and match:
            temps[match.group(3).strip()] = float(match.group(1))
    value = int(status.group(1)) if status else None
    return {"status": value, "status_name": THERMAL_STATUS.get(value) if value is not None else None,
            "hal_temperatures": temps or None}


def parse_dumpsys_battery(text: str) -> dict:
    """``dumpsys battery`` -> level (%), temperature (°C), whether it is on power, status code."""
    values = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(.+?)\s*$", text, re.MULTILINE))
    level, scale = _int(values.get("level")), _int(values.get("scale")) or 100
    temp = _int(values.get("temperature"))
    powered = [values.get(f"{kind} powered") for kind in ("AC", "USB", "Wireless", "Dock")]
    known = [p for p in powered if p in ("true", "false")]
    return {"level_percent": round(100 * level / scale, 1) if level is not None else None,
            "temperature_c": temp / 10 if temp is not None else None,
            "powered": ("true" in known) if known else None,
            "status": _int(values.get("status")), "source": "dumpsys battery"}


def parse_power_supply(supplies: dict[str, dict]) -> dict | None:
    """``/sys/class/power_supply`` entries -> the battery record (Linux devices without dumpsys)."""
    battery = next((v for v in supplies.values() if v.get("type") == "Battery"), None)
    mains = [v for v in supplies.values() if v.get("type") in ("Mains", "USB", "USB_PD", "USB_C", "Wireless")]
    if battery is None:
        return None
    temp = _int(battery.get("temp"))
    online = [_int(m.get("online")) for m in mains if m.get("online") is not None]
    return {"level_percent": _int(battery.get("capacity")), "temperature_c": temp / 10 if temp is not None else None,
            "powered": any(online) if online else (battery.get("status") in ("Charging", "Full")
                                                   if battery.get("status") else None),
            "status": battery.get("status"), "source": "/sys/class/power_supply"}


def soc_temperature(zones: dict[str, float]) -> tuple[float | None, str | None]:
    """(hottest SoC zone in °C, its name): zones whose type names a CPU, GPU or SoC sensor, else all
    zones; implausible readings are ignored. (None, None) without zones."""
    plausible = {k: v for k, v in zones.items() if PLAUSIBLE_C[0] < v < PLAUSIBLE_C[1]}
    soc = {k: v for k, v in plausible.items() if SOC_ZONE.search(k)} or plausible
    if not soc:
        return None, None
    name = max(soc, key=soc.get)
    return soc[name], name


def parse_state(text: str) -> dict:
    """The thermal, frequency and battery state from ``STATE_SCRIPT``'s output.

    Returns:
        ``{"thermal_zones": {type: °C}, "soc_temp_c", "soc_zone", "thermal_status", "thermal_status_name",
        "cpu_cur_khz": {policy: kHz}, "cpu_max_khz": {policy: kHz}, "battery": {...}, "absent": {...}}``.
    """
    state: dict = {"thermal_zones": {}, "soc_temp_c": None, "soc_zone": None, "thermal_status": None,
                   "thermal_status_name": None, "hal_temperatures": None, "cpu_cur_khz": {}, "cpu_max_khz": {},
                   "battery": None, "absent": {}}
    absent = state["absent"]
    supplies: dict[str, dict] = {}
    battery_reason = None
    for name, arg, lines in sections(text):
        values = dict(line.split("=", 1) for line in lines if "=" in line)
        if name == "zone":
            temp = _int(values.get("temp"))
            if temp is not None:
                zone = values.get("type") or arg
                key = zone if zone not in state["thermal_zones"] else f"{zone}:{arg}"
                state["thermal_zones"][key] = temp / 1000 if abs(temp) >= 1000 else float(temp)
        elif name == "freq":
            state["cpu_cur_khz"][arg] = _int(values.get("scaling_cur_freq"))
            state["cpu_max_khz"][arg] = _int(values.get("scaling_max_freq"))
        elif name == "thermalservice":
            reason = _absent(lines)
            if reason:
                absent["thermal_status"] = reason
            else:
                parsed = parse_thermalservice("\n".join(lines))
                state["thermal_status"], state["thermal_status_name"] = parsed["status"], parsed["status_name"]
                state["hal_temperatures"] = parsed["hal_temperatures"]
                if parsed["status"] is None:
                    absent["thermal_status"] = "dumpsys thermalservice printed no `Thermal Status:` line"
        elif name == "battery":
            battery_reason = _absent(lines)
            if battery_reason is None:
                parsed = parse_dumpsys_battery("\n".join(lines))
                if parsed["level_percent"] is not None or parsed["temperature_c"] is not None:
                    state["battery"] = parsed
                else:
                    battery_reason = "dumpsys battery printed no level or temperature"
        elif name == "supply":
            supplies[arg] = values
    if state["battery"] is None:
        state["battery"] = parse_power_supply(supplies)
        if state["battery"] is None:
            absent["battery"] = "; ".join(filter(None, [battery_reason, "no battery in /sys/class/power_supply"]))
    if not state["thermal_zones"]:
        absent["thermal_zones"] = "no readable /sys/class/thermal/thermal_zone*"
    else:
        state["soc_temp_c"], state["soc_zone"] = soc_temperature(state["thermal_zones"])
    if not state["cpu_cur_khz"]:
        absent["cpu_freq"] = "no /sys/devices/system/cpu/cpufreq/policy*"
    return state


@dataclass(frozen=True)
class CoreChoice:
    """The CPUs a run is pinned to and why."""

    asked: str
    cpus: tuple[int, ...]
    why: str

    @property
    def mask(self) -> str:
        """The ``taskset`` mask in hexadecimal (``f0`` for CPUs 4-7)."""
        return format(sum(1 << c for c in self.cpus), "x")

    def to_dict(self) -> dict:
        """JSON-ready form (with the mask)."""
        return {"asked": self.asked, "cpus": list(self.cpus), "mask": self.mask, "why": self.why}


CORE_CHOICES = ("big", "little", "all")


def choose_cores(asked: str, clusters: list[dict] | None, online: list[int] | None) -> CoreChoice:
    """The CPUs for ``--cores big|little|all|MASK``.

    ``big`` is every cluster but the slowest (by its maximum frequency), i.e. ``taskset f0`` on a 4+4
    phone and the 3+1 big and prime cores on a 4+3+1 one; ``little`` is the slowest cluster. With a
    single cluster, or no cpufreq data at all, every online CPU is the same as far as the device says,
    and the record says so.

    Raises:
        UsageError: a mask that is not hexadecimal, is empty, or names CPUs that are not online.
    """
    asked = asked.strip().lower()
    everything = online or sorted({c for cl in clusters or [] for c in cl["cpus"]})
    if asked not in CORE_CHOICES:
        try:
            value = int(asked.removeprefix("0x"), 16)
        except ValueError:
            raise UsageError(f"--cores {asked!r}: use big, little, all or a hexadecimal CPU mask such as f0") from None
        cpus = tuple(i for i in range(value.bit_length()) if value >> i & 1)
        if not cpus:
            raise UsageError("--cores mask selects no CPU")
        missing = [c for c in cpus if everything and c not in everything]
        if missing:
            raise UsageError(f"--cores {asked}: CPU {', '.join(map(str, missing))} is not online on the device "
                             f"(online: {', '.join(map(str, everything))})")
        return CoreChoice(asked, cpus, "mask given")
    if not everything:
        raise UsageError(f"--cores {asked}: the device lists no online CPU; pass a mask such as --cores f0")
    if asked == "all":
        return CoreChoice(asked, tuple(everything), "every online CPU")
    usable = [c for c in clusters or [] if c["cpus"]]
    if len(usable) < 2:
        why = ("no cpufreq clusters on the device: every online CPU" if not usable
               else "one CPU cluster: every CPU is the same")
        return CoreChoice(asked, tuple(everything), why)
    speed = {c["policy"]: c["cpuinfo_max_khz"] or c["max_khz"] or 0 for c in usable}
    slowest = min(usable, key=lambda c: speed[c["policy"]])
    if asked == "little":
        return CoreChoice(asked, tuple(c for c in slowest["cpus"] if c in everything),
                          f"the slowest cluster ({slowest['policy']}, {speed[slowest['policy']] // 1000} MHz)")
    cpus = tuple(sorted(c for cl in usable if cl is not slowest for c in cl["cpus"] if c in everything))
    return CoreChoice(asked, cpus, f"every cluster but the slowest ({slowest['policy']})")


ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64"}
#: an ABI name (Android's, or ``uname -m``) -> the ELF machine it runs natively
ABI_MACHINE = {"arm64-v8a": "aarch64", "armeabi-v7a": "arm", "armeabi": "arm", "x86_64": "x86_64", "x86": "x86",
               "aarch64": "aarch64", "armv7l": "arm", "armv8l": "arm", "i686": "x86", "riscv64": "riscv64"}
#: without Android's ABI list, the 32-bit machines a 64-bit kernel usually runs too (kernel compat mode)
COMPAT_MACHINES = {"aarch64": {"arm"}, "x86_64": {"x86"}}


def runnable_machines(static: dict) -> set[str] | None:
    """ELF machines the device runs: from ``ro.product.cpu.abilist`` on Android (64-bit-only phones list
    no 32-bit ABI), else the kernel's machine and its usual compat mode; None when unknown."""
    abilist = (static.get("properties") or {}).get("abilist")
    if abilist:
        machines = {ABI_MACHINE[a.strip()] for a in abilist.split(",") if a.strip() in ABI_MACHINE}
        return machines or None
    native = ABI_MACHINE.get(device_abi(static) or "")
    return {native} | COMPAT_MACHINES.get(native, set()) if native else None


def elf_machine(header: bytes) -> str | None:
    """The ELF ``e_machine`` of a file's first bytes (``aarch64``, ``x86_64`` ...), None if not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    code = int.from_bytes(header[18:20], order)
    return ELF_MACHINES.get(code, f"machine {code}")


def device_abi(static: dict) -> str | None:
    """The device's ABI: ``ro.product.cpu.abi``, else the kernel's ``uname -m``."""
    return static["properties"].get("abi") or static.get("arch")


__all__ = ["STATIC_SCRIPT", "STATE_SCRIPT", "PROPERTIES", "CoreChoice", "choose_cores", "parse_static",
           "parse_state", "parse_getprop", "parse_thermalservice", "parse_dumpsys_battery", "soc_temperature",
           "elf_machine", "device_abi", "runnable_machines"]
