"""The phone tools' output readers on every recorded sample (tests/data/phones, copied from
../shared/phones), the device-record parsers on recorded Android text, and the pure protocol pieces
(core choice, ELF check, statistics over rounds, adb device states)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lsnet_deploy.bench.adb import choose_device, parse_devices
from lsnet_deploy.bench.phone import combine_rounds, round_summary, throttling_events
from lsnet_deploy.bench.phone_device import (choose_cores, elf_machine, parse_cpu_list, parse_state, parse_static,
                                             runnable_machines, soc_temperature)
from lsnet_deploy.bench.phone_parsers import (ToolOutputError, parse_benchmark_model, parse_benchmark_result,
                                              parse_executor_runner, parse_onnxruntime_perf_test)
from lsnet_deploy.bench.phone_tools import check_tool, parse_tool_options, provider_flags, tool_for
from lsnet_deploy.bench.results import _problem
from lsnet_deploy.errors import RuntimeUnavailableError, UsageError

DATA = Path(__file__).resolve().parents[1] / "data" / "phones"
TOL = 1e-6


def sample(name: str) -> str:
    return (DATA / name).read_text()


def test_every_sample_is_read_by_a_test():
    """A sample added to tests/data/phones without a test here fails this one."""
    tested = {"tflite_benchmark_model_linux_qrb2210.txt", "tflite_benchmark_model_linux_qrb2210_gpu.txt",
              "tflite_benchmark_model_chromeos_delegation.txt", "tflite_benchmark_model_peak_memory.txt",
              "tflite_benchmark_model_apk_logcat.txt", "tflite_benchmark_model_old_nxp.txt",
              "litert_compiled_model_benchmark.txt", "executor_runner_new.txt",
              "onnxruntime_perf_test_android_1.23.txt", "android_static_probe.txt", "android_state_probe.txt"}
    assert {p.name for p in DATA.glob("*.txt")} == tested


def test_benchmark_model_new_form_with_percentiles():
    run = parse_benchmark_model(sample("tflite_benchmark_model_linux_qrb2210.txt"))
    assert run.format == "interpreter" and run.count == 50 and run.warmup_count == 5
    assert run.mean_ms == pytest.approx(105.784, abs=TOL) and run.median_ms == pytest.approx(105.718, abs=TOL)
    assert run.min_ms == pytest.approx(105.416, abs=TOL) and run.max_ms == pytest.approx(106.528, abs=TOL)
    assert run.std_ms == pytest.approx(0.260, abs=TOL) and run.p95_ms == pytest.approx(106.281, abs=TOL)
    assert run.p5_ms == pytest.approx(105.485, abs=TOL)
    assert run.init_ms == pytest.approx(87.639, abs=TOL) and run.first_ms == pytest.approx(106.436, abs=TOL)
    assert run.warmup_mean_ms == pytest.approx(106.065, abs=TOL)
    assert run.memory_mb == {"init": 14.4414, "overall": 14.8164}
    assert run.delegations == [] and run.p90_ms is None  # benchmark_model prints no p90: never invented


def test_benchmark_model_gpu_records_the_delegate():
    run = parse_benchmark_model(sample("tflite_benchmark_model_linux_qrb2210_gpu.txt"))
    assert run.mean_ms == pytest.approx(115.246, abs=TOL) and run.init_ms == pytest.approx(1361.236, abs=TOL)
    assert run.delegation_notes == ["Explicitly applied GPU delegate, and the model graph will be completely "
                                    "executed by the delegate."]


def test_benchmark_model_delegation_lines():
    run = parse_benchmark_model(sample("tflite_benchmark_model_chromeos_delegation.txt"))
    assert [(d.delegate, d.nodes_delegated, d.nodes_total, d.partitions, d.complete) for d in run.delegations] == [
        ("TfLiteXNNPackDelegate", 58, 58, 1, True), ("TfLiteGpuDelegateV2", 58, 58, 1, True)]
    assert run.count == 1061 and run.mean_ms == pytest.approx(56.2658, abs=TOL) and run.median_ms is None
    assert run.memory_mb == {"peak": 93.2383}
    partial = parse_benchmark_model("INFO: Replacing 40 out of 58 node(s) with delegate (TfLiteGpuDelegateV2) node, "
                                    "yielding 3 partitions for the whole graph.\nINFO: count=5 first=1 curr=1 min=1 "
                                    "max=2 avg=1.5 std=0")
    assert not partial.delegations[0].complete and partial.delegations[0].partitions == 3


def test_benchmark_model_logcat_apk_line():
    run = parse_benchmark_model(sample("tflite_benchmark_model_apk_logcat.txt"))
    assert run.format == "logcat" and run.count is None
    assert run.mean_ms == pytest.approx(14.5752, abs=TOL) and run.warmup_mean_ms == pytest.approx(14.4623, abs=TOL)
    assert run.init_ms == pytest.approx(5.685, abs=TOL) and run.first_ms == pytest.approx(18.535, abs=TOL)


def test_benchmark_model_old_form_without_info_prefix():
    run = parse_benchmark_model(sample("tflite_benchmark_model_old_nxp.txt"))
    assert run.count == 50 and run.mean_ms == pytest.approx(210.028, abs=TOL) and run.median_ms is None
    assert run.memory_mb == {"init": 0.0, "overall": 0.0}  # what that build printed


def test_benchmark_model_peak_memory_lines_and_no_timing():
    with pytest.raises(ToolOutputError, match="no inference time"):
        parse_benchmark_model(sample("tflite_benchmark_model_peak_memory.txt"))
    run = parse_benchmark_model(sample("tflite_benchmark_model_old_nxp.txt").replace(
        "Peak memory footprint (MB): init=0 overall=0\n", "") + sample("tflite_benchmark_model_peak_memory.txt"))
    assert run.memory_mb == {"init": 2.4375, "overall": 20.543, "peak": 25.0508}


def test_litert_compiled_model_ms_block():
    run = parse_benchmark_model(sample("litert_compiled_model_benchmark.txt"))
    assert run.format == "compiled_model" and run.count == 1054 and run.warmup_count == 526
    assert run.mean_ms == pytest.approx(0.947132, abs=TOL)       # the count= line (µs), finer than "0.95 ms"
    assert run.median_ms == pytest.approx(0.942, abs=TOL) and run.p95_ms == pytest.approx(0.991, abs=TOL)
    assert run.init_ms == pytest.approx(5.76, abs=TOL) and run.first_ms == pytest.approx(2.12, abs=TOL)
    assert run.memory_mb == {"init": 4.06, "overall": 7.07}
    # a build that prints only the ms block (no count= line) is read from it
    block = "\n".join(ln for ln in sample("litert_compiled_model_benchmark.txt").splitlines() if "count=" not in ln)
    only = parse_benchmark_model(block)
    assert only.mean_ms == pytest.approx(0.95, abs=TOL) and only.count == 1054 and only.std_ms == pytest.approx(0.02)


def test_executor_runner_per_iteration_and_old_forms():
    run = parse_executor_runner(sample("executor_runner_new.txt"))
    assert run.samples_ms == [241.944288] and run.init_ms == pytest.approx(4463.268273, abs=TOL)
    with pytest.raises(ToolOutputError, match="not more than the 1 warm-up"):
        parse_executor_runner(sample("executor_runner_new.txt"), warmup=1)
    lines = "".join(f"I 00:00:01.0 executorch:executor_runner.cpp:705] Iteration {i} of 4: {t} ms\n"
                    for i, t in enumerate([9.0, 2.0, 3.0, 4.0], 1))
    run = parse_executor_runner(lines, warmup=1)
    assert run.samples_ms == [2.0, 3.0, 4.0] and run.warmup_mean_ms == 9.0 and run.median_ms == 3.0
    assert run.std_ms == pytest.approx(1.0, abs=TOL)
    total = parse_executor_runner("Model executed successfully 10 time(s) in 50.0 ms.")
    assert total.format == "total_only" and total.mean_ms == pytest.approx(5.0) and total.samples_ms == []
    with pytest.raises(ToolOutputError, match="without numbers"):
        parse_executor_runner("Model executed successfully.")
    pte = parse_executor_runner("Model loaded in 0.5 ms.\nInput 0: float32 [1, 3, 32, 32]\nIteration 1 of 1: 0.3 ms")
    assert pte.inputs == [{"dtype": "float32", "shape": [1, 3, 32, 32]}]


def test_onnxruntime_perf_test_both_forms():
    run = parse_onnxruntime_perf_test(sample("onnxruntime_perf_test_android_1.23.txt"))
    assert run.count == 5 and run.mean_ms == pytest.approx(98.961997, abs=TOL)
    assert run.init_ms == pytest.approx(217.932, abs=TOL) and run.first_ms == pytest.approx(196.0)
    assert run.median_ms == pytest.approx(99.5086, abs=TOL) and run.min_ms == pytest.approx(95.8204, abs=TOL)
    assert run.p90_ms == pytest.approx(101.519, abs=TOL) and run.p99_ms == pytest.approx(101.519, abs=TOL)
    assert run.memory_mb == {"peak": 271.122}
    old = parse_onnxruntime_perf_test("Session creation time cost: 0.1 s\nTotal inference requests: 20\n"
                                      "Average inference time cost: 12.5 ms\n")
    assert old.mean_ms == 12.5 and old.count == 20 and old.median_ms is None


@pytest.mark.parametrize("parser", [parse_benchmark_model, parse_executor_runner, parse_onnxruntime_perf_test])
@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "ERROR: Could not open 'model.tflite'.\n",
                                  "count=0\n"])
def test_output_without_timing_is_refused(parser, text):
    with pytest.raises(ToolOutputError):
        parser(text)


def test_benchmark_result_proto(benchmark_result_proto):
    data = benchmark_result_proto
    run = parse_benchmark_result(data)
    assert run.format == "result_proto" and run.count == 50 and run.warmup_count == 5
    assert run.mean_ms == pytest.approx(12.5) and run.median_ms == pytest.approx(12.25)
    assert run.p95_ms == pytest.approx(14.0) and run.init_ms == pytest.approx(80.0)
    assert run.memory_mb == {"init": 2.0, "overall": 4.0} and run.min_ms is None
    with pytest.raises(ToolOutputError, match="truncated"):
        parse_benchmark_result(data[:-3])
    with pytest.raises(ToolOutputError, match="no average latency"):
        parse_benchmark_result(b"")


def test_android_device_description():
    static = parse_static(sample("android_static_probe.txt"))
    assert static["properties"] == {"model": "SM-S928B", "manufacturer": "samsung", "soc_manufacturer": "QTI",
                                    "soc_model": "SM8650", "board_platform": "pineapple", "sdk": "34",
                                    "release": "14", "abi": "arm64-v8a", "abilist": "arm64-v8a"}
    assert static["arch"] == "aarch64" and static["online_cpus"] == list(range(8))
    assert [c["cpus"] for c in static["clusters"]] == [[0, 1], [2, 3, 4], [5, 6], [7]]
    assert static["clusters"][3] == {"policy": "policy7", "cpus": [7], "governor": "walt", "min_khz": 480000,
                                     "max_khz": 3302400, "cur_khz": 1900800, "cpuinfo_min_khz": 480000,
                                     "cpuinfo_max_khz": 3302400}
    assert static["taskset"] == "/system/bin/taskset" and static["absent"] == {}
    big = choose_cores("big", static["clusters"], static["online_cpus"])
    assert big.cpus == (2, 3, 4, 5, 6, 7) and big.mask == "fc" and "policy0" in big.why
    little = choose_cores("little", static["clusters"], static["online_cpus"])
    assert little.cpus == (0, 1) and little.mask == "3"
    assert choose_cores("all", static["clusters"], static["online_cpus"]).mask == "ff"
    assert choose_cores("0xf0", static["clusters"], static["online_cpus"]).cpus == (4, 5, 6, 7)
    with pytest.raises(UsageError, match="not online"):
        choose_cores("300", static["clusters"], static["online_cpus"])
    with pytest.raises(UsageError, match="hexadecimal"):
        choose_cores("bigg", static["clusters"], static["online_cpus"])


def test_android_thermal_and_battery_state():
    static = parse_static(sample("android_static_probe.txt"))
    state = parse_state(sample("android_state_probe.txt"))
    assert state["thermal_zones"] == {"aoss-0": 38.1, "cpu-0-0-0": 47.3, "cpu-1-0-0": 51.2, "battery": 33.0,
                                      "sdr0-pa0": -273.0}
    assert (state["soc_temp_c"], state["soc_zone"]) == (51.2, "cpu-1-0-0")   # battery and placeholders left out
    assert state["thermal_status"] == 2 and state["thermal_status_name"] == "moderate"
    assert state["hal_temperatures"] == {"cpu-0-0-0": 47.3, "cpu-1-0-0": 51.2, "battery": 33.0}  # not the cached list
    assert state["battery"] == {"level_percent": 87.0, "temperature_c": 33.0, "powered": True, "status": 2,
                                "source": "dumpsys battery"}
    assert state["cpu_max_khz"]["policy2"] == 2419200 and state["absent"] == {}
    events = throttling_events(state, static, "before round 0")
    assert {"when": "before round 0", "kind": "thermal_status", "status": 2, "status_name": "moderate"} in events
    assert {"when": "before round 0", "kind": "frequency_cap", "policy": "policy2", "max_khz": 2419200,
            "hardware_max_khz": 3148800} in events
    assert len(events) == 2


def test_linux_device_without_android_sources():
    static = parse_static("@@getprop\n@@absent getprop is not on this device (not Android)\n@@uname\nLinux 6.1 "
                          "x86_64\n@@online\n0-1\n@@taskset\n/usr/bin/taskset\n")
    assert all(v is None for v in static["properties"].values())
    assert static["absent"]["properties"].startswith("getprop is not on this device")
    assert static["clusters"] is None and "cpufreq" in static["absent"]["clusters"]
    cores = choose_cores("big", None, static["online_cpus"])
    assert cores.cpus == (0, 1) and cores.why.startswith("no cpufreq clusters")
    state = parse_state("@@thermalservice\n@@absent dumpsys is not on this device (not Android)\n@@battery\n"
                        "@@absent dumpsys is not on this device (not Android)\n")
    assert state["thermal_status"] is None and state["battery"] is None and state["soc_temp_c"] is None
    assert set(state["absent"]) == {"thermal_status", "battery", "thermal_zones", "cpu_freq"}
    assert soc_temperature({}) == (None, None)


def test_cpu_lists():
    assert parse_cpu_list("0-3,6") == [0, 1, 2, 3, 6] and parse_cpu_list("4 5 6 7\n") == [4, 5, 6, 7]
    with pytest.raises(ValueError):
        parse_cpu_list("zero")


def _elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, machine) + b"\0" * 44


def test_tools_are_checked_for_the_device_abi(tmp_path):
    phone = parse_static(sample("android_static_probe.txt"))                  # abilist: arm64-v8a only
    runs_on = runnable_machines(phone)
    assert runs_on == {"aarch64"}
    arm = tmp_path / "benchmark_model"
    arm.write_bytes(_elf(183))
    assert elf_machine(arm.read_bytes()) == "aarch64"
    assert check_tool("benchmark_model", arm, "arm64-v8a", runs_on).machine == "aarch64"
    with pytest.raises(UsageError, match="built for aarch64, but the device is x86_64"):
        check_tool("benchmark_model", arm, "x86_64", {"x86_64", "x86"})
    x86 = tmp_path / "x86"
    x86.write_bytes(_elf(62))
    with pytest.raises(UsageError, match="built for x86_64, but the device is arm64-v8a"):
        check_tool("executor_runner", x86, "arm64-v8a", runs_on)
    arm32 = tmp_path / "arm32"
    arm32.write_bytes(b"\x7fELF\x01\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 40) + b"\0" * 44)
    with pytest.raises(UsageError, match="built for arm, but the device is arm64-v8a \\(it runs aarch64\\)"):
        check_tool("executor_runner", arm32, "arm64-v8a", runs_on)             # a 64-bit-only phone
    with_32 = parse_static(sample("android_static_probe.txt").replace("[ro.product.cpu.abilist]: [arm64-v8a]",
                                                                       "[ro.product.cpu.abilist]: "
                                                                       "[arm64-v8a,armeabi-v7a,armeabi]"))
    assert runnable_machines(with_32) == {"aarch64", "arm"}
    assert runnable_machines({"properties": {"abi": None}, "arch": "x86_64"}) == {"x86_64", "x86"}
    assert runnable_machines({"properties": {}, "arch": None}) is None
    assert check_tool("executor_runner", x86, None, None).notes[0].startswith("device ABI None unknown")
    text = tmp_path / "notes.txt"
    text.write_text("not a program")
    with pytest.raises(UsageError, match="not an executable"):
        check_tool("executor_runner", text, "arm64-v8a", runs_on)
    script = tmp_path / "wrapper.sh"
    script.write_text("#!/system/bin/sh\nexec ./benchmark_model \"$@\"\n")
    assert check_tool("benchmark_model", script, "arm64-v8a", runs_on).kind == "script"


def test_tool_options_and_suffixes(tmp_path):
    (tmp_path / "android_aarch64_benchmark_model").write_bytes(_elf(183))
    (tmp_path / "pte_runner").write_bytes(_elf(183))
    tools = parse_tool_options([str(tmp_path)])
    assert tools == {"benchmark_model": tmp_path / "android_aarch64_benchmark_model",
                     "executor_runner": tmp_path / "pte_runner"}
    assert parse_tool_options([f"pte_runner={tmp_path / 'pte_runner'}"]) == {"executor_runner": tmp_path / "pte_runner"}
    for bad, message in ((f"nosuch={tmp_path / 'pte_runner'}", "the tools are"),
                         (f"benchmark_model={tmp_path / 'missing'}", "is not a file"),
                         (str(tmp_path / "missing_dir"), "not a folder"),
                         (str(tmp_path.parent), "holds none of")):
        with pytest.raises(UsageError, match=message):
            parse_tool_options([bad])
    assert [tool_for(Path(n)) for n in ("a.tflite", "a.pte", "a.onnx", "a.ort", "a.qnn.onnx")] == [
        "benchmark_model", "executor_runner", "onnxruntime_perf_test", "onnxruntime_perf_test", "onnxruntime_perf_test"]
    with pytest.raises(UsageError, match="no phone benchmark tool runs .engine"):
        tool_for(Path("a.engine"))
    assert provider_flags("benchmark_model", "gpu") == (["--use_gpu=true"], "gpu")
    assert provider_flags("benchmark_model", None) == (["--use_xnnpack=true"], "xnnpack")
    assert provider_flags("onnxruntime_perf_test", "qnn") == (["-e", "qnn"], "qnn")
    with pytest.raises(UsageError, match="chosen when it is exported"):
        provider_flags("executor_runner", "qnn")
    with pytest.raises(UsageError, match="benchmark_model runs on"):
        provider_flags("benchmark_model", "tensorrt")


def test_rounds_combine_exactly_and_stay_reportable():
    qrb = parse_benchmark_model(sample("tflite_benchmark_model_linux_qrb2210.txt"))
    nxp = parse_benchmark_model(sample("tflite_benchmark_model_old_nxp.txt"))
    stats = combine_rounds([qrb, qrb], batch=1)
    assert stats["method"] == "tool_summary" and stats["n"] == 100
    assert stats["mean_ms"] == pytest.approx(105.784, abs=TOL) and stats["std_ms"] == pytest.approx(0.26, abs=TOL)
    assert stats["median_ms"] == pytest.approx(105.718, abs=TOL) and stats["p90_ms"] is None
    mixed = combine_rounds([qrb, nxp], batch=2)
    assert mixed["mean_ms"] == pytest.approx((105.784 + 210.028) / 2, abs=TOL)
    assert mixed["median_ms"] is None and mixed["min_ms"] == pytest.approx(105.416, abs=TOL)
    assert mixed["throughput"] == pytest.approx(2e3 / mixed["mean_ms"], rel=1e-6)
    pooled = (50 * (0.26 ** 2 + (105.784 - mixed["mean_ms"]) ** 2) + 50 * (0.221 ** 2 + (210.028 - mixed["mean_ms"])
                                                                         ** 2)) / 100
    assert mixed["std_ms"] == pytest.approx(pooled ** 0.5, abs=TOL)
    record = {"schema": "lsnet-bench/1", "stats": mixed}
    assert _problem(record) is None                      # None statistics are accepted for tool summaries ...
    assert _problem({"schema": "lsnet-bench/1", "stats": {**mixed, "method": "per_iteration"}})  # ... only there
    per_iter = parse_executor_runner("Iteration 1 of 3: 1.0 ms\nIteration 2 of 3: 2.0 ms\nIteration 3 of 3: 3.0 ms")
    stats = combine_rounds([per_iter, per_iter], batch=1)
    assert stats["method"] == "per_iteration" and stats["n"] == 6 and stats["median_ms"] == pytest.approx(2.0)
    flagged = round_summary(0, per_iter, max_cv=0.1, temp_c=None)
    assert flagged["high_spread"] and flagged["cv"] == pytest.approx(0.5)
    assert not round_summary(0, qrb, max_cv=0.1, temp_c=41.0)["high_spread"]


DEVICES = """List of devices attached
0123456789ABCDEF       device usb:1-1 product:husky model:Pixel_8_Pro device:husky transport_id:3
R5CX1234ABC            unauthorized usb:1-2 transport_id:4
emulator-5554          offline transport_id:5
HT7A1B234567           no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:6
"""


def test_adb_device_states():
    devices = parse_devices(DEVICES)
    assert [(d.serial, d.state) for d in devices] == [("0123456789ABCDEF", "device"), ("R5CX1234ABC", "unauthorized"),
                                                      ("emulator-5554", "offline"), ("HT7A1B234567", "no permissions")]
    assert devices[0].details["model"] == "Pixel_8_Pro"
    with pytest.raises(UsageError, match="4 devices are attached: 0123456789ABCDEF \\(device, Pixel_8_Pro\\), "
                                         "R5CX1234ABC \\(unauthorized\\)"):
        choose_device(None, devices)
    assert choose_device("0123456789ABCDEF", devices).serial == "0123456789ABCDEF"
    with pytest.raises(RuntimeUnavailableError, match="R5CX1234ABC is unauthorized: accept the 'Allow USB debugging'"):
        choose_device("R5CX1234ABC", devices)
    with pytest.raises(RuntimeUnavailableError, match="emulator-5554 is offline"):
        choose_device("emulator-5554", devices)
    with pytest.raises(RuntimeUnavailableError, match="udev rules"):
        choose_device("HT7A1B234567", devices)
    with pytest.raises(RuntimeUnavailableError, match="device nosuch is not attached"):
        choose_device("nosuch", devices)
    with pytest.raises(RuntimeUnavailableError, match="no Android device is attached"):
        choose_device(None, parse_devices("List of devices attached\n\n"))


class RecordedDevice:
    """Answers the state probe with recorded texts in turn (the thermal path exists only on phones)."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.calls = 0

    def check(self, command: str, what: str, timeout=None) -> str:
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        return text


