"""Fixtures of the benchmark tests: one tiny ONNX export per session, its copy, the peer models."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import REPO, SIZED_CHECKPOINTS

TINY = SIZED_CHECKPOINTS / "tiny.pth"  # records its input size (128)


@pytest.fixture(scope="session")
def tiny_checkpoint_path() -> Path:
    return TINY


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """The tiny conformance model (128x128, 10 classes) exported to ONNX once per session."""
    from lsnet_deploy.exporters import export_model
    from lsnet_deploy.models import load_model

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_model(load_model(TINY), "onnx", path)
    return path


@pytest.fixture(scope="session")
def tiny_copy(tiny_onnx, tmp_path_factory) -> Path:
    """The same model under another name: a second candidate to interleave with."""
    path = tmp_path_factory.mktemp("tiny_copy") / "tiny_copy.onnx"
    path.write_bytes(tiny_onnx.read_bytes())
    return path


@pytest.fixture(scope="session")
def quick() -> list[str]:
    """Command-line options for a short measurement (tests check behaviour, never speed)."""
    return ["--iters", "5", "--warmup", "1", "--warmup-time", "0"]


ADB = shutil.which("adb")
ADBD = shutil.which("adbd") or ("/usr/sbin/adbd" if os.path.exists("/usr/sbin/adbd") else None)
ADB_NSENTER = shutil.which("nsenter") or "nsenter"
ADBD_PORT = 7555            # outside 5555-5585, which the adb server scans for emulators
FULL_DISK_KB = 192          # the tmpfs the full-disk test pushes into


def _adbd_missing() -> str | None:
    if ADB is None or ADBD is None:
        return "adb/adbd not installed (apt-get install -t bookworm-backports adb adbd)"
    if os.geteuid() != 0:
        return "adbd must run as root"
    for tool in ("unshare", "nsenter", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not found (needed to give adbd a private loopback)"
    return None


@pytest.fixture(scope="session")
def adbd(tmp_path_factory):
    """A real adbd and adb server in a private network namespace, reached through a Unix socket.

    Debian's adbd takes its port from ``ADBD_PORT`` and listens on every interface (TCP and vsock); off
    Android its ``service.adb.listen_addrs`` property cannot be set, and it asks no authorization (no
    framework socket), so on a real interface it would give anyone on the network a root shell. Here it
    listens on every interface of its own namespace, which holds only a loopback, so nothing outside
    this machine's tests can reach it; the adb server runs in the same namespace and the client (this
    process, lsnet-bench) talks to it through ``ADB_SERVER_SOCKET``, a socket file. The namespace also
    has its own mounts, with a small tmpfs for the full-disk test. Both daemons are stopped by pid.
    """
    reason = _adbd_missing()
    if reason:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("adbd")
    full = home / "full"
    full.mkdir()
    socket_spec = f"localfilesystem:{home / 'adb.sock'}"
    log = open(home / "adbd.log", "w")
    script = f"ip link set lo up && mount -t tmpfs -o size={FULL_DISK_KB}k lsnet-full {full} && exec {ADBD}"
    daemon = subprocess.Popen(["unshare", "--net", "--mount", "sh", "-c", script], cwd=home, stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, "ADBD_PORT": str(ADBD_PORT)})
    server = None
    previous = os.environ.get("ADB_SERVER_SOCKET")
    try:
        time.sleep(0.3)
        if daemon.poll() is not None:
            pytest.skip(f"adbd did not start: {(home / 'adbd.log').read_text().strip()[-300:]}")
        server = subprocess.Popen([ADB_NSENTER, f"--net=/proc/{daemon.pid}/ns/net", ADB, "-L", socket_spec,
                                   "server", "nodaemon"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not (home / "adb.sock").exists():  # a client finding no server would start one outside the namespace
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.skip(f"the adb server did not start: {(home / 'adbd.log').read_text().strip()[-300:]}")
            time.sleep(0.05)
        os.environ["ADB_SERVER_SOCKET"] = socket_spec
        serial = f"127.0.0.1:{ADBD_PORT}"
        while True:
            done = subprocess.run([ADB, "connect", serial], capture_output=True, text=True, timeout=10)
            if done.stdout.startswith(("connected", "already connected")):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.skip(f"adb could not connect to adbd: {done.stdout.strip()} {done.stderr.strip()}")
            time.sleep(0.2)
        yield {"serial": serial, "socket": socket_spec, "home": home, "full_dir": str(full)}
    finally:
        if previous is None:
            os.environ.pop("ADB_SERVER_SOCKET", None)
        else:
            os.environ["ADB_SERVER_SOCKET"] = previous
        for proc in (server, daemon):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log.close()


PTE_RUNNER_SOURCE = REPO / "tools" / "pte_runner"
PHONE_DATA = REPO / "tests" / "data" / "phones"


@pytest.fixture(scope="session")
def pte_runner(tmp_path_factory) -> Path:
    """tools/pte_runner built here against the ExecuTorch wheel (skips, with the reason, without it)."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("cmake and a C++ compiler are needed to build tools/pte_runner")
    try:
        import executorch
    except ImportError:
        pytest.skip("ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")
    package = Path(list(executorch.__path__)[0])
    if not (package / "include" / "executorch" / "extension" / "module" / "module.h").exists():
        pytest.skip(f"the ExecuTorch wheel at {package} ships no C++ headers")
    build = tmp_path_factory.mktemp("pte_runner_build")
    configure = subprocess.run(["cmake", "-S", str(PTE_RUNNER_SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                                f"-DCMAKE_PREFIX_PATH={package}"], capture_output=True, text=True, timeout=120)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    compiled = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-2000:]
    return build / "pte_runner"


