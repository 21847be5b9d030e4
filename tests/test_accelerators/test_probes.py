"""Each accelerator probe on real artifacts of the tiny conformance model, asked through its vendor's tool.

Counts are exact where the tool is deterministic (ONNX Runtime's checker, ExecuTorch programs). The LiteRT
GPU cases compile with LiteRT's GPU delegate when a GPU adapter exists (on CI: Mesa's software Vulkan
driver); without one the probe reports the analyzer's verdict as unverified, which is checked instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsnet_deploy.errors import UsageError

from ..conftest import REPO
from .conftest import export_tiny

DATA = REPO / "tests" / "data" / "accelerators"


# --- ONNX Runtime: NNAPI and Core ML EPs on .ort files --------------------------------------------------

def convert_to_ort(onnx_path: Path, out: Path, style: str) -> Path:
    converter = pytest.importorskip("onnxruntime.tools.convert_onnx_models_to_ort")
    converter.convert_onnx_models_to_ort(onnx_path, output_dir=out,
                                         optimization_styles=[getattr(converter.OptimizationStyle, style)])
    return sorted(out.glob("*.ort"))[0]


@pytest.mark.parametrize("accelerator", ["nnapi", "coreml"])
def test_ort_file_is_whole_with_runtime_optimizations_only(tiny_onnx, tmp_path, accelerator):
    """An .ort converted with the Fixed style bakes in FusedConv/FusedMatMul, which NNAPI does not take (and
    FusedMatMul Core ML neither); the Runtime style keeps the basic graph, which each EP takes whole."""
    import onnx

    from lsnet_deploy.accelerators import probe
    from lsnet_deploy.exporters.mobile_ep_passes import prepare_for

    source = tmp_path / "prepared.onnx"
    onnx.save(prepare_for(accelerator, onnx.load(str(tiny_onnx))), str(source))
    runtime = probe(convert_to_ort(source, tmp_path / "runtime", "Runtime"), accelerator)
    assert runtime.whole, runtime.summary()
    fixed = probe(convert_to_ort(source, tmp_path / "fixed", "Fixed"), accelerator)
    assert fixed.fallback_ops.get("FusedMatMul") == 4 and fixed.partitions > 1
    if accelerator == "nnapi":
        assert fixed.fallback_ops.get("FusedConv") == 42


def test_ort_probe_refuses_a_file_that_is_not_a_model(tmp_path):
    from lsnet_deploy.accelerators.ort_mobile import probe_nnapi

    fake = tmp_path / "model.ort"
    fake.write_bytes(b"\0" * 64)
    with pytest.raises(UsageError, match="not an ORT format model"):
        probe_nnapi(fake)
    (tmp_path / "model.onnx").write_text("not onnx")
    with pytest.raises(UsageError, match="not an ONNX model"):
        probe_nnapi(tmp_path / "model.onnx")


# --- ExecuTorch: XNNPACK and Vulkan delegates ------------------------------------------------------------

@pytest.fixture(scope="module")
def xnnpack_pte(tmp_path_factory):
    pytest.importorskip("executorch.exir", reason="ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")
    return export_tiny(tmp_path_factory.mktemp("pte"), "executorch", "tiny.pte", validate=False).path


def test_xnnpack_program_is_one_delegate_call_and_no_vulkan(xnnpack_pte):
    from lsnet_deploy.accelerators.executorch_delegates import probe_vulkan, probe_xnnpack

    xnnpack = probe_xnnpack(xnnpack_pte)
    assert xnnpack.whole and (xnnpack.partitions, xnnpack.fallback_ops) == (1, {})
    vulkan = probe_vulkan(xnnpack_pte)
    assert vulkan.partitions == 0 and not vulkan.whole
    assert vulkan.fallback_ops == {}  # nothing on ExecuTorch's CPU kernels: it all runs in XNNPACK
    assert "runs on XnnpackBackend (1 delegate call), not VulkanBackend" in vulkan.note
    assert "--accelerator vulkan" in vulkan.note


@pytest.mark.slow
def test_half_program_leaves_the_two_casts_outside(tmp_path):
    pytest.importorskip("executorch.exir", reason="ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")
    from lsnet_deploy.accelerators.executorch_delegates import probe_xnnpack

    path = export_tiny(tmp_path, "executorch", "tiny16.pte", half=True, validate=False).path
    report = probe_xnnpack(path)
    assert report.partitions == 1 and report.fallback_ops == {"dim_order_ops::_to_dim_order_copy.out": 2}
    assert not report.whole


def test_pte_probe_refuses_other_files(tmp_path):
    pytest.importorskip("executorch.exir", reason="ExecuTorch is not installed (pip install \"lsnet-deploy[executorch]\")")
    from lsnet_deploy.accelerators.executorch_delegates import probe_xnnpack

    fake = tmp_path / "model.pte"
    fake.write_bytes(b"PK\3\4 not a program")
    with pytest.raises(UsageError, match="not an ExecuTorch program"):
        probe_xnnpack(fake)


# --- LiteRT GPU -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    """The tiny model as .tflite in LiteRT's default SKA form (onehot_conv) and in tap_slices."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install \"lsnet-deploy[litert]\")")
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install \"lsnet-deploy[litert]\")")
    folder = tmp_path_factory.mktemp("tflite")
    return {form: export_tiny(folder, "litert", f"{form}.tflite", ska=form, validate=False).path
            for form in ("onehot_conv", "tap_slices")}


