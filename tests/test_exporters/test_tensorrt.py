"""``--format tensorrt``: what can be checked without TensorRT (the exact ONNX handed to it, in float32,
float16 and int8, against TensorRT's ONNX operator list; options; the trtexec command; the clear failure
on a machine without TensorRT or a GPU) and, where TensorRT and a CUDA GPU exist, a real engine."""

import contextlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner

from lsnet_deploy.errors import MissingDependencyError, RuntimeUnavailableError, UsageError
from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter
from lsnet_deploy.exporters.context import ExportContext
from lsnet_deploy.exporters.prepare import prepare_model, reference_model
from lsnet_deploy.exporters.calibration import split_calibration
from lsnet_deploy.exporters.tensorrt_build import EngineSettings, build_engine, trtexec_command
from lsnet_deploy.exporters.tensorrt_format import float32_islands_missing
from lsnet_deploy.exporters.tensorrt_ops import SUPPORTED_OPERATORS, check_tensorrt_support
from lsnet_deploy.metadata import build_metadata
from lsnet_deploy.models import load_model
from lsnet_deploy.runtimes import runner_for
from lsnet_deploy.runtimes.tensorrt_runner import TensorRTOptions, TensorRTRunner, cuda_device_count, read_sidecar

from ..conftest import conformance_case, error_line, invoke_export as invoke

runner = CliRunner()
TINY = str(conformance_case("tiny")[0])
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = cuda_device_count() > 0
needs_no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
needs_tensorrt_and_gpu = pytest.mark.skipif(not (HAS_TENSORRT and HAS_GPU and torch.cuda.is_available()),
                                            reason="needs tensorrt, an NVIDIA GPU and a CUDA build of PyTorch")


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:140, 0:140] / 140
    for i in range(16):
        waves = np.stack([np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy + rng.uniform()))
                          for _ in range(3)], -1)
        pixels = (waves * 0.5 + 0.5) * rng.uniform(60, 255, 3) + rng.normal(0, 12, waves.shape)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY)


def onnx_for_tensorrt(model, tmp_path, with_metadata=False, **options):
    """Run the exporter up to the engine build: the exact ONNX file TensorRT would be given."""
    exporter = get_exporter("tensorrt")
    opts = ExportOptions(**options)
    exporter.check_options(opts)
    ska = exporter.resolve_ska(opts.ska)
    prepared = prepare_model(model, ska, opts.fuse)
    metadata = build_metadata(prepared, ska_form=ska, fused=True, precision=opts.precision,
                              batch="dynamic" if opts.dynamic else opts.batch)
    path = tmp_path / "for_tensorrt.onnx"
    with contextlib.ExitStack() as resources:
        context = ExportContext(target=tmp_path / "model.engine", options=opts, ska_form=ska, metadata=metadata,
                                reference=reference_model(model), progress=lambda _: None, resources=resources,
                                calibration=split_calibration(opts.calib) if opts.int8 else None)
        details, added = exporter.write_onnx(prepared, torch.zeros(opts.batch, 3, *model.img_size), path, context)
    result = onnx.load(str(path)), details, exporter.engine_settings(prepared, opts)
    return (*result, added) if with_metadata else result


# ---------------------------------------------------------------- the ONNX handed to TensorRT


