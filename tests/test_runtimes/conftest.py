"""Fixtures of the runtime tests: the tiny model's ONNX and ``.pte`` artifacts, shared with the predict tests."""

from ..test_predict.conftest import artifacts, tiny_model, tiny_onnx, tiny_pte  # noqa: F401  (fixtures)
