"""``lsnet-bench --adb`` against a real adbd and adb server (Debian's, on a private loopback: see the
``adbd`` fixture): shell exit codes and timeouts, pushes and the device cache, a full device disk, the
device record of a Linux device, the Python far end, tools/pte_runner end to end, and the refusals.

The "device" is this machine seen through adbd, as a Qualcomm Linux board would be: Android-only
sources (getprop, dumpsys) are absent and recorded so. Android output is tested on recorded text in
test_phone_parsers.py. Script tools (``#!/bin/sh``) stand in for LiteRT's benchmark_model, which has no
build for this machine: they print a recorded sample, so the pipeline around the real parser runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsnet_deploy.bench.adb import AdbDevice, CommandTimeout, DeviceFiles
from lsnet_deploy.bench.phone import read_state, read_static
from lsnet_deploy.bench.provenance import file_sha256
from lsnet_deploy.bench.results import read_records
from lsnet_deploy.cli.bench import app, normalize_args
from lsnet_deploy.errors import LsnetDeployError, UsageError

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "phones"
SMALL_PTE = DATA / "small_conv.pte"


def error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if "error" in ln]


def phone_args(adbd, tmp_path, *extra) -> list[str]:
    return ["--adb", adbd["serial"], "--device-dir", str(tmp_path / "device"), "--cool-below", "0", *extra]


def script_tool(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_shell_exit_codes_output_and_timeout(adbd):
    device = AdbDevice(adbd["serial"])
    assert device.shell("echo out; echo err >&2; false").returncode == 1
    result = device.shell("printf 'no newline'")
    assert (result.returncode, result.stdout) == (0, "no newline")
    assert device.shell("exit 7").returncode == 7
    assert device.shell("echo hi; kill -SEGV $$").returncode == 139
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 1 s"):
        device.shell("sleep 20", timeout=1)
    assert time.monotonic() - start < 10


def test_device_work_dir(adbd):
    device = AdbDevice(adbd["serial"])
    android_tmp = os.path.isdir("/data/local/tmp")                   # the "device" is this machine
    assert device.work_dir(None) == ("/data/local/tmp" if android_tmp else "/tmp") + "/lsnet-bench"
    assert device.work_dir("/data/x/") == "/data/x"
    with pytest.raises(UsageError, match="must be an absolute path on the device"):
        device.work_dir("relative/dir")


def test_push_once_then_cache_hits(adbd, tmp_path):
    device = AdbDevice(adbd["serial"])
    files = DeviceFiles(device, str(tmp_path / "device"))
    local = tmp_path / "model.bin"
    local.write_bytes(os.urandom(300_000))
    name = f"{file_sha256(local)}.bin"
    remote = files.ensure(local, name)
    assert Path(remote).read_bytes() == local.read_bytes() and files.pushed == [name]
    again = DeviceFiles(device, str(tmp_path / "device"))        # a new run reads the cache listing
    assert again.ensure(local, name) == remote and again.pushed == []
    tool = files.ensure(Path(shutil.which("true")), "0" * 64 + "-true", executable=True)
    assert device.shell(tool).returncode == 0
    assert sorted(os.listdir(tmp_path / "device" / "cache")) == sorted([name, "0" * 64 + "-true"])


def test_full_device_disk_is_named_and_leaves_nothing(adbd, tmp_path):
    device = AdbDevice(adbd["serial"])
    files = DeviceFiles(device, adbd["full_dir"])
    local = tmp_path / "big.pte"
    local.write_bytes(os.urandom(1_000_000))                      # the device's tmpfs holds 192 KB
    with pytest.raises(LsnetDeployError, match="the device's storage is full: adb push of big.pte"):
        files.ensure(local, f"{file_sha256(local)}.pte")
    listing = device.shell(f"ls -a {adbd['full_dir']}/cache").stdout.split()
    assert sorted(listing) == [".", ".."]                          # no partial file under any name


def test_device_record_of_a_linux_device(adbd):
    device = AdbDevice(adbd["serial"])
    static = read_static(device)
    assert static["serial"] == adbd["serial"] and static["arch"] == os.uname().machine
    assert all(v is None for v in static["properties"].values())
    assert static["absent"]["properties"] == "getprop is not on this device (not Android)"
    assert static["online_cpus"] and static["taskset"]
    if static["clusters"] is None:
        assert "cpufreq" in static["absent"]["clusters"]
    state = read_state(device)
    assert state["thermal_status"] is None and state["absent"]["thermal_status"].startswith("dumpsys is not")
    assert state["time"].endswith("+00:00")
    if not state["thermal_zones"]:
        assert state["soc_temp_c"] is None and "thermal_zone" in state["absent"]["thermal_zones"]


def test_python_far_end_over_adb(adbd, tmp_path, quick):
    out = tmp_path / "r.jsonl"
    cache = tmp_path / "remote cache"
    args = [str(DATA / "small_conv.onnx"), *quick, "--threads", "1", "-o", str(out), "--adb", adbd["serial"], "--remote-python",
            sys.executable, "--remote-cache", str(cache)]
    result = runner.invoke(app, normalize_args(args))
    assert result.exit_code == 0, result.output
    assert "copying small_conv.onnx" in result.stderr
    (record,) = read_records([out])[0]
    assert record["runtime"] == "ort" and record["input_shape"] == [1, 3, 32, 32]
    assert record["target"] == f"adb:{adbd['serial']}" and record["stats"]["n"] == 5
    assert Path(record["source"]["remote_path"]).parent == cache
    assert record["phone"]["absent"]["properties"].startswith("getprop is not")
    assert record["phone"]["state_after"]["absent"]["thermal_status"].startswith("dumpsys is not")
    again = runner.invoke(app, normalize_args(args))
    assert again.exit_code == 0 and "copying" not in again.stderr


def test_pte_runner_end_to_end_over_adb(adbd, pte_runner, tmp_path):
    out = tmp_path / "r.jsonl"
    args = [str(SMALL_PTE), *phone_args(adbd, tmp_path), "--device-tool", f"pte_runner={pte_runner}",
            "--rounds", "2", "--iters", "6", "--warmup", "2", "--threads", "1", "-o", str(out), "--keep-samples"]
    result = runner.invoke(app, normalize_args(args))
    assert result.exit_code == 0, result.output
    assert "copying pte_runner" in result.stderr and "copying small_conv.pte" in result.stderr
    assert "round 2/2: small_conv (executor_runner, 2 warm-up + 6 timed, 1 threads, cores" in result.stderr
    (record,) = read_records([out])[0]
    stats = record["stats"]
    assert stats["method"] == "per_iteration" and stats["n"] == 12 and len(record["samples_ms"]) == 12
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
    assert record["runtime"] == "executorch" and record["input_shape"] == [1, 3, 32, 32] and record["batch"] == 1
    assert record["runtime_info"]["tool"] == "executor_runner" and record["runtime_info"]["tool_machine"] == "x86_64"
    assert record["runtime_info"]["command"][:2] == ["taskset", record["phone"]["cores"]["mask"]]
    assert "--num_executions=8" in record["runtime_info"]["command"]
    assert [r["round"] for r in record["rounds"]] == [0, 1] and all(r["count"] == 6 for r in record["rounds"])
    phone = record["phone"]
    assert phone["threads"] == 1 and phone["pinned"] and phone["state_before"]["time"] <= phone["state_after"]["time"]
    assert record["source"]["sha256"] == file_sha256(SMALL_PTE)
    device_dir = tmp_path / "device"
    assert sorted(p.name for p in device_dir.iterdir()) == ["cache"]      # the run folder is gone
    again = runner.invoke(app, normalize_args(args))
    assert again.exit_code == 0 and "copying" not in again.stderr           # tool and model cached by hash
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and f"[{adbd['serial']}, cores" in report.stdout


def test_summary_tool_pipeline_and_report(adbd, tmp_path):
    """benchmark_model's place taken by a script printing a recorded sample: push, pin, parse, combine."""
    tool = script_tool(tmp_path / "benchmark_model", f"cat <<'EOF'\n{(DATA / 'tflite_benchmark_model_linux_qrb2210.txt').read_text()}EOF\n")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3 not a real model")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, normalize_args([str(model), *phone_args(adbd, tmp_path), "--device-tool",
                                                f"benchmark_model={tool}", "--rounds", "3", "--provider", "gpu",
                                                "-o", str(out), "--cores", "all"]))
    assert result.exit_code == 0, result.output
    (record,) = read_records([out])[0]
    stats = record["stats"]
    assert stats["method"] == "tool_summary" and stats["n"] == 150 and stats["p90_ms"] is None
    assert stats["mean_ms"] == pytest.approx(105.784, abs=1e-6) and stats["median_ms"] == pytest.approx(105.718)
    assert record["device"] == "gpu" and record["provider"] == "gpu" and not record["phone"]["pinned"]
    command = record["runtime_info"]["command"]
    assert "--use_gpu=true" in command and "--num_runs=20" in command and command[0] != "taskset"
    assert any("input shape not read here" in n for n in record["notes"])
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and "not printed by the device's benchmark tool" in report.stdout