def test_wait_until_cool(monkeypatch):
    from lsnet_deploy.bench import phone

    monkeypatch.setattr(phone, "COOL_POLL_S", 0.01)
    static = parse_static(sample("android_static_probe.txt"))
    hot = sample("android_state_probe.txt")                              # hottest SoC zone 51.2 C
    cool = hot.replace("temp=51200", "temp=36000").replace("temp=47300", "temp=35000")
    target = phone.PhoneTarget(phone.PhoneOptions(cool_below_c=40.0, cool_timeout_s=5.0))
    device = RecordedDevice([hot, hot, cool])
    events: list[dict] = []
    assert target._wait_cool(device, static, 0, events, lambda m: None) == 36.0   # the hottest CPU zone once cooled
    assert device.calls == 3 and sorted(e["kind"] for e in events) == ["frequency_cap", "thermal_status"]  # once
    stuck = phone.PhoneTarget(phone.PhoneOptions(cool_below_c=40.0, cool_timeout_s=0.05))
    events = []
    assert stuck._wait_cool(RecordedDevice([hot]), static, 3, events, lambda m: None) == 51.2
    timeout = [e for e in events if e["kind"] == "cool_timeout"]
    assert len(timeout) == 1 and timeout[0]["when"] == "before round 3" and timeout[0]["zone"] == "cpu-1-0-0"
    never = phone.PhoneTarget(phone.PhoneOptions(cool_below_c=0))
    dev = RecordedDevice([hot])
    assert never._wait_cool(dev, static, 0, [], lambda m: None) == 51.2 and dev.calls == 1


