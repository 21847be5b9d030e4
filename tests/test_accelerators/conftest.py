"""Artifacts of the tiny conformance model shared by the accelerator tests (one export each per worker)."""

from __future__ import annotations

import pytest

from ..conftest import conformance_case

TINY = conformance_case("tiny")[0]


def export_tiny(directory, fmt: str, name: str, **options):
    """Export the tiny conformance model to ``directory / name``; returns the export result."""
    from lsnet_deploy.exporters import ExportOptions, export_model
    from lsnet_deploy.models import load_model

    return export_model(load_model(TINY), fmt, directory / name, ExportOptions(**options))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """The tiny model as ONNX for ONNX Runtime's CPU provider (SKA tap_slices, unvalidated: the ONNX tests
    validate it)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"lsnet-deploy[onnx]\")")
    return export_tiny(tmp_path_factory.mktemp("onnx"), "onnx", "tiny.onnx", ska="tap_slices", validate=False).path
