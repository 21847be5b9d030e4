"""Why LSNet-T's int8 failed on the HTP, and the fix: the QNN layout writes each GroupNorm's per-channel
scale and shift as a depthwise 1x1 Conv (``onnx_quantize.group_norm_affine_as_conv``).

``data/lsnet_t_blocks3_3_group_norm.onnx.fixture`` (ONNX) is the float subgraph of the trained LSNet-T
fixture where the emulated HTP first diverged from ONNX Runtime's CPU EP on the same int8 Q/DQ file
(``blocks3.3``'s SKA weights: ``Conv -> Reshape -> InstanceNormalization -> Reshape -> Mul(gamma) -> Add(beta)``);
``data/..._inputs.npz`` holds its input activations on 32 calibration and 8 test pictures (float16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsnet_deploy.exporters.onnx_quantize import group_norm_affine_as_conv

DATA = Path(__file__).parent / "data"
SUBGRAPH = DATA / "lsnet_t_blocks3_3_group_norm.onnx.fixture"  # .fixture: .gitignore ignores *.onnx
INPUTS = DATA / "lsnet_t_blocks3_3_group_norm_inputs.npz"
#: the subgraph's output channels and GroupNorm groups
CHANNELS, GROUPS = 288, 32
#: int8 on the HTP against the same Q/DQ file on the CPU EP: two uint8 steps of the output range (1/127 each;
#: measured 0.016 in every group after the rewrite, 0.65-0.83 in 8 of the 32 groups before it)
MAX_HTP_ERROR = 0.03
#: the float rewrite changes nothing but float32 rounding
MAX_REWRITE_ERROR = 1e-5


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    arrays = np.load(INPUTS)
    return arrays["calibration"].astype(np.float32), arrays["test"].astype(np.float32)


def _cpu(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def _rewritten(tmp_path: Path) -> tuple[Path, int]:
    import onnx

    model = onnx.load(str(SUBGRAPH))
    count = group_norm_affine_as_conv(model)
    onnx.checker.check_model(model)
    path = tmp_path / "rewritten.onnx"
    onnx.save(model, str(path))
    return path, count


def test_the_rewrite_turns_the_group_norm_affine_into_one_depthwise_conv(tmp_path):
    import onnx

    path, count = _rewritten(tmp_path)
    assert count == 1
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops == ["Conv", "Reshape", "InstanceNormalization", "Reshape", "Conv"], ops
    conv = onnx.load(str(path)).graph.node[-1]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}["group"] == CHANNELS
    _, test = _inputs()
    before, after = _cpu(SUBGRAPH, test), _cpu(path, test)
    assert np.abs(after - before).max() <= MAX_REWRITE_ERROR * np.abs(before).max()


def test_the_rewrite_leaves_other_muls_alone(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    # a per-channel Mul and Add that follow no GroupNorm (a squeeze-excite style scale): untouched
    scale = numpy_helper.from_array(np.ones((4, 1, 1), np.float32), "scale")
    shift = numpy_helper.from_array(np.zeros((4, 1, 1), np.float32), "shift")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "scale"], ["m"]),
         helper.make_node("Add", ["m", "shift"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])], [scale, shift])
    model = helper.make_model(graph)
    assert group_norm_affine_as_conv(model) == 0
    assert [node.op_type for node in model.graph.node] == ["Relu", "Mul", "Add"]


def _quantized_for_qnn(source: Path, target: Path) -> None:
    """The subgraph in the QNN Q/DQ layout (uint8 activations, int8 weights per channel), calibrated on
    the committed activations, as ``quantize_for_qnn`` does for a whole model."""
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    from lsnet_deploy.exporters.onnx_quantize import ImageCalibrationReader

    calibration, _ = _inputs()
    reader = ImageCalibrationReader("relu_10", calibration, 1)
    config = get_qnn_qdq_config(str(source), reader, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, per_channel=True)
    quantize(str(source), str(target), config)


def _htp(path: Path, x: np.ndarray) -> np.ndarray:
    from lsnet_deploy.accelerators.qnn_socs import get_soc
    from lsnet_deploy.runtimes.qnn_runner import qnn_session, qnn_session_options

    session = qnn_session(path, qnn_session_options(get_soc("SM8650")))
    return np.concatenate([session.run(None, {"relu_10": x[i:i + 1]})[0] for i in range(len(x))])


def _group_errors(int8_cpu: np.ndarray, int8_htp: np.ndarray) -> np.ndarray:
    """Per GroupNorm group, the largest |HTP - CPU| relative to the CPU output's largest magnitude."""
    scale = np.abs(int8_cpu).max()
    per_channel = np.abs(int8_htp - int8_cpu).max(axis=(0, 2, 3)) / scale
    return per_channel.reshape(GROUPS, CHANNELS // GROUPS).max(axis=1)


def test_the_htp_computes_the_rewritten_group_norm_like_the_cpu_and_not_the_original(tmp_path):
    pytest.importorskip("onnxruntime_qnn", reason="onnxruntime-qnn (the qnn extra) is not installed")
    _, test = _inputs()
    rewritten, _ = _rewritten(tmp_path)
    errors = {}
    for name, source in (("original", SUBGRAPH), ("rewritten", rewritten)):
        quantized = tmp_path / f"{name}.int8.onnx"
        _quantized_for_qnn(source, quantized)
        errors[name] = _group_errors(_cpu(quantized, test), _htp(quantized, test))
    assert errors["rewritten"].max() <= MAX_HTP_ERROR, errors["rewritten"]
    # the HTP compiler's fault this rewrite avoids (onnxruntime-qnn 2.7 = QNN 2.51): whole groups come out
    # wrong (zero) although the Mul's input is right. Should a newer QNN compute it right, this assertion
    # says so, and the rewrite can go.
    wrong_groups = int((errors["original"] > 0.5).sum())
    assert wrong_groups >= 4, f"the HTP now computes the original GroupNorm right: {errors['original']}"
