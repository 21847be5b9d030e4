"""The emulated arm64 environment: what it is made of, where it is cached, and finding it.

An aarch64 Python 3.11 (Debian bookworm's arm64 packages unpacked into a folder, the *sysroot*) with the
aarch64 wheels of the runtimes from PyPI, run by ``qemu-aarch64-static -cpu cortex-a76 -L SYSROOT``.
The ``-L`` prefix also redirects ``/proc/cpuinfo`` and ``/sys/devices/system/cpu/...`` into the sysroot,
where we write an ARM description of the CPU: ONNX Runtime's CPU detection crashes on this x86 host's.

The cache folder is named by a hash of everything that goes into it (package names, wheel versions, the
CPU description), so a change makes a new folder and never a mixed one. ``setup.py`` builds it;
``find_environment`` returns it or says in one line what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import RuntimeUnavailableError

#: the emulator binary (Debian's qemu-user-static)
QEMU = "qemu-aarch64-static"
#: the CPU qemu emulates: a real phone core (Armv8.2-A: fp16 arithmetic, dot products; no i8mm, no SVE).
#: ``-cpu max`` also runs, about 6x slower on LiteRT (it takes SVE/SME paths no phone core of 2024 has).
CPU = "cortex-a76"
#: /proc/cpuinfo fields of a Cortex-A76 (MIDR: implementer 0x41 Arm, part 0xd0b) and its features
CPU_PART = {"CPU implementer": "0x41", "CPU architecture": "8", "CPU variant": "0x4", "CPU part": "0xd0b",
            "CPU revision": "1"}
CPU_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                "asimddp")
#: cores the sysroot's /sys says the machine has (a phone's big cluster); runners use one thread by default
CPU_COUNT = 4
#: Debian (bookworm) arm64 packages: Python 3.11 and the shared libraries the wheels link against
DEBIAN_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1",
                   "libstdc++6", "libgomp1", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0",
                   "liblzma5", "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8",
                   "libdb5.3", "libcrypt1", "libnsl2", "libtirpc3")
#: PyPI distributions installed for aarch64 at the host's versions (the same runtime as the x86 runs),
#: with those the runtimes import and do not bundle
WHEELS = ("onnxruntime", "ai-edge-litert", "numpy", "flatbuffers", "ml-dtypes")
#: Debian (bookworm) amd64 packages of the aarch64 cross compiler that builds the ExecuTorch runner
#: (``--with-executorch``); unpacked into a folder like the sysroot, deleted after the build
CROSS_PACKAGES = ("binutils-aarch64-linux-gnu", "cpp-12-aarch64-linux-gnu", "g++-12-aarch64-linux-gnu",
                  "gcc-12-aarch64-linux-gnu", "gcc-12-aarch64-linux-gnu-base", "gcc-12-cross-base",
                  "libc6-arm64-cross", "libc6-dev-arm64-cross", "libgcc-12-dev-arm64-cross",
                  "libgcc-s1-arm64-cross", "libstdc++-12-dev-arm64-cross", "libstdc++6-arm64-cross",
                  "linux-libc-dev-arm64-cross", "libatomic1-arm64-cross", "libasan8-arm64-cross",
                  "libhwasan0-arm64-cross", "liblsan0-arm64-cross", "libtsan2-arm64-cross",
                  "libubsan1-arm64-cross", "libgomp1-arm64-cross", "libitm1-arm64-cross")
#: the ExecuTorch runtime libraries the runner links (from the executorch aarch64 wheel; none needs torch)
EXECUTORCH_LIBRARIES = ("executorch", "executorch_backend_xnnpack", "executorch_kernels_optimized",
                        "executorch_kernels_quantized", "executorch_threadpool")
PTE_LIBRARY = "libpte_arm64.so"
#: the pinned Python the sysroot provides
PYTHON_VERSION = "3.11"
#: platform tags of the aarch64 wheels the sysroot's glibc (2.36) can load
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                   "manylinux2014_aarch64")
#: bump when the layout below changes
LAYOUT_VERSION = 1
#: overrides the cache root (default ~/.cache/lsnet-deploy)
CACHE_ENV = "LSNET_DEPLOY_CACHE"
MANIFEST = "manifest.json"
SETUP_COMMAND = "python -m lsnet_deploy.arm.setup"


def wheel_pins() -> dict[str, str]:
    """distribution -> version: the host's installed version of each wheel.

    Raises:
        RuntimeUnavailableError: a runtime is not installed on the host (its version is unknown).
    """
    pins = {}
    for name in WHEELS:
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            extra = {"onnxruntime": "onnx"}.get(name, "litert")
            raise RuntimeUnavailableError(
                f"{name} is not installed here, so the arm64 build to fetch is unknown: "
                f'pip install "lsnet-deploy[{extra}]"') from None
    return pins


def cpuinfo_text() -> str:
    """The ``/proc/cpuinfo`` the emulated programs read: ``CPU_COUNT`` Cortex-A76 cores."""
    blocks = []
    for index in range(CPU_COUNT):
        fields = {"processor": str(index), "BogoMIPS": "50.00", "Features": CPU_FEATURES, **CPU_PART}
        blocks.append("".join(f"{key}\t: {value}\n" for key, value in fields.items()))
    return "\n".join(blocks) + "\n"


def environment_key(pins: dict[str, str]) -> str:
    """The cache folder's name: ``arm64-`` and a hash of what goes into the folder."""
    recipe = {"layout": LAYOUT_VERSION, "debian": sorted(DEBIAN_PACKAGES), "wheels": pins,
              "platforms": WHEEL_PLATFORMS, "cpuinfo": cpuinfo_text(), "cpus": CPU_COUNT}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"arm64-{digest}"


