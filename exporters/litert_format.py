"""``--format litert``: a LiteRT (TensorFlow Lite) flatbuffer (``.tflite``) for Android and embedded Linux.

Steps: the model is rewritten into the forms XNNPACK runs well (``xnnpack_forms``: LiteRT's CPU
path is XNNPACK too), converted with ``litert_torch.convert`` and written out. The flatbuffer is then
edited with the TFLite schema's object API: the metadata map goes into the model's ``metadata`` vector as
one entry, ``lsnet_metadata``, whose buffer is the map as one JSON object; ``--half`` stores every float32
constant as float16 behind a ``DEQUANTIZE`` (LiteRT's own float16 scheme: inputs, outputs and compute stay
float32 on CPUs without float16 arithmetic, and XNNPACK runs float16 where the phone has it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ExportError, first_line, require
from ..quiet import silenced
from ..runtimes.litert_runner import METADATA_NAME, tflite_schema
from .base import ExportContext, ExportOptions, Exporter, Written, register_exporter
from .xnnpack_forms import xnnpack_friendly


def convert_to_tflite(model, example, path: Path) -> None:
    """``litert_torch.convert`` of ``model`` on ``example``, written to ``path``.

    Raises:
        ExportError: the conversion failed (first line of the cause kept).
    """
    litert_torch = require("litert_torch", LiteRTExporter.extra, "to convert to LiteRT")
    with silenced() as log:
        try:
            litert_torch.convert(model.eval(), (example,)).export(str(path))
        except Exception as exc:
            raise ExportError(f"litert_torch.convert failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc


def _pack(schema, model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def float16_constants(schema, model) -> int:
    """Store each float32 constant tensor as float16, dequantized to float32 by a ``DEQUANTIZE`` at the
    start of its subgraph (what the TFLite converter's float16 quantization writes). Returns the count."""
    opcode = next((i for i, c in enumerate(model.operatorCodes)
                   if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE), None)
    if opcode is None:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 2  # float16 -> float32 needs version 2 of the kernel
        model.operatorCodes.append(code)
        opcode = len(model.operatorCodes) - 1
    converted = 0
    halves: dict[int, int] = {}  # float32 buffer -> its float16 copy (the converter may share constants)
    for graph in model.subgraphs:
        dequantize = []
        for index, tensor in enumerate(list(graph.tensors)):
            source = tensor.buffer
            data = model.buffers[source].data if source else None
            if tensor.type != schema.TensorType.FLOAT32 or (source not in halves and (data is None or len(data) == 0)):
                continue
            if source not in halves:
                stored = schema.BufferT()
                stored.data = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32).astype(np.float16).view(np.uint8)
                model.buffers.append(stored)
                halves[source] = len(model.buffers) - 1
            half = schema.TensorT()
            half.shape, half.name, half.type = tensor.shape, (tensor.name or b"") + b"_fp16", schema.TensorType.FLOAT16
            half.buffer = halves[source]
            graph.tensors.append(half)
            tensor.buffer = 0  # the float32 tensor becomes the DEQUANTIZE's output (buffer 0 is the empty one)
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = opcode, [len(graph.tensors) - 1], [index]
            dequantize.append(op)
            converted += 1
        graph.operators = dequantize + list(graph.operators)
    for source in halves:
        model.buffers[source] = schema.BufferT()  # the float32 data is gone from the file
    return converted


def rewrite_flatbuffer(path: Path, metadata: Mapping[str, str], half: bool) -> dict:
    """Embed ``metadata`` as the ``lsnet_metadata`` entry (and store constants as float16 when ``half``).

    Returns:
        What changed, for the export's details.
    """
    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    details = {}
    if half:
        details["float16_constants"] = float16_constants(schema, model)
    entry_buffer = schema.BufferT()
    entry_buffer.data = np.frombuffer(json.dumps(dict(metadata)).encode(), np.uint8)
    model.buffers.append(entry_buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    path.write_bytes(_pack(schema, model))
    return details


@register_exporter
class LiteRTExporter(Exporter):
    """LiteRT ``.tflite`` through litert-torch, run with XNNPACK."""

    name = "litert"
    aliases = ("tflite", "tfl")
    suffix = ".tflite"
    runtime = "litert"
    extra = "litert"
    description = "LiteRT / TensorFlow Lite flatbuffer via litert-torch (Android apps, embedded Linux)"
    supported_options = frozenset({"half"})
    #: fastest form in the LiteRT sweep of docs/formats_litert.md (with or without the rewrites: equal)
    ska_auto = "onehot_conv"
    #: forms litert-torch 0.10 cannot convert: a broadcast over more than 8 dimensions (reference) and
    #: batch matmuls with broadcast batch dimensions (banded_matmul, hybrid)
    rejected_ska = frozenset({"triton", "reference", "banded_matmul", "hybrid"})
    no_dynamic_reason = "litert-torch converts one static shape; export one .tflite per batch size with --batch N"

    def check_environment(self, options: ExportOptions) -> None:
        require("litert_torch", self.extra, "to convert to LiteRT")
        require("ai_edge_litert.schema_py_generated", self.extra, "to write .tflite metadata")
        if options.validate:
            require("ai_edge_litert.interpreter", self.extra, "to validate .tflite models")

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        context.progress(f"rewriting for XNNPACK (SKA {context.ska_form})")
        converted = xnnpack_friendly(model, context.ska_form)
        context.progress("converting with litert_torch")
        convert_to_tflite(converted, example, path)
        context.progress("embedding metadata" + (" and storing weights as float16" if context.options.half else ""))
        try:
            details = rewrite_flatbuffer(path, context.metadata, context.options.half)
        except ImportError:
            raise
        except Exception as exc:
            raise ExportError(f"rewriting the .tflite flatbuffer failed: {first_line(exc)}") from exc
        return Written(details={**details, "delegate": "xnnpack", "metadata_entry": METADATA_NAME})
