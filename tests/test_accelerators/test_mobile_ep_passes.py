"""The NNAPI / Core ML rewrites (exporters/mobile_ep_passes.py): same outputs, one partition.

Partition counts come from ONNX Runtime's own mobile usability checker (through ``probe_nnapi`` /
``probe_coreml_ep``) and are exact for the tiny conformance model's export.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install \"lsnet-deploy[onnx]\")")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"lsnet-deploy[onnx]\")")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from lsnet_deploy.accelerators.ort_mobile import probe_coreml_ep, probe_nnapi  # noqa: E402
from lsnet_deploy.exporters.mobile_ep_passes import (  # noqa: E402
    instance_norm_to_reductions, pad_to_concat, prepare_counts, prepare_for)

#: the rewrites must not move outputs by more than this, relative to the largest output
REL_TOL = 1e-5
PROBES = {"nnapi": probe_nnapi, "coreml": probe_coreml_ep}


def run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_same_outputs(rewritten, original, x):
    want, got = run(original, x), run(rewritten, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=REL_TOL * float(np.abs(want).max()))


def random_input(model) -> np.ndarray:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("accelerator, before", [
    ("nnapi", {"Resize": 6, "InstanceNormalization": 2}),
    ("coreml", {"Resize": 6, "Pad": 2}),
])
def test_tiny_model_goes_from_nine_partitions_to_one(tiny_onnx, tmp_path, accelerator, before):
    original = onnx.load(str(tiny_onnx))
    first = PROBES[accelerator](tiny_onnx)
    assert (first.partitions, first.fallback_ops) == (9, before)
    assert "unknown size" in first.note  # the Resize nodes' empty roi input

    rewritten, counts = prepare_counts(accelerator, original)
    assert counts["resize_gate_to_broadcast"] == 6
    assert_same_outputs(rewritten, original, random_input(original))
    path = tmp_path / f"{accelerator}.onnx"
    onnx.save(rewritten, str(path))
    report = PROBES[accelerator](path)
    assert report.whole, report.summary()
    assert report.nodes_on_accelerator == report.nodes_total
    assert report.tool_version == ort.__version__


def test_each_accelerator_keeps_the_operator_the_other_lacks(tiny_onnx, tmp_path):
    """NNAPI takes Pad, Core ML takes InstanceNormalization: each rewrite changes only what its EP lacks."""
    original = onnx.load(str(tiny_onnx))
    for accelerator, other, kept in (("nnapi", "coreml", "Pad"), ("coreml", "nnapi", "InstanceNormalization")):
        path = tmp_path / f"{accelerator}.onnx"
        onnx.save(prepare_for(accelerator, original), str(path))
        assert PROBES[other](path).fallback_ops == {kept: 2}


def test_other_accelerators_and_the_input_are_left_alone(tiny_onnx):
    original = onnx.load(str(tiny_onnx))
    copy = prepare_for("htp", original)
    assert copy.SerializeToString() == original.SerializeToString() and copy is not original
    prepare_for("nnapi", original)
    assert [n.op_type for n in original.graph.node].count("InstanceNormalization") == 2


def small_model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_instance_norm_with_affine_parameters_and_rank_four():
    rng = np.random.default_rng(1)
    scale = numpy_helper.from_array(rng.uniform(0.5, 2, 3).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bias")
    model = small_model([helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], epsilon=1e-3)],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 7])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5, 7])], [scale, bias])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert instance_norm_to_reductions(rewritten) == 1
    assert "InstanceNormalization" not in {n.op_type for n in rewritten.graph.node}
    onnx.checker.check_model(rewritten)
    x = (rng.standard_normal((2, 3, 5, 7)) * 4 + 3).astype(np.float32)
    assert_same_outputs(rewritten, model, x)


def test_pad_with_a_fill_value_and_uneven_sides():
    pads = numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1, 2, 3], dtype=np.int64), "pads")
    fill = numpy_helper.from_array(np.array(-2.5, dtype=np.float32), "fill")
    model = small_model([helper.make_node("Pad", ["x", "pads", "fill"], ["y"], mode="constant")],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 7, 7])], [pads, fill])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert pad_to_concat(rewritten) == 1
    assert {n.op_type for n in rewritten.graph.node} == {"Concat"}
    assert_same_outputs(rewritten, model, np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32))


def test_reflect_pad_is_not_rewritten():
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
    model = small_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], [pads])
    assert pad_to_concat(model) == 0


def test_dynamic_shapes_are_refused():
    model = small_model([helper.make_node("Relu", ["x"], ["y"])],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 8, 8])])
    with pytest.raises(ValueError, match="static shapes"):
        prepare_for("coreml", model)


@pytest.mark.slow
def test_lsnet_t_reaches_one_partition_on_both(tmp_path):
    from lsnet_deploy.exporters import ExportOptions, export_model
    from lsnet_deploy.models import create_model

    source = export_model(create_model("lsnet_t").eval(), "onnx", tmp_path / "lsnet_t.onnx",
                          ExportOptions(ska="tap_slices", validate=False)).path
    original = onnx.load(str(source))
    x = random_input(original)
    for accelerator, probe in PROBES.items():
        rewritten = prepare_for(accelerator, original)
        assert_same_outputs(rewritten, original, x)
        path = tmp_path / f"{accelerator}.onnx"
        onnx.save(rewritten, str(path))
        report = probe(path)
        assert report.whole and report.nodes_on_accelerator == report.nodes_total, report.summary()
