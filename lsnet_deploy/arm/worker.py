"""The emulated ARM worker: one artifact loaded in an aarch64 runtime, answering requests over pipes.

This file runs in two Pythons. Under ``qemu-aarch64`` it is the worker program itself
(``python3.11 worker.py``): it loads one artifact with the aarch64 build of its runtime and serves
``infer`` requests until its stdin closes, so the emulated interpreter starts once per runner, not once
per picture, and it ends with its parent (a dead parent closes the pipe). On the host, ``client.py``
imports the wire format from here, so both ends share one definition. It therefore imports nothing but
the standard library and NumPy, and nothing from ``lsnet_deploy``.

Wire format, both directions: a message is a header, then the arrays it announces.

- header: 4-byte big-endian length, then that many bytes of a UTF-8 JSON object; ``"arrays": N``
  says how many arrays follow (0 when absent);
- each array: 8-byte big-endian length, then the array in NumPy's ``.npy`` format (no pickles).

Requests: ``{"op": "load", "runtime": "ort" | "litert" | "litert-fp16" | "executorch", "path": ...,
"options": {...}}``,
``{"op": "infer", "arrays": 1}`` with the input batch, ``{"op": "close"}``. Every reply has ``"ok"``;
a failure is ``{"ok": false, "error": "<one line>"}`` and leaves the worker serving.
"""

from __future__ import annotations

import io
import json
import os
import platform
import struct
import sys
from typing import BinaryIO

import numpy as np

HEADER_LENGTH = struct.Struct(">I")
ARRAY_LENGTH = struct.Struct(">Q")
#: a header longer than this is not ours (a stray print on the protocol stream, say)
MAX_HEADER_BYTES = 1 << 20
#: XNNPACK delegate flags (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h): signed and unsigned
#: 8-bit kernels, as the default delegate has them, plus FORCE_FP16 (float32 operators computed in fp16)
XNNPACK_FLAG_QS8, XNNPACK_FLAG_QU8, XNNPACK_FLAG_FORCE_FP16 = 0x1, 0x2, 0x4


class ProtocolError(Exception):
    """The stream broke off or carried something that is not a message of this protocol."""


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"stream closed {count - left} bytes into a {count}-byte read")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_message(stream: BinaryIO, header: dict, arrays=()) -> None:
    """Send one message: a JSON header and the arrays it announces.

    Args:
        stream: a binary stream (a pipe).
        header: JSON-serializable fields; ``arrays`` is set here from the arrays given.
        arrays: NumPy arrays (object arrays are refused, so no pickle ever crosses).
    """
    payloads = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        payloads.append(buffer.getvalue())
    encoded = json.dumps({**header, "arrays": len(payloads)}).encode("utf-8")
    parts = [HEADER_LENGTH.pack(len(encoded)), encoded]
    for payload in payloads:
        parts += [ARRAY_LENGTH.pack(len(payload)), payload]
    stream.write(b"".join(parts))
    stream.flush()


def read_message(stream: BinaryIO) -> tuple[dict, list[np.ndarray]] | None:
    """Receive one message.

    Returns:
        (header, arrays), or None when the stream ended cleanly before a message began.

    Raises:
        ProtocolError: the stream ended inside a message, or the bytes are not a message.
    """
    first = stream.read(HEADER_LENGTH.size)
    if not first:
        return None
    if len(first) < HEADER_LENGTH.size:
        first += _read_exactly(stream, HEADER_LENGTH.size - len(first))
    (length,) = HEADER_LENGTH.unpack(first)
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"a {length}-byte header is not a message of this protocol (stray output on the pipe?)")
    try:
        header = json.loads(_read_exactly(stream, length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the header is not a JSON object")
    arrays = []
    for _ in range(int(header.get("arrays", 0))):
        (size,) = ARRAY_LENGTH.unpack(_read_exactly(stream, ARRAY_LENGTH.size))
        try:
            arrays.append(np.load(io.BytesIO(_read_exactly(stream, size)), allow_pickle=False))
        except ValueError as exc:
            raise ProtocolError(f"an array is not in .npy format: {exc}") from None
    return header, arrays


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its first line, and its last when LiteRT puts the cause there."""
    lines = [line.strip().lstrip("└ ") for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
    return f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------- the runtimes (ARM side)


class OrtModel:
    """ONNX Runtime's CPU execution provider (MLAS kernels), set up as the x86 runner sets it up."""

    def __init__(self, path: str, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        dtypes = {"tensor(float)": "float32", "tensor(float16)": "float16"}
        self.input = [[d if isinstance(d, int) and d > 0 else None for d in first.shape],
                      dtypes.get(first.type, "float32")]
        self.info = {"runtime_version": ort.__version__, "provider": "CPUExecutionProvider", "threads": threads}

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out) for out in self.session.run(None, {self.input_name: x})]


class LiteRTInterpreterModel:
    """LiteRT's interpreter with its default XNNPACK delegate (as the x86 runner and most apps run it)."""

    def __init__(self, path: str, threads: int | None = None):
        from ai_edge_litert import interpreter as litert

        self.interpreter = litert.Interpreter(model_path=path, num_threads=threads,
                                              experimental_op_resolver_type=litert.OpResolverType.AUTO)
        self.interpreter.allocate_tensors()
        self._details()
        self.info = {"runtime_version": _version("ai-edge-litert"), "api": "Interpreter",
                     "delegate": "xnnpack (default flags)", "threads": threads}

    def _details(self) -> None:
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_details = _ordered_outputs(self.interpreter.get_output_details())
        shape = self.input_detail.get("shape_signature", self.input_detail["shape"])
        self.input = [[int(d) if d > 0 else None for d in shape], np.dtype(self.input_detail["dtype"]).name]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=self.input_detail["dtype"])
        if tuple(x.shape) != tuple(self.input_detail["shape"]):
            self.interpreter.resize_tensor_input(self.input_detail["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._details()
        self.interpreter.set_tensor(self.input_detail["index"], x)
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(d["index"])) for d in self.output_details]