@pytest.mark.parametrize("body, message", [
    ("echo starting; kill -SEGV $$\n", "benchmark_model crashed (SIGSEGV)"),
    ("echo 'ERROR: Failed to allocate tensors' >&2; exit 1\n", "benchmark_model exited with 1 on adb:"),
    ("echo all fine\n", "benchmark_model printed nothing lsnet-bench can read"),
])
def test_tool_failures_are_one_line_and_clean_up(adbd, tmp_path, body, message):
    tool = script_tool(tmp_path / "benchmark_model", body)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, normalize_args([str(model), *phone_args(adbd, tmp_path), "--device-tool",
                                                f"benchmark_model={tool}", "-o", str(out)]))
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert message in line and "m: " in line
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "device").iterdir()) == ["cache"]


def test_refusals(adbd, tmp_path, pte_runner):
    def run(*args):
        return runner.invoke(app, normalize_args([str(SMALL_PTE), *args, "--no-save"]))

    missing = run(*phone_args(adbd, tmp_path), "--device-tool", f"benchmark_model={pte_runner}")
    assert missing.exit_code == 2 and "small_conv.pte needs executor_runner on the device: pass --device-tool " \
                                      "executor_runner=PATH" in missing.stderr
    arm = tmp_path / "executor_runner"
    arm.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
                    + b"\0" * 44)
    wrong_abi = run(*phone_args(adbd, tmp_path), "--device-tool", f"executor_runner={arm}")
    assert wrong_abi.exit_code == 2 and f"is built for aarch64, but the device is {os.uname().machine}" in \
        wrong_abi.stderr
    unknown = run("--adb", "no-such-serial:5555", "--device-tool", f"executor_runner={pte_runner}")
    assert unknown.exit_code == 1 and "device no-such-serial:5555 is not attached" in unknown.stderr
    neither = run("--adb", adbd["serial"])
    assert neither.exit_code == 2 and "--adb needs the device's benchmark tools" in neither.stderr
    stray = run("--cores", "big", "--rounds", "3")
    assert stray.exit_code == 2 and "--rounds is used only with --adb" in stray.stderr
    both = run("--adb", adbd["serial"], "--host", "me@box", "--device-tool", f"executor_runner={pte_runner}")
    assert both.exit_code == 2 and "--adb and --host" in both.stderr
    paper = run(*phone_args(adbd, tmp_path), "--device-tool", f"executor_runner={pte_runner}", "--min-time", "3")
    assert paper.exit_code == 2 and "--min-time does not apply to the device's own tools" in paper.stderr
    for result in (missing, wrong_abi, unknown, neither, stray, both, paper):
        assert len(error_lines(result)) == 1