def test_report_groups_phone_rows_by_device():
    from lsnet_deploy.bench.report import build_report, device_label, render_text

    def record(serial, model, median, mask="fc", method="per_iteration"):
        stats = {"n": 10, "median_ms": median, "mean_ms": median, "p90_ms": median, "p99_ms": median,
                 "min_ms": median, "max_ms": median, "std_ms": 0.1, "total_s": 1.0, "throughput": 1e3 / median,
                 "method": method}
        return {"schema": "lsnet-bench/1", "run_id": serial, "group": 0, "label": model, "model": model,
                "runtime": "executorch", "device": "cpu", "device_name": f"QTI SM8650 ({serial})", "threads": 6,
                "precision": "float32", "batch": 1, "input_shape": [1, 3, 224, 224], "stats": stats,
                "source": {"kind": "artifact", "sha256": model, "file": f"{model}.pte"},
                "phone": {"serial": serial, "cores": {"mask": mask}, "pinned": True}}

    records = [record("A", "lsnet_t", 10.0), record("A", "mnv3", 8.0), record("B", "lsnet_t", 20.0),
               record("B", "mnv3", 12.0)]
    assert device_label(records[0]) == "QTI SM8650 (A) [A, cores fc]"
    rows, baseline = build_report(records)
    assert [(r.device, r.model, round(r.ratio, 3)) for r in rows] == [
        ("QTI SM8650 (A) [A, cores fc]", "lsnet_t", 1.0), ("QTI SM8650 (A) [A, cores fc]", "mnv3", 0.8),
        ("QTI SM8650 (B) [B, cores fc]", "lsnet_t", 1.0), ("QTI SM8650 (B) [B, cores fc]", "mnv3", 0.6)]
    assert "QTI SM8650 (B)" in render_text(rows, baseline)