def test_float32_graph_with_the_auto_ska_form(tiny, tmp_path):
    assert get_exporter("trt").resolve_ska("auto") == "shifted_slices"
    model, details, settings = onnx_for_tensorrt(tiny, tmp_path)
    report = check_tensorrt_support(model, settings.batch_sizes())
    assert report.ok, report.problems
    assert report.opset == 18 and all(op in SUPPORTED_OPERATORS for op in report.op_counts)
    assert "Slice" in report.op_counts  # the shifted-slices SKA, not the one-hot convolution
    assert details["onnx_validation"].startswith("ok") and "limit 0.001" in details["onnx_validation"]
    types = {v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    assert types == {TensorProto.FLOAT}


def test_float16_graph_keeps_float32_islands_and_a_dynamic_profile(tiny, tmp_path):
    model, details, settings = onnx_for_tensorrt(tiny, tmp_path, half=True, dynamic=True, ska="onehot_conv",
                                                 format_options=TensorRTOptions(max_batch=4))
    assert settings.profile() == ((1, 3, 128, 128), (4, 3, 128, 128), (4, 3, 128, 128))
    report = check_tensorrt_support(model, settings.batch_sizes())
    assert report.ok, report.problems
    assert report.batch_sizes == (1, 4)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.input, *inferred.output)}
    assert types["input"] == types["logits"] == TensorProto.FLOAT  # float32 in and out
    assert sum(t == TensorProto.FLOAT16 for t in types.values()) > 100  # the body is float16
    islands = [n for n in inferred.node if n.op_type in ("InstanceNormalization", "Softmax")]
    assert islands and all(types[n.input[0]] == TensorProto.FLOAT for n in islands)
    assert float32_islands_missing(model) == []
    assert details["onnx_validation"].startswith("ok") and "limit 0.02" in details["onnx_validation"]
    # the ONNX runs the whole profile on ONNX Runtime
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((4, 3, 128, 128), np.float32)})[0].shape == (4, 10)


def test_int8_graph_is_explicitly_quantized_and_agrees_with_float32(tiny, tmp_path, calib_dir):
    model, details, settings, added = onnx_for_tensorrt(tiny, tmp_path, int8=True, calib=calib_dir, ska="onehot_conv",
                                                        with_metadata=True)
    report = check_tensorrt_support(model, settings.batch_sizes())
    assert report.ok, report.problems
    assert report.op_counts["QuantizeLinear"] > 10 and report.op_counts["DequantizeLinear"] > 10
    # checked on the images held out of calibration (every fifth of the 16)
    assert details["int8_top1_agreement"].endswith("on 3 held-out calibration images")
    assert json.loads(added["int8_calibration"])["placement"] == "tensorrt"
    assert details["onnx_validation"].startswith("ok")

    # the Q/DQ layout TensorRT takes: signed int8 with zero points 0, per-channel weights, float biases,
    # and Q/DQ pairs only where a Conv/Gemm/MatMul reads a tensor (its other readers, such as a residual Add,
    # see the same dequantized values; nothing else is quantized)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for node in qdq:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    conv_weights = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits
                    and inits[n.input[0]].ndim == 4 and inits[n.input[0]].shape[0] > 1]
    assert conv_weights and all(inits[n.input[1]].size == inits[n.input[0]].shape[0] for n in conv_weights)
    assert not any(a.dtype == np.int32 for a in inits.values())
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    for node in qdq:
        if node.op_type == "DequantizeLinear":
            assert {"Conv", "Gemm", "MatMul"} & set(consumers[node.output[0]]), node.name


# ---------------------------------------------------------------- the checker catches what TensorRT rejects


def _model(nodes, inputs, outputs, initializers=(), opset=18, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]]
    return helper.make_model(graph, opset_imports=imports)


def _x(shape=(1, 4, 8, 8), elem=TensorProto.FLOAT, name="x"):
    return helper.make_tensor_value_info(name, elem, list(shape))


def test_checker_accepts_a_plain_graph():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_x()], [_x(name="y")])
    assert check_tensorrt_support(model).ok