def test_several_devices_need_a_serial(adbd, tmp_path, pte_runner):
    second = "localhost:7555"                                    # a second transport to the same adbd
    adb = shutil.which("adb")
    assert subprocess.run([adb, "connect", second], capture_output=True, text=True).stdout.startswith("connected")
    try:
        result = runner.invoke(app, normalize_args([str(SMALL_PTE), "--adb", "--device-tool",
                                                    f"executor_runner={pte_runner}", "--no-save"]))
        assert result.exit_code == 2
        (line,) = error_lines(result)
        assert "2 devices are attached: " in line and adbd["serial"] in line and second in line
        assert "choose one with --adb SERIAL" in line
    finally:
        subprocess.run([adb, "disconnect", second], capture_output=True)


def test_no_adb_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, normalize_args([str(SMALL_PTE), "--adb", "--device-tool",
                                                f"executor_runner={SMALL_PTE}", "--no-save"]))
    assert result.exit_code == 1 and "adb is not installed here" in result.stderr


def test_bare_adb_before_an_artifact_is_not_a_serial():
    assert normalize_args(["--adb", str(SMALL_PTE)]) == ["run", "--adb=", str(SMALL_PTE)]
    assert normalize_args(["x.pte", "--adb", "R5CX1234ABC", "-o", "r.jsonl"]) == [
        "run", "x.pte", "--adb", "R5CX1234ABC", "-o", "r.jsonl"]
    assert normalize_args(["x.pte", "--adb"]) == ["run", "x.pte", "--adb="]
    assert normalize_args(["x.pte", "--adb", "--rounds", "2"]) == ["run", "x.pte", "--adb=", "--rounds", "2"]


