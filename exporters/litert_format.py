"""``--format litert``: a LiteRT (TensorFlow Lite) flatbuffer (``.tflite``) for Android and embedded Linux.

Steps: the model is rewritten into the forms XNNPACK runs well (``xnnpack_forms``: LiteRT's CPU
path is XNNPACK too), converted with ``litert_torch.convert`` and written out. The flatbuffer is then
edited with the TFLite schema's object API: the metadata map goes into the model's ``metadata`` vector as
one entry, ``lsnet_metadata``, whose buffer is the map as one JSON object; ``--half`` stores every float32
constant as float16 behind a ``DEQUANTIZE`` (LiteRT's own float16 scheme: inputs, outputs and compute stay
float32: XNNPACK's default delegate dequantizes the weights and computes in float32 on ARM phones too, as
measured on an emulated Cortex-A76 (docs/arm.md); fp16 arithmetic needs the app to set XNNPACK's FORCE_FP16,
with which LSNet's attention (a BATCH_MATMUL of two activations) does not load).

``--int8 --calib DIR`` quantizes with PT2E and litert-torch's quantizer before conversion (int8
activations per tensor, int8 weights per channel, percentile ranges calibrated on the images preprocessed as the
metadata prescribes; GroupNorm and the modules in ``keep_float`` stay float), converts with its
``quant_config``, then gives the flatbuffer float32 input and output (a ``QUANTIZE`` and a ``DEQUANTIZE``
at the edges) so apps feed the same tensors as for float32. ai-edge-quantizer's ``static_wi8_ai8`` on the
float32 flatbuffer was measured too and ran slower (docs/formats_litert.md, ``benchmarks/bench_litert.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from ..atomic import write_file
from ..errors import ExportError, first_line, require
from ..metadata_codec import encode_metadata_map
from ..quiet import native_stderr_captured, silenced
from ..runtimes.litert_runner import LITERT, METADATA_NAME, LiteRTRunner, tflite_schema
from .context import ExportContext, Written
from .exporter import Exporter
from .options import ExportOptions
from .registry import register_exporter
from .calibration import BATCH_PERCENTILE_METHOD
from .xnnpack_forms import xnnpack_friendly
from .pt2e_int8 import (annotate_adds, multiplies_activations, percentile_activations, propagate_shared_quantization,
                        quantize_checked, reads_activation_product, stays_float)


def convert_to_tflite(model, example, path: Path, quant_config=None) -> None:
    """``litert_torch.convert`` of ``model`` on ``example``, written to ``path``.

    Args:
        quant_config: litert-torch's ``QuantConfig`` when ``model`` is a PT2E-converted graph.

    Raises:
        ExportError: the conversion failed (first line of the cause kept).
    """
    # TensorFlow (imported by litert_torch) and MLIR log from C++ to stderr: oneDNN notices, quantizer
    # diagnostics. The export's own one-line error says what failed.
    with native_stderr_captured(replay_on_failure=False) as native, silenced() as log:
        litert_torch = require("litert_torch", LiteRTExporter.extra, "to convert to LiteRT")
        try:
            # a PT2E graph refuses eval() (it is in eval form already)
            module = model if quant_config is not None else model.eval()
            # the flatbuffer as bytes, written below from Python: LiteRTModel.export() writes through LLVM,
            # which on a full disk prints "IO failure on output stream" and calls exit(1)
            content = litert_torch.convert(module, (example,), quant_config=quant_config).model_content()
        except Exception as exc:
            # MLIR reports the failing operation from C++: its last error line is often the only real cause
            errors = [line.strip() for line in native().splitlines() if "error" in line.lower()]
            message = first_line(exc, log.getvalue().strip()[-300:])
            if errors and errors[-1] not in message:
                message += f" (converter: {errors[-1][-200:]})"
            raise ExportError(f"litert_torch.convert failed: {message}") from exc
    write_file(path, content)  # a full disk: OutputWriteError naming the cause; the staged file is removed


#: what the ``int8_calibration`` metadata says about the quantization
INT8_SCHEME = {"quantizer": "litert-torch PT2EQuantizer", "activations": "int8 affine per tensor",
               "weights": "int8 symmetric per channel",
               "float_ops": "GroupNorm (accuracy), attention's products of two activations (XNNPACK)",
               "input_output": "float32"}


def litert_quantizer(keep_float=()):
    """litert-torch's PT2E quantizer (int8 activations per tensor with percentile observers, int8 weights per
    channel) with GroupNorm (as for ExecuTorch, ``pt2e_int8``) and the modules ``keep_float`` left float.

    Its own module filters match neither the module types nor the names torch.export records in this
    torch (they expect the older capture API's), so the exclusion is one filter on the global annotation.
    """
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.pt2e_quantizer_utils import _is_share_obs_or_fq_op

    kept_float = stays_float(keep_float)

    def is_float(node):
        # XNNPACK's delegate takes no int8 BATCH_MATMUL of two activations: each one left in int8 ran outside
        # it and split the graph into one more delegate partition (6 for LSNet-T instead of 1). The add that
        # reads the product (attention's bias) stays float too: the converter makes a product int8 whenever
        # its output is quantized again.
        return kept_float(node) or multiplies_activations(node) or reads_activation_product(node)

    class LSNetPT2EQuantizer(PT2EQuantizer):
        def annotate(self, model):
            model = self._annotate_all_static_patterns(model, self.global_config, lambda node: not is_float(node))
            annotate_adds(model, self.global_config, is_float)
            # its own propagation (views, pooling...) would reach into the float modules
            propagate_shared_quantization(model, _is_share_obs_or_fq_op, is_float)
            return model

    return LSNetPT2EQuantizer().set_global(
        percentile_activations(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)))


def convert_int8(model, example, path: Path, context: ExportContext) -> dict:
    """PT2E int8 of ``model`` (litert-torch's quantizer, calibrated on the export's images, ``keep_float``
    left float), converted to ``path``.

    Returns:
        Details (int8 operator count in the converted PyTorch graph).

    Raises:
        ExportError: quantization or conversion failed, or a kept-float module came out int8.
    """
    from litert_torch.quantize.quant_config import QuantConfig

    images = context.calibration.images(dict(context.metadata))
    context.progress(f"calibrating int8 on {len(images)} images (PT2E, litert-torch's quantizer)")
    quantizer = litert_quantizer(context.keep_float)
    converted, int8_ops = quantize_checked(model, example, images, quantizer, context.keeps_float,
                                           fold_quantize=False)
    context.progress("converting with litert_torch (int8)")
    convert_to_tflite(converted, example, path, QuantConfig(pt2e_quantizer=quantizer))
    return {"int8_ops": int8_ops}


def xnnpack_delegation(path: Path) -> dict:
    """``LiteRTRunner.delegation`` of the written file: one XNNPACK partition with nothing outside it is
    the fast case (the interpreter ships in ai-edge-litert, which writing the metadata needs anyway)."""
    with LiteRTRunner(path, threads=1) as runner:
        return runner.delegation()


def _opcode(schema, model, builtin: int, version: int) -> int:
    """Index of ``builtin``'s operator code in ``model``, added if absent."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def float32_io(schema, model) -> int:
    """Give int8 graph inputs and outputs float32 twins: a ``QUANTIZE`` after each input and a
    ``DEQUANTIZE`` before each output (litert-torch's PT2E conversion folds them away, leaving int8 I/O;
    apps feed float32 tensors normalized as the metadata says, whatever the precision). Returns the count."""
    int8 = schema.TensorType.INT8
    quantize = _opcode(schema, model, schema.BuiltinOperator.QUANTIZE, 2)
    dequantize = _opcode(schema, model, schema.BuiltinOperator.DEQUANTIZE, 2)
    changed = 0
    for graph_index, graph in enumerate(model.subgraphs):
        twins: dict[int, int] = {}
        before, after = [], []
        for edge, ends in ((graph.inputs, before), (graph.outputs, after)):
            for pos, index in enumerate(list(edge)):
                tensor = graph.tensors[index]
                if tensor.type != int8:
                    continue
                twin = schema.TensorT()
                twin.shape, twin.shapeSignature, twin.name = tensor.shape, tensor.shapeSignature, tensor.name
                twin.type, twin.buffer = schema.TensorType.FLOAT32, 0
                tensor.name = (tensor.name or b"") + b"_int8"
                graph.tensors.append(twin)
                twins[index] = edge[pos] = len(graph.tensors) - 1
                op = schema.OperatorT()
                if ends is before:
                    op.opcodeIndex, op.inputs, op.outputs = quantize, [twins[index]], [index]
                else:
                    op.opcodeIndex, op.inputs, op.outputs = dequantize, [index], [twins[index]]
                ends.append(op)
                changed += 1
        graph.operators = before + list(graph.operators) + after
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == graph_index:
                for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                    entry.tensorIndex = twins.get(entry.tensorIndex, entry.tensorIndex)
    return changed


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


def rewrite_flatbuffer(path: Path, metadata: Mapping[str, str], half: bool, int8: bool = False) -> dict:
    """Embed ``metadata`` as the ``lsnet_metadata`` entry (and store constants as float16 when ``half``;
    give an int8 model float32 inputs and outputs when ``int8``).

    Returns:
        What changed, for the export's details.
    """
    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    details = {}
    if half:
        details["float16_constants"] = float16_constants(schema, model)
    if int8:
        details["float32_io_twins"] = float32_io(schema, model)
    entry_buffer = schema.BufferT()
    entry_buffer.data = np.frombuffer(encode_metadata_map(metadata).encode(), np.uint8)
    model.buffers.append(entry_buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    path.write_bytes(_pack(schema, model))
    return details


@register_exporter
class LiteRTExporter(Exporter):
    """LiteRT ``.tflite`` through litert-torch, run with XNNPACK."""

    spec = LITERT
    no_dynamic_hw_reason = "LiteRT interpreters are planned for one input size"
    int8_keep_float = True
    #: fastest form in the LiteRT sweep of docs/formats_litert.md (with or without the rewrites: equal)
    ska_auto = "onehot_conv"
    #: forms litert-torch 0.10 cannot convert: a broadcast over more than 8 dimensions (reference) and
    #: batch matmuls with broadcast batch dimensions (banded_matmul and both hybrids)
    rejected_ska = frozenset({"triton", "reference", "banded_matmul", "hybrid", "hybrid_taps"})
    no_dynamic_reason = "litert-torch converts one static shape; export one .tflite per batch size with --batch N"

    def check_environment(self, options: ExportOptions) -> None:
        with native_stderr_captured(replay_on_failure=False):  # TensorFlow's import notices (oneDNN...)
            require("litert_torch", self.extra, "to convert to LiteRT")
        require("ai_edge_litert.schema_py_generated", self.extra, "to write .tflite metadata")
        if options.int8:
            require("torchao.quantization.pt2e.quantize_pt2e", self.extra, "for int8 (PT2E quantization)")
        if options.validate:
            require("ai_edge_litert.interpreter", self.extra, "to validate .tflite models")

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        context.progress(f"rewriting for XNNPACK (SKA {context.ska_form})")
        converted = xnnpack_friendly(model, context.ska_form)
        context.progress("converting with litert_torch")
        metadata, added = dict(context.metadata), {}
        int8_details = {}
        if context.options.int8:
            int8_details = convert_int8(converted, example, path, context)
            added["int8_calibration"] = json.dumps(context.int8_record(BATCH_PERCENTILE_METHOD, **INT8_SCHEME))
            metadata.update(added)
        else:
            convert_to_tflite(converted, example, path)
        context.progress("embedding metadata" + (" and storing weights as float16" if context.options.half else ""))
        try:
            details = {**rewrite_flatbuffer(path, metadata, context.options.half, context.options.int8),
                       **int8_details}
        except ImportError:
            raise
        except Exception as exc:
            raise ExportError(f"rewriting the .tflite flatbuffer failed: {first_line(exc)}") from exc
        return Written(details={**details, **xnnpack_delegation(path), "delegate": "xnnpack",
                                "metadata_entry": METADATA_NAME}, metadata=added)