@pytest.mark.parametrize("case, expected", [
    ("unknown_op", "Unique (1 node) is not on TensorRT's ONNX operator list"),
    ("contrib_domain", "domain 'com.microsoft'"),
    ("opset", "opset 21 is outside 9..20"),
    ("asymmetric_uint8", "zero point must be a constant 0"),
    ("int32_bias", "DequantizeLinear dq: input type INT32 not supported"),
    ("dynamic_axes", "Squeeze sq: input 1 (axes) must be a constant"),
    ("cubic_resize", "resize mode 'cubic' not supported"),
    ("unresolved_shape", "not resolved at batch 1"),
    ("newer_than_jetpack", "RMSNormalization needs TensorRT 10.15 or newer"),
])
def test_checker_reports_what_tensorrt_rejects(case, expected):
    x, y = _x(), _x(name="y", shape=())
    if case == "unknown_op":
        model = _model([helper.make_node("Unique", ["v"], ["y"])], [_x((5,), name="v")], [y])
    elif case == "contrib_domain":
        model = _model([helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft")], [x], [y],
                       domains=["com.microsoft"])
    elif case == "opset":
        model = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=21)
    elif case == "asymmetric_uint8":
        inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(128), "z")]
        model = _model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], [x], [y], inits)
    elif case == "int32_bias":
        inits = [numpy_helper.from_array(np.arange(4, dtype=np.int32), "b"),
                 numpy_helper.from_array(np.float32(0.1), "s")]
        model = _model([helper.make_node("DequantizeLinear", ["b", "s"], ["y"], name="dq")], [], [y], inits)
    elif case == "dynamic_axes":
        model = _model([helper.make_node("Squeeze", ["x", "axes"], ["y"], name="sq")],
                       [x, _x((1,), TensorProto.INT64, "axes")], [y])
    elif case == "cubic_resize":
        inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
        model = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic")], [x], [y], inits)
    elif case == "unresolved_shape":  # a reshape to a shape known only at run time
        model = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                       [x, _x((2,), TensorProto.INT64, "shape")], [y])
    else:
        inits = [numpy_helper.from_array(np.ones(8, np.float32), "gamma")]
        model = _model([helper.make_node("RMSNormalization", ["x", "gamma"], ["y"], axis=-1)], [x], [y], inits,
                       opset=23)
    report = check_tensorrt_support(model)
    assert not report.ok
    assert any(expected in problem for problem in report.problems), report.problems


def test_float16_softmax_is_reported():
    model = _model([helper.make_node("Softmax", ["x"], ["y"], name="attn")], [_x(elem=TensorProto.FLOAT16)],
                   [_x(elem=TensorProto.FLOAT16, name="y")])
    assert float32_islands_missing(model) == ["Softmax attn"]


# ---------------------------------------------------------------- trtexec command, settings, names


def test_trtexec_command_matches_the_build_settings():
    static = EngineSettings("input", (3, 224, 224))
    assert trtexec_command("m.engine.onnx", "m.engine", static) == \
        "trtexec --onnx=m.engine.onnx --saveEngine=m.engine --stronglyTyped"
    full = EngineSettings("input", (3, 224, 224), batch=2, max_batch=16, workspace_gib=1.5,
                          timing_cache=Path("cache dir/lsnet.cache"), dla_core=1)
    command = trtexec_command("m.engine.onnx", "m.engine", full)
    for part in ("--minShapes=input:2x3x224x224", "--optShapes=input:16x3x224x224",
                 "--maxShapes=input:16x3x224x224", "--memPoolSize=workspace:1536",
                 "'--timingCacheFile=cache dir/lsnet.cache'", "--useDLACore=1 --allowGPUFallback"):
        assert part in command
    assert "--fp16" not in command and "--int8" not in command  # removed in TensorRT 11; precision is in the ONNX


def test_sidecar_names_every_output_binding_in_order():
    from lsnet_deploy.exporters.tensorrt_format import engine_sidecar
    from lsnet_deploy.metadata import describe_outputs

    shapes = [(2, 64, 56, 56), (2, 128, 28, 28), (2, 256, 14, 14), (2, 384, 7, 7)]
    outputs = describe_outputs([f"stage{i}" for i in range(1, 5)], shapes, (224, 224))
    metadata = {"outputs": json.dumps(outputs), "precision": json.dumps("float16")}
    settings = EngineSettings("input", (3, 224, 224), batch=2)
    sidecar = engine_sidecar("bb.engine", "float16", settings, {"tensorrt_version": "10.3"}, "trtexec ...", {},
                             metadata)
    assert sidecar["outputs"] == [{"name": f"stage{i}", "dtype": "float32", "shape": list(shape)}
                                  for i, shape in enumerate(shapes, 1)]
    assert sidecar["input"]["shape"] == [2, 3, 224, 224] and sidecar["input"]["profile"] is None
    assert sidecar["precision"] == "float16" and sidecar["metadata"] is metadata
    assert sidecar["tensorrt_version"] == "10.3"
    legacy = engine_sidecar("m.engine", "float32", settings, {}, "", {}, {})  # metadata without outputs
    assert legacy["outputs"] == [{"name": "logits", "dtype": "float32", "shape": None}]
    renamed = engine_sidecar("m.engine", "float32", settings, {}, "", {}, {"output_name": json.dumps("scores")})
    assert renamed["outputs"][0]["name"] == "scores"


