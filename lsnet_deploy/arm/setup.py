"""Build the cached arm64 environment: ``python -m lsnet_deploy.arm.setup``.

Steps, all into a staging folder that is renamed into place only when the aarch64 Python has imported
every runtime (so the cache is complete or absent, never half-built):

1. ``apt-get download PKG:arm64`` for ``DEBIAN_PACKAGES`` and ``dpkg -x`` each into ``sysroot/``
   (nothing is installed system-wide; ``dpkg --add-architecture arm64`` and ``apt-get update`` must
   have been run once, as root);
2. the ARM ``proc/cpuinfo`` and ``sys/devices/system/cpu/{possible,present,online}`` under the sysroot;
3. ``pip download --platform manylinux..._aarch64 --only-binary=:all:`` of the wheels at the host's
   versions, unpacked into ``site/``;
4. a smoke test under ``qemu-aarch64-static``; then ``manifest.json`` records what went in.

``--with-executorch`` adds a separately cached step (``build_pte_runner``): the aarch64 ExecuTorch runner
for ``.pte`` files, compiled with Debian's cross compiler against the executorch aarch64 wheel.

Idempotent: an existing complete folder is reused at once. Exit status 0 and the folder's path on
stdout; otherwise status 1 and one line on stderr saying what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..errors import LsnetDeployError, RuntimeUnavailableError
from .environment import (CPU_COUNT, CROSS_PACKAGES, DEBIAN_PACKAGES, EXECUTORCH_LIBRARIES, MANIFEST, PTE_LIBRARY, PYTHON_VERSION, WHEEL_PLATFORMS, ArmEnvironment,
                          QEMU, SETUP_COMMAND, cache_root, cpuinfo_text, environment_key, find_qemu, wheel_pins)

#: the aarch64 ExecuTorch runner's source (built by --with-executorch)
PTE_SOURCE = Path(__file__).with_name("pte_arm64.cpp")
#: what the smoke test imports in the emulated Python
SMOKE_TEST = ("import numpy, onnxruntime; from ai_edge_litert import interpreter; "
              "from ai_edge_litert.compiled_model import CompiledModel; print(onnxruntime.__version__)")


def _run(command: list[str], cwd: Path | None = None, what: str = "", env: dict | None = None) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError:
        raise RuntimeUnavailableError(f"{command[0]} is not installed; it is needed to {what}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("E:", "ERROR"))] or lines[-1:]
        raise RuntimeUnavailableError(f"cannot {what}: {errors[0].strip() if errors else f'exit {done.returncode}'}")
    return done.stdout


def _check_arm64_architecture() -> None:
    listed = _run(["dpkg", "--print-foreign-architectures"], what="ask dpkg for arm64 packages").split()
    if "arm64" not in listed:
        raise RuntimeUnavailableError("Debian's arm64 packages are not visible to apt: run (as root) "
                                      "`dpkg --add-architecture arm64 && apt-get update`")


def build_sysroot(staging: Path, log) -> dict[str, str]:
    """Download and unpack the Debian arm64 packages; write the CPU description. Returns name -> .deb file."""
    debs, sysroot = staging / "debs", staging / "sysroot"
    debs.mkdir()
    sysroot.mkdir()
    log(f"downloading {len(DEBIAN_PACKAGES)} Debian arm64 packages")
    _run(["apt-get", "download", *(f"{name}:arm64" for name in DEBIAN_PACKAGES)], cwd=debs,
         what="download Debian's arm64 packages (is `apt-get update` done and the mirror reachable?)")
    files = {}
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(sysroot)], what=f"unpack {deb.name}")
        files[deb.name.split("_")[0]] = deb.name
    shutil.rmtree(debs)
    (sysroot / "proc").mkdir(exist_ok=True)
    (sysroot / "proc" / "cpuinfo").write_text(cpuinfo_text())
    cpu_dir = sysroot / "sys" / "devices" / "system" / "cpu"
    cpu_dir.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpu_dir / name).write_text(f"0-{CPU_COUNT - 1}\n")
    if not (sysroot / "usr" / "bin" / f"python{PYTHON_VERSION}").is_file():
        raise RuntimeUnavailableError(f"the arm64 packages unpacked without usr/bin/python{PYTHON_VERSION}")
    return files


def install_wheels(staging: Path, pins: dict[str, str], log) -> list[str]:
    """Download the aarch64 wheels from PyPI and unpack them into ``site/``. Returns the wheel file names."""
    wheels, site = staging / "wheels", staging / "site"
    wheels.mkdir()
    site.mkdir()
    requirements = [f"{name}=={version}" for name, version in pins.items()]
    log(f"downloading aarch64 wheels: {', '.join(requirements)}")
    platforms = [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *platforms,
          "--python-version", PYTHON_VERSION, "-d", str(wheels), *requirements],
         what="download the aarch64 wheels from PyPI")
    names = sorted(path.name for path in wheels.glob("*.whl"))
    for name in names:
        with zipfile.ZipFile(wheels / name) as archive:
            archive.extractall(site)
    shutil.rmtree(wheels)
    return names


def smoke_test(environment: ArmEnvironment) -> str:
    """Import the runtimes in the emulated Python; returns what it printed."""
    return _run(environment.command("-c", SMOKE_TEST), what=f"import the runtimes under {QEMU}",
                env=environment.process_env()).strip()


def build_pte_runner(environment: ArmEnvironment, log) -> Path:
    """The ExecuTorch step: the aarch64 runner library, built against the executorch wheel at the host's version.

    Downloads the executorch aarch64 wheel (its runtime libraries and headers; 18 MB) and Debian's aarch64
    cross compiler (21 packages, 54 MB, unpacked into the staging folder), compiles ``pte_arm64.cpp``,
    keeps the library beside the runtime libraries it links, and deletes the rest. Returns the library.
    """
    target = environment.executorch_dir
    if environment.pte_library is not None:
        return environment.pte_library
    version = target.name.split("-", 1)[1]
    if version == "none":
        raise RuntimeUnavailableError('executorch is not installed here: pip install "lsnet-deploy[executorch]"')
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=environment.root))
    try:
        log(f"downloading the executorch {version} aarch64 wheel")
        platforms = [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *platforms,
              "--python-version", PYTHON_VERSION, "-d", str(staging), f"executorch=={version}"],
             what="download the executorch aarch64 wheel from PyPI")
        wheel = next(staging.glob("executorch-*.whl"))
        wheel_dir, lib = staging / "wheel", staging / "lib"
        lib.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(wheel_dir, [name for name in archive.namelist()
                                           if name.startswith(("executorch/include/", "executorch/lib/"))])
        shipped = wheel_dir / "executorch" / "lib"
        for name in EXECUTORCH_LIBRARIES:
            shutil.copy2(shipped / f"lib{name}.so", lib / f"lib{name}.so")
        cross = staging / "cross"
        (staging / "debs").mkdir()
        cross.mkdir()
        log(f"downloading Debian's aarch64 cross compiler ({len(CROSS_PACKAGES)} packages)")
        _run(["apt-get", "download", *CROSS_PACKAGES], cwd=staging / "debs",
             what="download Debian's aarch64 cross compiler")
        for deb in sorted((staging / "debs").glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(cross)], what=f"unpack {deb.name}")
        log("compiling the aarch64 ExecuTorch runner")
        include = wheel_dir / "executorch" / "include"
        compiler = cross / "usr" / "bin" / "aarch64-linux-gnu-g++-12"
        env = {**os.environ, "LD_LIBRARY_PATH": str(cross / "usr" / "lib" / "x86_64-linux-gnu")}
        _run([str(compiler), f"--sysroot={cross}", "-B", f"{cross}/usr/lib/gcc-cross/aarch64-linux-gnu/12/",
              "-B", f"{cross}/usr/aarch64-linux-gnu/bin/", "-std=c++17", "-O2", "-fPIC", "-shared",
              "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED", f"-I{include}",
              f"-I{include}/executorch/runtime/core/portable_type/c10", str(PTE_SOURCE), "-o", str(lib / PTE_LIBRARY),
              f"-L{lib}", "-Wl,--no-as-needed", *(f"-l{name}" for name in EXECUTORCH_LIBRARIES), "-Wl,--as-needed",
              "-Wl,-rpath,$ORIGIN"], what="compile the aarch64 ExecuTorch runner", env=env)
        for leftover in (wheel, wheel_dir, cross, staging / "debs"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        check = f"import ctypes; ctypes.CDLL({str(lib / PTE_LIBRARY)!r}); print('ok')"
        _run(environment.command("-c", check), what=f"load the ExecuTorch runner under {QEMU}",
             env=environment.process_env())
        (staging / MANIFEST).write_text(json.dumps({"executorch": version, "libraries": sorted(
            p.name for p in lib.iterdir())}, indent=1) + "\n")
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # built by another process meanwhile
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "lib" / PTE_LIBRARY


def ensure_environment(log=lambda message: None) -> ArmEnvironment:
    """The cached environment, built first when absent.

    Args:
        log: called with one line per step (progress for people).

    Raises:
        RuntimeUnavailableError: a tool or a download is missing (one line naming it).
    """
    qemu = find_qemu()
    if qemu is None:
        raise RuntimeUnavailableError(f"{QEMU} is not installed; on Debian/Ubuntu: apt-get install qemu-user-static")
    pins = wheel_pins()
    root = cache_root() / environment_key(pins)
    if (root / MANIFEST).is_file():
        return ArmEnvironment(root=root, qemu=qemu)
    _check_arm64_architecture()
    root.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        debs = build_sysroot(staging, log)
        wheels = install_wheels(staging, pins, log)
        staged = ArmEnvironment(root=staging, qemu=qemu)
        log(f"smoke test under {QEMU} -cpu {staged.cpu}")
        smoke_test(staged)
        manifest = {"debian": debs, "wheels": wheels, "pins": pins, "cpu": staged.cpu,
                    "seconds": round(time.perf_counter() - started, 1)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        staging.chmod(0o755)
        try:
            staging.rename(root)
        except OSError:  # another process finished the same folder first: keep theirs
            if not (root / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ArmEnvironment(root=root, qemu=qemu)


def main(argv: list[str] | None = None) -> int:
    """Build (or find) the environment; print its folder. Exit 1 with one line when it cannot be done."""
    parser = argparse.ArgumentParser(prog=SETUP_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print only the folder")
    parser.add_argument("--with-executorch", action="store_true",
                        help="also build the aarch64 ExecuTorch runner (.pte files; 72 MB of downloads, a compile)")
    args = parser.parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        environment = ensure_environment(log)
        if args.with_executorch:
            build_pte_runner(environment, log)
    except LsnetDeployError as exc:
        print(f"lsnet-deploy arm64 set-up: {exc}", file=sys.stderr)
        return 1
    print(environment.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
