"""int8 for the HTP: the Q/DQ layout of ONNX Runtime's QNN helpers, and what the mixed-precision search's
``keep_float`` means there (uint16 activations, not float), on the conformance ``tiny`` model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lsnet_deploy.exporters import ExportOptions, export_model, int8_search
from lsnet_deploy.models import load_model

from ..conftest import CIFAR_CALIB, conformance_case

pytest.importorskip("onnxruntime_qnn", reason="onnxruntime-qnn (the qnn extra) is not installed")

KEPT = "blocks4"  # the last stage: attention blocks


@pytest.mark.slow
def test_layers_kept_out_of_8_bits_get_16_bit_activations_on_the_htp(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto

    def search(model, context, attempt, can_keep_float):  # as if all-int8 had missed the gate
        kept = dataclasses.replace(context, keep_float=frozenset({KEPT}))
        return int8_search.Int8Outcome(attempt(kept), kept, None)

    monkeypatch.setattr(int8_search, "search", search)
    result = export_model(load_model(conformance_case("tiny")[0]), "onnx", tmp_path / "tiny.onnx",
                          ExportOptions(accelerator="htp", int8=True, calib=CIFAR_CALIB))
    assert result.details["int8_float_layers"] == [KEPT] and result.details["int8_kept_as"] == "uint16 activations"
    assert result.details["placement"]["whole"]  # Q/DQ at the input and output included
    assert result.details["accelerator_validation"]["passed"] and result.validation.passed
    calibration = json.loads(result.metadata["int8_calibration"])
    assert calibration["placement"] == "qnn" and calibration["wide_nodes"] > 10

    graph = onnx.load(str(result.path)).graph
    zero_points = {init.name: init.data_type for init in graph.initializer}
    quantize = [node for node in graph.node if node.op_type == "QuantizeLinear"]
    types = {zero_points.get(node.input[2]) for node in quantize if len(node.input) > 2}
    assert TensorProto.UINT16 in types and TensorProto.UINT8 in types
    weights = [node for node in graph.node if node.op_type == "DequantizeLinear"
               and zero_points.get(node.input[2] if len(node.input) > 2 else "") == TensorProto.INT8]
    assert weights  # int8 symmetric weights
