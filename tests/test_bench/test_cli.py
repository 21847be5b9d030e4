"""``lsnet-bench`` end to end on real ONNX Runtime sessions: records, provenance, options, errors."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from lsnet_deploy import __version__
from lsnet_deploy.bench.results import read_records
from lsnet_deploy.cli.bench import app, normalize_args

runner = CliRunner()


def bench(*args: str):
    return runner.invoke(app, normalize_args([str(a) for a in args]))


def one_line_error(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("lsnet-bench: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_default_command_is_run():
    assert normalize_args(["a.onnx", "--iters", "3"]) == ["run", "a.onnx", "--iters", "3"]
    assert normalize_args(["--model", "lsnet_t"]) == ["run", "--model", "lsnet_t"]
    assert normalize_args(["report", "r.jsonl"]) == ["report", "r.jsonl"]
    assert normalize_args(["run", "report"]) == ["run", "report"]
    assert normalize_args(["--help"]) == ["--help"] and normalize_args([]) == []


def test_two_artifacts_interleaved_with_provenance(tiny_onnx, tiny_copy, tmp_path, quick):
    out = tmp_path / "r.jsonl"
    result = bench(tiny_onnx, tiny_copy, "--threads", "1", *quick, "-o", out)
    assert result.exit_code == 0, result.output
    assert "tiny_copy" in result.stdout and "1.00x" in result.stdout and "appended 2 results" in result.stderr
    records, skipped = read_records([out])
    assert skipped == [] and len(records) == 2
    first, second = records
    assert first["label"] == "tiny" and second["label"] == "tiny_copy"
    assert first["run_id"] == second["run_id"] and first["group"] == second["group"] == 0
    assert first["interleaved_with"] == ["tiny", "tiny_copy"]
    assert first["ratio_to_first"] == 1.0
    assert second["ratio_to_first"] == pytest.approx(second["stats"]["median_ms"] / first["stats"]["median_ms"],
                                                     rel=1e-3)
    assert first["stats"]["n"] == second["stats"]["n"] == 5
    # what ran, on what, how
    assert (first["runtime"], first["provider"], first["threads"], first["device"]) == \
        ("ort", "CPUExecutionProvider", 1, "cpu")
    assert first["runtime_version"] == __import__("onnxruntime").__version__
    assert (first["batch"], first["input_shape"], first["input_dtype"], first["output_shape"]) == \
        (1, [1, 3, 128, 128], "float32", [1, 10])
    assert first["precision"] == "float32" and first["model"] == "tiny"
    assert first["source"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert first["source"]["size_bytes"] == tiny_onnx.stat().st_size
    assert first["metadata"]["producer"] == "lsnet-deploy" and first["metadata"]["num_classes"] == 10
    assert first["settings"]["timing"] == {"warmup_iters": 1, "warmup_time": 0.0, "min_iters": 5, "min_time": 0.0}
    assert first["settings"]["protocol"] == "latency" and first["settings"]["spinning"] is False
    assert first["runtime_info"]["spinning"] is False and second["runtime_info"]["spinning"] is False
    machine = first["machine"]
    assert machine["hostname"] and machine["cpu"] and machine["cpu_count"] >= 1 and machine["os"]
    assert first["device_name"] == machine["cpu"]
    assert first["lsnet_deploy_version"] == __version__ and first["target"] == "local"
    assert first["time"].endswith("+00:00")
    # a second run appends
    assert bench(tiny_onnx, *quick, "-o", out, "--json", "--keep-samples").exit_code == 0
    records, _ = read_records([out])
    assert len(records) == 3 and len(records[2]["samples_ms"]) == 5
    assert records[2]["run_id"] != first["run_id"]


def test_json_output_and_batch_groups(tiny_checkpoint_path, tmp_path, quick):
    result = bench("--weights", tiny_checkpoint_path, "--batch", "1,3", "--threads", "1", *quick,
                   "--json", "--no-save")
    assert result.exit_code == 0, result.output
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [(r["runtime"], r["batch"], r["group"]) for r in lines] == [("torch", 1, 0), ("torch", 3, 1)]
    assert lines[1]["input_shape"] == [3, 3, 128, 128] and lines[1]["output_shape"] == [3, 10]
    assert lines[0]["source"]["kind"] == "model" and lines[0]["model"] == "tiny"
    assert lines[0]["architecture"] == lines[0]["source"]["variant"] == "lsnet"
    assert not list(tmp_path.iterdir())


def test_model_on_torch_and_onnxruntime_exported_on_the_fly(tiny_checkpoint_path, tmp_path, quick):
    out = tmp_path / "r.jsonl"
    result = bench("-w", tiny_checkpoint_path, "--runtime", "torch,ort", "--threads", "1", *quick, "-o", out)
    assert result.exit_code == 0, result.output
    records, _ = read_records([out])
    assert [(r["label"], r["runtime"]) for r in records] == [("tiny:torch", "torch"), ("tiny:ort", "ort")]
    assert records[1]["source"]["exported_to"] == "onnx" and records[1]["source"]["artifact_sha256"]
    assert records[0]["model"] == records[1]["model"]


def test_paper_protocol_settings(tiny_checkpoint_path, tmp_path):
    out = tmp_path / "r.jsonl"
    result = bench("-w", tiny_checkpoint_path, "--protocol", "paper", "--device", "cpu", "--batch", "2",
                   "--warmup-time", "0.05", "--min-time", "0.2", "-o", out)
    assert result.exit_code == 0, result.output
    (record,) = read_records([out])[0]
    settings = record["settings"]
    assert settings["protocol"] == "paper"
    assert sorted(settings["protocol_overrides"]) == ["batch", "device", "min_time", "warmup_time"]
    assert settings["timing"] == {"warmup_iters": 0, "warmup_time": 0.05, "min_iters": 1, "min_time": 0.2}
    assert record["precision"] == "float32" and record["batch"] == 2
    assert record["stats"]["total_s"] >= 0.2
    assert record["stats"]["throughput"] == pytest.approx(2 / (record["stats"]["mean_ms"] / 1e3), rel=1e-4)
    assert any("uploaded to the device once" in n for n in record["notes"])


@pytest.mark.parametrize("args, code, fragments", [
    (["missing.onnx"], 2, ["missing.onnx does not exist"]),
    (["{onnx}", "--runtime", "onnxrunt"], 2, ["unknown runtime", "did you mean"]),
    (["{onnx}", "--batch", "0"], 2, ["--batch must be positive"]),
    (["{onnx}", "--batch", "2"], 2, ["fixed batch of 1", "--dynamic"]),
    (["{onnx}", "--imgsz", "224"], 2, ["takes 128x128 images"]),
    (["{onnx}", "--precision", "float16"], 2, ["float32 artifact", "--half"]),
    (["{onnx}", "{onnx}", "--spinning"], 2, ["--spinning"]),
    (["{onnx}", "--provider", "cuda"], 1, ["cannot run here", "CUDAExecutionProvider is not available"]),
    (["{onnx}", "--runtime", "trt"], 1, ["cannot run here"]),
    (["--model", "lsnet_t", "--runtime", "torch", "--provider", "cuda"], 2,
     ["--provider selects an execution provider of ONNX Runtime", "none of the candidates runs on it"]),
    (["{onnx}", "--runtime", "torch"], 2, ["--model"]),
    (["{onnx}", "--runtime", "ort,torch"], 2, ["one value"]),
    (["--threads", "2"], 2, ["nothing to benchmark"]),
    (["{onnx}", "--threads", "0"], 2, ["--threads"]),
    (["{onnx}", "--protocol", "fast"], 2, ["--protocol"]),
    (["{onnx}", "--ssh-option", "Port=22"], 2, ["only with --host"]),
    (["{onnx}", "-o", "{dir}"], 2, ["is a directory"]),
])
def test_errors_are_one_line(tiny_onnx, tmp_path, args, code, fragments, quick):
    if "trt" in args and __import__("importlib").util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    args = [a.replace("{onnx}", str(tiny_onnx)).replace("{dir}", str(tmp_path)) for a in args]
    result = bench(*args, *quick, "-o", tmp_path / "r.jsonl") if "-o" not in args else bench(*args, *quick)
    one_line_error(result, code, *fragments)
    assert not (tmp_path / "r.jsonl").exists()


def test_no_arguments_shows_help():
    result = runner.invoke(app, normalize_args([]))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Usage:") and "Traceback" not in result.output
    assert "run" in result.output and "report" in result.output


def test_artifacts_sharing_a_stem_are_labelled_by_file_name(tmp_path):
    from lsnet_deploy.cli.bench import build_candidates

    paths = [tmp_path / "m.int8.onnx", tmp_path / "m.int8.pte", tmp_path / "other.onnx"]
    for path in paths:
        path.write_bytes(b"")
    specs = build_candidates([*paths, paths[2]], None, None, None, None)
    assert [s.label for s in specs] == ["m.int8.onnx", "m.int8.pte", "other.onnx", "other.onnx#2"]
    assert [s.runtime for s in specs] == ["ort", "executorch", "ort", "ort"]
