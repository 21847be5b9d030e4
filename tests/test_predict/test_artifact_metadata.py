"""Reading the metadata of every artifact kind: embedded first, then the ``<artifact>.json`` sidecar."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lsnet_deploy.artifact_metadata import (read_artifact_metadata, read_sidecar_metadata,
                                            register_metadata_reader, sidecar_path)
from lsnet_deploy.errors import LsnetDeployError, UsageError

from .conftest import LABELS


def _raw(path):
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_onnx_metadata_props(tiny_onnx):
    meta = read_artifact_metadata(tiny_onnx)
    assert meta.found and meta.source == "onnx metadata"
    assert meta.fields["input_size"] == [128, 128] and meta.fields["labels"] == LABELS
    assert meta.fields["crop_pct"] == 0.9 and meta.fields["interpolation"] == "bicubic"
    assert meta.raw == _raw(tiny_onnx)


def test_ort_format_keeps_the_metadata(tiny_ort_batch2):
    meta = read_artifact_metadata(tiny_ort_batch2)
    assert meta.found and meta.source == "ort metadata"
    assert meta.fields["batch"] == 2 and meta.fields["mean"] == [0.485, 0.456, 0.406]


def test_pte_metadata(tiny_pte):
    meta = read_artifact_metadata(tiny_pte)
    assert meta.found and meta.fields["input_size"] == [128, 128] and meta.fields["num_classes"] == 10
    assert meta.source in ("pte metadata", f"sidecar {tiny_pte.name}.json")


def test_sidecar_of_a_file_without_embedded_metadata(foreign_onnx, tiny_onnx, tmp_path):
    model = tmp_path / "plain.onnx"
    shutil.copy(foreign_onnx, model)
    assert not read_artifact_metadata(model).found and read_artifact_metadata(model).source is None
    sidecar_path(model).write_text(json.dumps(_raw(tiny_onnx)))
    meta = read_artifact_metadata(model)
    assert meta.found and meta.source == "sidecar plain.onnx.json" and meta.fields["labels"] == LABELS


def test_embedded_metadata_wins_over_a_sidecar(tiny_onnx, tmp_path):
    model = tmp_path / "both.onnx"
    shutil.copy(tiny_onnx, model)
    sidecar_path(model).write_text(json.dumps({"input_size": [64, 64], "mean": [0, 0, 0], "std": [1, 1, 1]}))
    assert read_artifact_metadata(model).fields["input_size"] == [128, 128]


def test_tensorrt_engine_sidecar_with_a_wrapper_and_plain_values(tmp_path):
    engine = tmp_path / "lsnet_t.engine"
    engine.write_bytes(b"serialized engine bytes")  # reading metadata needs no TensorRT
    metadata = {"input_size": "[224, 224]", "mean": "[0.485, 0.456, 0.406]", "std": "[0.229, 0.224, 0.225]",
                "input_name": "input"}
    sidecar_path(engine).write_text(json.dumps({"format": "tensorrt", "engine": engine.name, "metadata": metadata}))
    meta = read_artifact_metadata(engine)
    assert meta.found and meta.fields["input_size"] == [224, 224] and meta.fields["input_name"] == "input"
    # plain JSON values (not JSON-in-strings) are accepted too
    sidecar_path(engine).write_text(json.dumps({"input_size": [224, 224], "crop_pct": 0.9, "labels": ["a", "b"]}))
    assert read_artifact_metadata(engine).fields["labels"] == ["a", "b"]


def test_a_broken_sidecar_is_reported(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"...")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(LsnetDeployError, match="x.engine.json is not a JSON object"):
        read_sidecar_metadata(engine)
    with pytest.raises(UsageError, match="no such file"):
        read_artifact_metadata(tmp_path / "missing.engine")


def test_corrupt_onnx_is_reported(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(LsnetDeployError, match="broken.onnx is not a readable ONNX file"):
        read_artifact_metadata(broken)


def test_pte_without_embedded_metadata_uses_its_sidecar(tmp_path):
    pytest.importorskip("executorch.runtime", reason="executorch is not installed")
    from executorch.exir import to_edge

    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    program = to_edge(torch.export.export(Mean(), (torch.zeros(1, 3, 8, 8),))).to_executorch()
    pte = tmp_path / "plain.pte"
    pte.write_bytes(program.buffer)
    assert not read_artifact_metadata(pte).found
    sidecar_path(pte).write_text(json.dumps({"input_size": "[8, 8]", "mean": "[0.5, 0.5, 0.5]"}))
    meta = read_artifact_metadata(pte)
    assert meta.source == "sidecar plain.pte.json" and meta.fields["input_size"] == [8, 8]


def test_core_ml_user_defined_metadata(tmp_path):
    ct = pytest.importorskip("coremltools", reason="coremltools is not installed")

    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    traced = torch.jit.trace(Mean().eval(), torch.zeros(1, 3, 8, 8))
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="input", shape=(1, 3, 8, 8))], convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS16)
    mlmodel.user_defined_metadata.update({"input_size": "[8, 8]", "labels": json.dumps(["cat", "dog", "owl"])})
    package = tmp_path / "mean.mlpackage"
    mlmodel.save(str(package))
    meta = read_artifact_metadata(package)  # read from the spec: no macOS needed
    assert meta.found and meta.source == "mlpackage metadata"
    assert meta.fields["input_size"] == [8, 8] and meta.fields["labels"] == ["cat", "dog", "owl"]


def test_readers_can_be_plugged_in(tmp_path):
    calls = []

    def reader(path):
        calls.append(path)
        return {"input_size": "[32, 48]"}

    artifact = tmp_path / "model.custom"
    artifact.write_bytes(b"")
    register_metadata_reader(".custom", reader)
    meta = read_artifact_metadata(artifact)
    assert calls == [artifact] and meta.fields["input_size"] == [32, 48] and meta.source == "custom metadata"