class LiteRTCompiledModel:
    """LiteRT's CompiledModel API on the CPU accelerator (XNNPACK) with explicit XNNPACK flags.

    ``force_fp16`` sets XNNPACK's FORCE_FP16 flag: float32 operators run in fp16 arithmetic, as an app asks
    for with ``CpuOptions.xnnpack_flags`` (Kotlin/C++ alike) on ARMv8.2+ cores. Without fp16 hardware
    XNNPACK refuses the flag, so this path only means something on ARM.
    """

    def __init__(self, path: str, threads: int | None = None, force_fp16: bool = True):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options

        flags = XNNPACK_FLAG_QS8 | XNNPACK_FLAG_QU8 | (XNNPACK_FLAG_FORCE_FP16 if force_fp16 else 0)
        options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                          cpu_options=CpuOptions(num_threads=threads or 0, xnnpack_flags=flags))
        self.model = CompiledModel.from_file(path, options=options)
        self.inputs = self.model.create_input_buffers(0)
        self.outputs = self.model.create_output_buffers(0)
        signature = self.model.get_signature_by_index(0)
        details = self.model.get_input_tensor_details(signature["key"])
        first = details[signature["inputs"][0]]
        self.input_shape = [int(d) for d in first["shape"]]
        self.input_dtype = np.dtype(first["dtype"]).name
        self.input = [self.input_shape, self.input_dtype]
        out_details = self.model.get_output_tensor_details(signature["key"])
        self.output_specs = [(out_details[name]["shape"], np.dtype(out_details[name]["dtype"]))
                             for name in signature["outputs"]]
        self.info = {"runtime_version": _version("ai-edge-litert"), "api": "CompiledModel",
                     "delegate": "xnnpack", "xnnpack_flags": flags, "force_fp16": force_fp16,
                     "threads": threads, "fully_accelerated": bool(self.model.is_fully_accelerated())}

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if list(x.shape) != self.input_shape:
            raise ValueError(f"this path runs the model's fixed input shape {self.input_shape}, got {list(x.shape)}")
        self.inputs[0].write(x)
        self.model.run_by_index(0, self.inputs, self.outputs)
        return [buffer.read(int(np.prod(shape)), dtype).reshape(shape)
                for buffer, (shape, dtype) in zip(self.outputs, self.output_specs)]


