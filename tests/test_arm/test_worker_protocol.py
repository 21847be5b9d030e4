"""The ARM worker's wire format and request loop, with the host's Python as the worker (no emulator).

The same ``worker.py`` runs under qemu in ``test_arm_runtimes.py``; here it serves an ONNX model through
the host's ONNX Runtime, so the protocol, the error replies and the worker's lifetime are checked in
every run, emulator or not.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lsnet_deploy.arm.client import WORKER_SCRIPT, ArmWorker
from lsnet_deploy.arm.worker import ProtocolError, read_message, write_message
from lsnet_deploy.errors import RuntimeUnavailableError

HOST_WORKER = [sys.executable, str(WORKER_SCRIPT)]


def test_message_round_trip_keeps_header_dtypes_and_shapes():
    stream = io.BytesIO()
    arrays = [np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.array([1, -2], np.int8),
              np.zeros((0, 5), np.float16), np.asfortranarray(np.ones((3, 2), np.float64))]
    write_message(stream, {"op": "infer", "note": "é"}, arrays)
    write_message(stream, {"op": "close"})
    stream.seek(0)
    header, back = read_message(stream)
    assert header == {"op": "infer", "note": "é", "arrays": 4}
    for sent, got in zip(arrays, back):
        assert got.dtype == sent.dtype and got.shape == sent.shape
        np.testing.assert_array_equal(got, sent)
    assert read_message(stream) == ({"op": "close", "arrays": 0}, [])
    assert read_message(stream) is None  # clean end between messages


def test_object_arrays_are_refused_so_no_pickle_crosses():
    with pytest.raises(ValueError):
        write_message(io.BytesIO(), {"op": "infer"}, [np.array([{"a": 1}], dtype=object)])


@pytest.mark.parametrize("cut", [2, 6, 30])
def test_a_stream_cut_inside_a_message_is_a_protocol_error(cut):
    stream = io.BytesIO()
    write_message(stream, {"op": "infer"}, [np.ones(4, np.float32)])
    with pytest.raises(ProtocolError, match="stream closed"):
        read_message(io.BytesIO(stream.getvalue()[:cut]))


def test_stray_text_on_the_pipe_is_not_taken_for_a_message():
    with pytest.raises(ProtocolError, match="not a message"):
        read_message(io.BytesIO(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"))


@pytest.fixture()
def tiny_onnx(tmp_path):
    """An ONNX model: y = mean over H, W of x (N, 3, 4, 4) -> (N, 3), with a second output 2*y."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
             helper.make_node("Add", ["y", "y"], ["y2"])]
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
                               helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 3])], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_worker_loads_infers_and_keeps_serving_after_an_error(tiny_onnx):
    pytest.importorskip("onnxruntime")
    worker = ArmWorker(command=HOST_WORKER)
    try:
        info = worker.load("ort", tiny_onnx, threads=1)
        assert info["provider"] == "CPUExecutionProvider" and info["threads"] == 1
        assert worker.input == [[None, 3, 4, 4], "float32"]
        x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
        y, y2 = worker.infer(x)
        np.testing.assert_allclose(y, x.mean(axis=(2, 3)), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(y2, 2 * y, rtol=0, atol=0)
        with pytest.raises(RuntimeUnavailableError, match="arm64 worker: .*"):
            worker.infer(np.ones((2, 5, 4, 4), np.float32))  # wrong channel count: the runtime's error
        with pytest.raises(RuntimeUnavailableError, match="no runtime 'coreml'"):
            worker.load("coreml", tiny_onnx)
        with pytest.raises(RuntimeUnavailableError, match="no model loaded"):  # not the one loaded before
            worker.infer(x)
        worker.load("ort", tiny_onnx, threads=1)  # still serving, artifact after artifact (a shared worker)
        np.testing.assert_allclose(worker.infer(x)[0], y, rtol=0, atol=0)
    finally:
        worker.close()
    assert not worker.alive


def test_a_missing_artifact_is_one_line_naming_it(tmp_path):
    worker = ArmWorker(command=HOST_WORKER)
    try:
        with pytest.raises(RuntimeUnavailableError) as caught:
            worker.load("ort", tmp_path / "absent.onnx")
        assert "absent.onnx" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        worker.close()


def test_a_worker_that_dies_is_reported_with_its_stderr():
    worker = ArmWorker(command=[sys.executable, "-c", "import sys; sys.stderr.write('boom: no libfoo\\n'); sys.exit(3)"])
    try:
        with pytest.raises(RuntimeUnavailableError, match=r"died \(exit status 3\): boom: no libfoo"):
            worker.request({"op": "ping"})
    finally:
        worker.close()


def test_the_worker_ends_with_its_parent():
    """A parent killed without any clean-up (os._exit) still takes its worker with it: the request pipe closes."""
    parent = ("import os, sys; from lsnet_deploy.arm.client import ArmWorker; "
              f"w = ArmWorker(command={HOST_WORKER!r}); w.request({{'op': 'ping'}}); "
              "print(w.process.pid, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it became our zombie (it is not our child: normally init reaps it)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    os.kill(pid, 9)
    pytest.fail(f"worker {pid} outlived its parent by 20 s")