@pytest.fixture(scope="session")
def benchmark_result_proto() -> bytes:
    """A BenchmarkResult encoded by protobuf itself from benchmark_result.proto's schema."""
    pytest.importorskip("google.protobuf", reason="protobuf is needed to encode the reference message")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="bench_result_test.proto", package="tflite.tools.benchmark",
                                               syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        msg = proto.message_type.add(name=name)
        for number, (field_name, kind, type_name) in fields.items():
            msg.field.add(name=field_name, number=number, label=F.LABEL_OPTIONAL, type=kind,
                          type_name=type_name or None)

    message("LatencyMetrics", {i: (n, F.TYPE_FLOAT, "") for i, n in enumerate(
        ["avg_ms", "min_ms", "max_ms", "stddev_ms", "median_ms", "p5_ms", "p95_ms", "init_ms", "first_inference_ms",
         "average_warm_up_ms"], 1)})
    message("MemoryMetrics", {1: ("init_footprint_kb", F.TYPE_INT64, ""), 2: ("overall_footprint_kb", F.TYPE_INT64, ""),
                              3: ("peak_mem_mb", F.TYPE_FLOAT, "")})
    message("MiscMetrics", {1: ("model_size_mb", F.TYPE_FLOAT, ""), 2: ("num_runs", F.TYPE_INT32, ""),
                            3: ("num_warmup_runs", F.TYPE_INT32, "")})
    message("BenchmarkResult", {1: ("name", F.TYPE_STRING, ""),
                                2: ("latency_metrics", F.TYPE_MESSAGE, ".tflite.tools.benchmark.LatencyMetrics"),
                                3: ("memory_metrics", F.TYPE_MESSAGE, ".tflite.tools.benchmark.MemoryMetrics"),
                                4: ("misc_metrics", F.TYPE_MESSAGE, ".tflite.tools.benchmark.MiscMetrics")})
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("tflite.tools.benchmark.BenchmarkResult"))
    result = cls(name="cpu")
    result.latency_metrics.avg_ms, result.latency_metrics.median_ms = 12.5, 12.25
    result.latency_metrics.p95_ms, result.latency_metrics.init_ms = 14.0, 80.0
    result.memory_metrics.init_footprint_kb, result.memory_metrics.overall_footprint_kb = 2048, 4096
    result.misc_metrics.num_runs, result.misc_metrics.num_warmup_runs = 50, 5
    return result.SerializeToString()