class ExecuTorchModel:
    """ExecuTorch's C++ runtime (XNNPACK delegate, optimized and quantized kernels) through the small C
    interface of ``pte_arm64.cpp`` (beside this file), built for aarch64 against the executorch wheel's libraries
    (its Python bindings need libtorch, whose aarch64 wheel on PyPI is a CUDA build). ``LSNET_PTE_ARM64``
    names the library."""

    MAX_RANK = 8
    ERROR_BYTES = 512

    def __init__(self, path: str, threads: int | None = None):
        import ctypes

        library = os.environ.get("LSNET_PTE_ARM64")
        if not library or not os.path.isfile(library):
            raise RuntimeError("the aarch64 ExecuTorch runner is not built: python -m lsnet_deploy.arm.setup "
                               "--with-executorch")
        self.ctypes = ctypes
        self.lib = ctypes.CDLL(library)
        self.lib.pte_load.restype = ctypes.c_void_p
        self.lib.pte_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        self.lib.pte_input.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int)]
        self.lib.pte_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self.lib.pte_output.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                        ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
        self.lib.pte_free.argtypes = [ctypes.c_void_p]
        self.lib.pte_set_threads.argtypes = [ctypes.c_int]
        self.lib.pte_set_threads(int(threads or 0))
        error = ctypes.create_string_buffer(self.ERROR_BYTES)
        self.handle = self.lib.pte_load(path.encode(), error, self.ERROR_BYTES)
        if not self.handle:
            raise RuntimeError(error.value.decode("utf-8", "replace"))
        sizes = (ctypes.c_int64 * self.MAX_RANK)()
        is_half = ctypes.c_int()
        rank = self.lib.pte_input(self.handle, sizes, ctypes.byref(is_half))
        self.input_shape = [int(sizes[i]) for i in range(rank)]
        self.input_dtype = np.float16 if is_half.value else np.float32
        self.input = [self.input_shape, np.dtype(self.input_dtype).name]
        # the runner sits in <cache>/executorch-<version>/lib/: the wheel's version, not installed here
        built_for = os.path.basename(os.path.dirname(os.path.dirname(library)))
        self.info = {"runtime_version": built_for.split("-", 1)[-1], "delegate": "xnnpack", "threads": threads,
                     "runner": "pte_arm64 (C++ runtime, no Python bindings)"}

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        ctypes = self.ctypes
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if list(x.shape) != self.input_shape:
            raise ValueError(f"the program takes input shape {self.input_shape}, got {list(x.shape)}")
        error = ctypes.create_string_buffer(self.ERROR_BYTES)
        count = self.lib.pte_run(self.handle, x.ctypes.data_as(ctypes.c_void_p), error, self.ERROR_BYTES)
        if count < 0:
            raise RuntimeError(error.value.decode("utf-8", "replace"))
        outputs = []
        for index in range(count):
            sizes = (ctypes.c_int64 * self.MAX_RANK)()
            rank = self.lib.pte_output(self.handle, index, sizes, None, 0)
            if rank < 0:
                raise RuntimeError(f"output {index} is not a float tensor")
            out = np.empty([int(sizes[i]) for i in range(rank)], np.float32)
            if self.lib.pte_output(self.handle, index, sizes,
                                   out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size) < 0:
                raise RuntimeError(f"output {index} could not be copied")
            outputs.append(out)
        return outputs


def _ordered_outputs(details: list[dict]) -> list[dict]:
    """Output details in the model's output order (litert-torch names them ``..._output_<i>_...``)."""
    import re

    def position(entry):
        found = re.search(r"output_(\d+)", entry[1].get("name", ""))
        return (int(found.group(1)) if found else entry[0], entry[0])

    return [d for _, d in sorted(enumerate(details), key=position)]


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _load(runtime: str, path: str, options: dict):
    threads = options.get("threads")
    if runtime == "ort":
        return OrtModel(path, threads)
    if runtime == "litert":
        return LiteRTInterpreterModel(path, threads)
    if runtime == "litert-fp16":
        return LiteRTCompiledModel(path, threads, force_fp16=True)
    if runtime == "executorch":
        return ExecuTorchModel(path, threads)
    raise ValueError(f"the worker runs no runtime {runtime!r}")


def machine() -> dict:
    """What the worker runs on: the architecture and the CPU features the emulator reports."""
    features = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("Features"):
                    features = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"machine": platform.machine(), "python": platform.python_version(), "cpu_features": features}


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the request stream closes or a ``close`` arrives."""
    model = None
    while True:
        message = read_message(requests)
        if message is None:
            return
        header, arrays = message
        op = header.get("op")
        try:
            if op == "close":
                write_message(replies, {"ok": True})
                return
            if op == "load":
                model = None  # a failed load leaves no model (not the previous one) to answer infer
                model = _load(header["runtime"], header["path"], header.get("options") or {})
                write_message(replies, {"ok": True, "info": {**model.info, **machine()}, "input": model.input})
            elif op == "infer":
                if model is None:
                    raise RuntimeError("no model loaded")
                if len(arrays) != 1:
                    raise ValueError(f"infer takes one array, got {len(arrays)}")
                write_message(replies, {"ok": True}, model.run(arrays[0]))
            elif op == "ping":
                write_message(replies, {"ok": True, "info": machine()})
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # any runtime failure goes back as one line; the worker keeps serving
            write_message(replies, {"ok": False, "error": _one_line(exc)})


def main() -> None:
    """Serve on stdin/stdout; whatever native code prints to stdout goes to stderr instead."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