def test_importing_the_exporter_imports_no_heavy_library():
    import subprocess

    code = ("import sys, lsnet_deploy.exporters, lsnet_deploy.exporters.tensorrt_build, "
            "lsnet_deploy.runtimes.tensorrt_runner; "
            "print(sorted(m for m in ('tensorrt', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- options and bad inputs (no TensorRT needed)


@pytest.mark.parametrize("args, fragment", [
    (["--target", "iOS17"], "--format tensorrt does not accept --target"),
    (["--tensor-input"], "does not accept --tensor-input"),
    (["--max-batch", "8"], "--max-batch sets the largest batch of a --dynamic engine"),
    (["--dynamic", "--batch", "4", "--max-batch", "2"], "--max-batch 2 is below --batch 4"),
    (["--workspace", "0"], "--workspace is in GiB and must be positive"),
    (["--half", "--dla-core", "-1"], "--dla-core must be 0 or more"),
    (["--dla-core", "0"], "DLA runs only float16 and int8 layers"),
    (["--opset", "21"], "--opset 21 is not read by every TensorRT 10; use 17 to 20"),
    (["--timing-cache", "no/such/dir/t.cache"], "does not exist"),
    (["--half", "--int8", "--calib", "."], "--half and --int8 are exclusive"),
    (["--int8"], "--int8 needs calibration images"),
    (["--calib", "."], "--calib is only used with --int8"),
    (["--int8", "--calib", "no_such_dir"], "no such directory"),
    (["--ska", "triton"], "cannot export the 'triton' SKA form"),
    (["--ska", "im2col"], "unknown SKA form"),
    (["--batch", "0"], "--batch"),
    (["--imgsz", "8"], "--imgsz"),
])
@pytest.mark.parametrize("name", ["tensorrt", "trt", "engine"])
def test_bad_options_exit_2_before_any_work(tmp_path, monkeypatch, name, args, fragment):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m.engine"
    result = invoke("--format", name, "--weights", TINY, "-o", out, *args)
    assert result.exit_code == 2, result.output
    assert fragment in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_empty_calibration_directory_is_refused_up_front(tmp_path):
    (tmp_path / "calib").mkdir()
    result = invoke("-f", "trt", "--weights", TINY, "--int8", "--calib", tmp_path / "calib",
                    "-o", tmp_path / "m.engine")
    assert result.exit_code == 2 and "holds no images" in error_line(result)


@pytest.mark.parametrize("flag, value", [("--workspace", "4"), ("--dla-core", "0"), ("--timing-cache", "t.cache"),
                                         ("--max-batch", "8")])
def test_onnx_format_refuses_tensorrt_options(tmp_path, flag, value):
    result = invoke("--format", "onnx", "--weights", TINY, flag, value, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2 and f"--format onnx does not accept {flag}" in error_line(result)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- no TensorRT, or no GPU, here


@needs_no_tensorrt
@pytest.mark.parametrize("name", ["tensorrt", "trt", "engine"])
def test_without_tensorrt_export_fails_clearly_and_leaves_nothing(tmp_path, name):
    out = tmp_path / "m.engine"
    result = invoke("--format", name, "--weights", TINY, "--half", "-o", out)
    assert result.exit_code == 1, result.output
    line = error_line(result)
    for needed in ("tensorrt is not installed", "NVIDIA GPU", "CUDA", 'pip install "lsnet-deploy[tensorrt]"',
                   "--format onnx"):
        assert needed in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(HAS_GPU, reason="a CUDA GPU is present here")
def test_with_tensorrt_but_no_gpu_export_fails_clearly(tmp_path, monkeypatch):
    # only the import is stood in for: what is checked is our probe of the real CUDA driver (absent here)
    stand_in = types.ModuleType("tensorrt")
    stand_in.__version__ = "10.3.0"
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in)
    result = invoke("--format", "tensorrt", "--weights", TINY, "--half", "-o", tmp_path / "m.engine")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "NVIDIA GPU with CUDA and none was found here" in line and "TensorRT 10.3.0 is installed" in line
    assert list(tmp_path.iterdir()) == []


def test_tensorrt_older_than_10_is_refused(monkeypatch):
    stand_in = types.ModuleType("tensorrt")
    stand_in.__version__ = "9.3.0"
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in)
    with pytest.raises(RuntimeUnavailableError, match="TensorRT 9.3.0 is installed; .* TensorRT 10 or 11"):
        get_exporter("tensorrt").check_environment(ExportOptions())