def test_report_and_plot_of_tool_summaries(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    from lsnet_deploy.bench.plot import plot_latency
    from lsnet_deploy.bench.report import build_report, render_markdown

    runs = [parse_benchmark_model(sample("tflite_benchmark_model_old_nxp.txt")),
            parse_benchmark_model(sample("tflite_benchmark_model_linux_qrb2210.txt"))]
    records = []
    for model, run in zip(("old", "new"), runs):
        records.append({"schema": "lsnet-bench/1", "run_id": "r", "group": 0, "label": model, "model": model,
                        "runtime": "litert", "provider": "xnnpack", "device": "cpu", "device_name": "QTI QRB2210 (rb1)",
                        "threads": 4, "precision": "float32", "batch": 1, "input_shape": [1, 3, 224, 224],
                        "stats": combine_rounds([run], batch=1), "source": {"kind": "artifact", "sha256": model},
                        "phone": {"serial": "rb1", "cores": {"mask": "f"}, "pinned": True}})
    rows, baseline = build_report(records)
    assert [(r.model, r.stat("median_ms"), r.stat("p90_ms")) for r in rows] == [
        ("new", pytest.approx(105.718), None), ("old", None, None)]
    old = next(r for r in rows if r.model == "old")
    assert old.ratio == pytest.approx(1.0) and old.is_baseline
    new = next(r for r in rows if r.model == "new")
    assert new.ratio == pytest.approx(105.784 / 210.028, abs=1e-6)               # by means: "old" has no median
    table = render_markdown(rows, baseline)
    assert "| - |" in table and "not printed by the device's benchmark tool" in table
    plot_latency(rows, tmp_path / "phone.png")
    assert (tmp_path / "phone.png").stat().st_size > 1000