def cache_root() -> Path:
    """``$LSNET_DEPLOY_CACHE`` or ``~/.cache/lsnet-deploy``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lsnet-deploy").expanduser()


@dataclass(frozen=True)
class ArmEnvironment:
    """A built environment.

    Attributes:
        root: the cache folder.
        qemu: the emulator binary.
        cpu: the CPU model qemu emulates.
    """

    root: Path
    qemu: str
    cpu: str = CPU

    @property
    def sysroot(self) -> Path:
        """The unpacked Debian arm64 packages, with the ARM ``proc`` and ``sys`` files."""
        return self.root / "sysroot"

    @property
    def site_packages(self) -> Path:
        """The unpacked aarch64 wheels."""
        return self.root / "site"

    @property
    def python(self) -> Path:
        """The aarch64 interpreter."""
        return self.sysroot / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def executorch_dir(self) -> Path:
        """The ExecuTorch step's folder (``--with-executorch``), named by the host's executorch version."""
        try:
            version = metadata.version("executorch")
        except metadata.PackageNotFoundError:
            version = "none"
        return self.root / f"executorch-{version}"

    @property
    def pte_library(self) -> Path | None:
        """The aarch64 ExecuTorch runner library, or None when ``--with-executorch`` has not built it."""
        path = self.executorch_dir / "lib" / PTE_LIBRARY
        return path if (self.executorch_dir / MANIFEST).is_file() and path.is_file() else None

    def manifest(self) -> dict:
        """What was installed (Debian package versions, wheel files), as the set-up recorded it."""
        return json.loads((self.root / MANIFEST).read_text())

    def command(self, *args: str) -> list[str]:
        """The command line that runs the aarch64 Python with ``args``."""
        return [self.qemu, "-cpu", self.cpu, "-L", str(self.sysroot), str(self.python), *args]

    def process_env(self) -> dict[str, str]:
        """The environment of an emulated process: the wheels on its path and nothing of the host's."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "LD_")) and key != "VIRTUAL_ENV"}
        env.update({"PYTHONPATH": str(self.site_packages), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONUNBUFFERED": "1"})
        if self.pte_library is not None:
            env["LSNET_PTE_ARM64"] = str(self.pte_library)
        return env


def find_qemu() -> str | None:
    """The path of ``qemu-aarch64-static``, or None."""
    return shutil.which(QEMU)


def find_environment() -> ArmEnvironment:
    """The cached environment for the host's runtime versions.

    Raises:
        RuntimeUnavailableError: no emulator, or no complete cached environment (the message names the fix).
    """
    qemu = find_qemu()
    if qemu is None:
        raise RuntimeUnavailableError(f"{QEMU} is not installed; on Debian/Ubuntu: apt-get install qemu-user-static")
    root = cache_root() / environment_key(wheel_pins())
    if not (root / MANIFEST).is_file():
        raise RuntimeUnavailableError(f"no arm64 environment cached at {root}; build it with `{SETUP_COMMAND}`")
    return ArmEnvironment(root=root, qemu=qemu)