@needs_no_tensorrt
def test_engine_builder_and_runner_say_what_is_missing(tmp_path):
    with pytest.raises(MissingDependencyError, match=r'pip install "lsnet-deploy\[tensorrt\]"'):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", EngineSettings("input", (3, 32, 32)))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    runner = runner_for(engine)
    assert isinstance(runner, TensorRTRunner)
    with pytest.raises(RuntimeUnavailableError, match="TensorRT is not installed.*NVIDIA GPU"):
        runner.activate()
    assert not runner.active


def test_runner_arguments_and_sidecar(tmp_path):
    with pytest.raises(UsageError, match="not a CUDA device"):
        TensorRTRunner(tmp_path / "m.engine", device="cpu")
    assert TensorRTRunner(tmp_path / "m.engine", device="cuda:1").device_index == 1
    with pytest.raises(UsageError, match="TensorRT engines carry no metadata"):
        read_sidecar(tmp_path / "m.engine")
    (tmp_path / "m.engine.json").write_text(json.dumps({"metadata": {"input_size": "[128, 128]"}}))
    assert TensorRTRunner(tmp_path / "m.engine").metadata() == {"input_size": "[128, 128]"}


# ---------------------------------------------------------------- a real engine (TensorRT machines only)


@needs_tensorrt_and_gpu
@pytest.mark.parametrize("precision", ["float32", "float16", "int8"])
def test_engine_builds_runs_and_matches_pytorch(tiny, tmp_path, calib_dir, precision):
    options = ExportOptions(half=precision == "float16", int8=precision == "int8",
                            calib=calib_dir if precision == "int8" else None, dynamic=True,
                            format_options=TensorRTOptions(max_batch=4, timing_cache=tmp_path / "timing.cache"))
    result = export_model(tiny, "tensorrt", tmp_path / "tiny.engine", options)
    assert result.validation is not None and result.validation.passed, result.validation
    sidecar = read_sidecar(tmp_path / "tiny.engine")
    assert sidecar["engine"] == "tiny.engine" and (tmp_path / sidecar["onnx"]).is_file()
    assert sidecar["trtexec"] == result.details["trtexec"] and "--maxShapes=input:4x3x128x128" in sidecar["trtexec"]
    assert sidecar["precision"] == json.loads(sidecar["metadata"]["precision"]) == precision
    assert (tmp_path / "timing.cache").stat().st_size > 0
    with TensorRTRunner(tmp_path / "tiny.engine") as engine:
        x = np.random.default_rng(0).standard_normal((3, 3, 128, 128)).astype(np.float32)
        with torch.no_grad():
            expected = prepare_model(tiny, result.ska_form, True)(torch.from_numpy(x)).numpy()
        tolerance = {"float32": 1e-3, "float16": 2e-2, "int8": 0.1}[precision]
        np.testing.assert_allclose(engine.infer(x), expected, atol=tolerance * np.abs(expected).max(), rtol=0)