def test_gpu_delegate_takes_tap_slices_whole_but_not_onehot_conv(tflite_files):
    from lsnet_deploy.accelerators.litert_gpu import analyzer_operators, compile_on_gpu, probe_litert_gpu

    path = tflite_files["tap_slices"]
    whole = compile_on_gpu(path, len(analyzer_operators(path)))
    if whole is None:
        pytest.skip("no GPU adapter for LiteRT's GPU delegate here (install mesa-vulkan-drivers >= 25 for Mesa's "
                    "software Vulkan driver); test_analyzer_verdict_is_marked_unverified covers this machine")
    assert whole.whole and whole.verified and whole.nodes_on_accelerator == whole.nodes_total
    split = probe_litert_gpu(tflite_files["onehot_conv"])
    assert not split.whole and split.verified
    # onehot_conv's rank-5 products and its tap sum are what the GPU refuses
    assert set(split.fallback_ops) == {"MUL", "RESHAPE", "SUM"}, split.summary()
    assert "Tensor dimensions must be less than 5" in split.note
    assert 0 < split.nodes_on_accelerator < split.nodes_total


def test_analyzer_verdict_is_marked_unverified(tflite_files):
    """The 2.3 wheel's analyzer has no GPU rules: it calls a model with STABLEHLO_SORT compatible."""
    from lsnet_deploy.accelerators.litert_gpu import analyzer_operators, analyzer_report

    canary = DATA / "gpu_refused_ops.tflite.fixture"
    ops = analyzer_operators(canary)
    assert "STABLEHLO_SORT" in ops
    report = analyzer_report(canary, ops)
    assert report.partitions == 1 and not report.verified and "not compiled into" in report.note
    tiny = analyzer_report(tflite_files["onehot_conv"], analyzer_operators(tflite_files["onehot_conv"]))
    assert not tiny.verified and tiny.nodes_total == len(analyzer_operators(tflite_files["onehot_conv"]))


def test_gpu_delegate_failure_is_one_line():
    """The canary's STABLEHLO_SORT has no CPU kernel either: the compile fails, and says why."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install \"lsnet-deploy[litert]\")")
    from lsnet_deploy.accelerators.litert_gpu import compile_on_gpu

    try:
        report = compile_on_gpu(DATA / "gpu_refused_ops.tflite.fixture", 12)
    except UsageError as exc:
        assert "STABLEHLO_SORT" in str(exc) and "\n" not in str(exc)
    else:
        assert report is None, report.summary()  # no GPU adapter here: nothing was compiled


def test_gpu_probe_refuses_other_files(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install \"lsnet-deploy[litert]\")")
    from lsnet_deploy.accelerators.litert_gpu import probe_litert_gpu

    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"TFL3 but not really")
    with pytest.raises(UsageError):
        probe_litert_gpu(fake)


# --- Core ML: the Neural Engine ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_packages(tmp_path_factory):
    """A two-layer ML Program in float32 and in float16 (coremltools converts on Linux)."""
    ct = pytest.importorskip("coremltools", reason="coremltools is not installed (pip install \"lsnet-deploy[coreml]\")")
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    program = torch.export.export(model, (torch.zeros(1, 3, 16, 16),)).run_decompositions({})
    folder = tmp_path_factory.mktemp("coreml")
    paths = {}
    for precision in ("FLOAT32", "FLOAT16"):
        converted = ct.convert(program, convert_to="mlprogram", compute_precision=getattr(ct.precision, precision),
                               minimum_deployment_target=ct.target.iOS16)
        paths[precision] = folder / f"{precision}.mlpackage"
        converted.save(str(paths[precision]))
    return paths


def test_neural_engine_placement_is_never_claimed(small_packages):
    from lsnet_deploy.accelerators.coreml_placement import probe_neural_engine

    float32 = probe_neural_engine(small_packages["FLOAT32"])
    assert not float32.verified and float32.partitions is None and float32.nodes_total == 2
    assert "macOS" in float32.note and "2 of 2 operations compute in float32" in float32.note
    float16 = probe_neural_engine(small_packages["FLOAT16"])
    assert not float16.verified and "float32" not in float16.note.split("; operations")[0]


def test_neural_engine_probe_refuses_other_paths(tmp_path):
    pytest.importorskip("coremltools", reason="coremltools is not installed (pip install \"lsnet-deploy[coreml]\")")
    from lsnet_deploy.accelerators.coreml_placement import probe_neural_engine

    folder = tmp_path / "empty.mlpackage"
    folder.mkdir()
    with pytest.raises(UsageError, match="not a Core ML package"):
        probe_neural_engine(folder)