def test_ctrl_c_keeps_results_valid_and_cleans_the_device(adbd, tmp_path):
    tool = script_tool(tmp_path / "benchmark_model", "[ \"$1\" = --help ] && exit 0\nsleep 60\n")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"earlier": "line"}) + "\n")
    device_dir = tmp_path / "device"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lsnet_deploy.cli.bench", str(model), *phone_args(adbd, tmp_path),
                             "--device-tool", f"benchmark_model={tool}", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(device_dir.glob("run-*/pid")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        pid = int(next(device_dir.glob("run-*/pid")).read_text())
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "lsnet-bench: interrupted" in stderr
    assert out.read_text() == json.dumps({"earlier": "line"}) + "\n"
    assert sorted(p.name for p in device_dir.iterdir()) == ["cache"]
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_benchmark_model_result_file_is_read_where_the_build_has_it(adbd, tmp_path, benchmark_result_proto):
    proto = tmp_path / "result.pb"
    proto.write_bytes(benchmark_result_proto)
    tool = script_tool(tmp_path / "benchmark_model", f"""[ "$1" = --help ] && {{ echo '--result_file_path'; exit 0; }}
for a in "$@"; do case "$a" in --result_file_path=*) cp {proto} "${{a#--result_file_path=}}";; esac; done
cat <<'EOF'
{(DATA / 'tflite_benchmark_model_chromeos_delegation.txt').read_text()}EOF
""")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, normalize_args([str(model), *phone_args(adbd, tmp_path), "--device-tool",
                                                f"benchmark_model={tool}", "--rounds", "2", "-o", str(out)]))
    assert result.exit_code == 0, result.output
    (record,) = read_records([out])[0]
    info = record["runtime_info"]
    assert info["output_format"] == "result_proto" and any(a.startswith("--result_file_path=") for a in info["command"])
    assert record["stats"]["mean_ms"] == pytest.approx(12.5) and record["stats"]["median_ms"] == pytest.approx(12.25)
    assert record["stats"]["n"] == 100                           # the proto's num_runs, twice
    assert [d["delegate"] for d in info["delegations"]] == ["TfLiteXNNPackDelegate", "TfLiteGpuDelegateV2"]


def test_onnxruntime_perf_test_command_and_reading(adbd, tmp_path):
    tool = script_tool(tmp_path / "onnxruntime_perf_test", f"""[ "$1" = --help ] && {{ echo '-s: Show statistics'; exit 0; }}
echo "$@" > args.txt
cat <<'EOF'
{(DATA / 'onnxruntime_perf_test_android_1.23.txt').read_text()}EOF
""")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not an onnx file")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, normalize_args([str(model), *phone_args(adbd, tmp_path), "--device-tool",
                                                f"onnxruntime_perf_test={tool}", "--provider", "qnn", "--rounds", "1",
                                                "--iters", "5", "--threads", "1", "--tool-arg=-i",
                                                "--tool-arg=backend_type|htp", "-o", str(out)]))
    assert result.exit_code == 0, result.output
    (record,) = read_records([out])[0]
    command = record["runtime_info"]["command"]
    assert command[command.index("-e") + 1] == "qnn" and command[command.index("-r") + 1] == "5"
    assert command[-3:-1] == ["-i", "backend_type|htp"] and "-s" in command and command[-1].endswith(".onnx")
    assert record["device"] == "npu" and record["stats"]["p90_ms"] == pytest.approx(101.519, abs=1e-6)
    assert record["stats"]["median_ms"] == pytest.approx(99.5086, abs=1e-6) and record["runtime"] == "ort"


def test_tool_timeout_stops_the_tool(adbd, tmp_path):
    tool = script_tool(tmp_path / "benchmark_model", "[ \"$1\" = --help ] && exit 0\nexec sleep 30\n")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    result = runner.invoke(app, normalize_args([str(model), *phone_args(adbd, tmp_path), "--device-tool",
                                                f"benchmark_model={tool}", "--tool-timeout", "1", "--no-save"]))
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert "m: benchmark_model ran longer than 1 s on adb:" in line and "was stopped" in line
    assert sorted(p.name for p in (tmp_path / "device").iterdir()) == ["cache"]


def test_no_device_attached(adbd, tmp_path):
    adb = shutil.which("adb")
    subprocess.run([adb, "disconnect", adbd["serial"]], capture_output=True, check=True)
    try:
        result = runner.invoke(app, normalize_args([str(SMALL_PTE), "--adb", "--device-tool",
                                                    f"executor_runner={SMALL_PTE}", "--no-save"]))
        assert result.exit_code == 1
        (line,) = error_lines(result)
        assert "no Android device is attached (adb devices lists none)" in line
    finally:
        deadline = time.monotonic() + 10
        while not subprocess.run([adb, "connect", adbd["serial"]], capture_output=True,
                                 text=True).stdout.startswith(("connected", "already")):
            assert time.monotonic() < deadline
            time.sleep(0.2)


@pytest.mark.parametrize("interleave", [True, False])
def test_candidates_are_interleaved_by_rounds(adbd, tmp_path, interleave):
    log = tmp_path / "calls.log"
    script_tool(tmp_path / "onnxruntime_perf_test", f"""[ "$1" = --help ] && exit 0
echo "ort $2" >> {log}
cat <<'EOF'
{(DATA / 'onnxruntime_perf_test_android_1.23.txt').read_text()}EOF
""")
    script_tool(tmp_path / "benchmark_model", f"""[ "$1" = --help ] && exit 0
echo "tflite" >> {log}
cat <<'EOF'
{(DATA / 'tflite_benchmark_model_old_nxp.txt').read_text()}EOF
""")
    (tmp_path / "a.onnx").write_bytes(b"onnx")
    (tmp_path / "b.tflite").write_bytes(b"tflite")
    out = tmp_path / "r.jsonl"
    args = [str(tmp_path / "a.onnx"), str(tmp_path / "b.tflite"), *phone_args(adbd, tmp_path), "--device-tool",
            str(tmp_path), "--provider", "cpu,xnnpack", "--rounds", "2", "-o", str(out)]
    result = runner.invoke(app, normalize_args(args + ([] if interleave else ["--no-interleave"])))
    assert result.exit_code == 0, result.output
    calls = log.read_text().split("\n")[:-1]
    one_round = ["ort cpu", "ort xnnpack", "tflite", "tflite"]
    assert calls == (one_round * 2 if interleave else [c for c in one_round for _ in range(2)])
    records = read_records([out])[0]
    assert [r["label"] for r in records] == ["a:cpu", "a:xnnpack", "b:cpu", "b:xnnpack"]
    assert [r["provider"] for r in records] == ["cpu", "xnnpack", "cpu", "xnnpack"]
    assert "--use_xnnpack=false" in records[2]["runtime_info"]["command"]
    # ORT printed a median, the old benchmark_model did not: the group is compared by means
    assert records[2]["stats"]["median_ms"] is None
    assert records[2]["ratio_to_first"] == pytest.approx(210.028 / 98.961997, abs=1e-3)
    assert "Ratio: mean / mean of a:cpu" in result.stdout
    assert records[0]["settings"]["phone"]["interleave"] is interleave


def test_adb_transport_quotes_the_far_end_command(adbd):
    from lsnet_deploy.bench.adb import AdbTransport

    transport = AdbTransport(adbd["serial"])
    argv = transport.command(["/opt/venv/bin/python", "-m", "x", "--cache-dir", "/data/it's here; $(id)"])
    assert argv[1:4] == ["-s", adbd["serial"], "shell"]
    assert argv[-1] == "/opt/venv/bin/python -m x --cache-dir '/data/it'\"'\"'s here; $(id)'"
    assert transport.describe() == f"adb:{adbd['serial']}"
    assert transport.failure(1, "adb: device offline") == f"cannot reach {adbd['serial']} over adb: adb: device offline"
    assert transport.failure(1, "Traceback ...") is None
