"""``--format coreml``: a Core ML ML program (``.mlpackage``) for iPhones, iPads and Macs.

What an app gets by default: an image input named ``image`` (RGB, the model's input size) that takes a
camera frame or ``CGImage`` as is, float16 compute, iOS 16 as the minimum deployment target, and a
``logits`` output; with ``--labels`` a classifier (``classLabel`` and ``classLabel_probs``, the outputs
Vision's ``VNClassificationObservation`` reads) that keeps ``logits`` beside them. ``--tensor-input``
gives a float32 NCHW ``input`` normalized as the metadata says (as the ONNX file takes it), ``--target``
another minimum OS (``iOS15``, ``macOS13``...), ``--float32`` float32 compute. ``--int8 --calib DIR``:
int8 weights and layer inputs (W8A8) from iOS 17 on, the default target under ``--int8``; int8 weights
only (W8) for an explicit iOS 16 target (``coreml_int8``; the metadata's ``int8_calibration`` says which).

Normalization inside the model. Core ML's image preprocessing is ``pixel * scale + bias`` with one
scalar scale, while LSNet's is per channel: ``(pixel / 255 - mean_c) / std_c``. The image input applies
``pixel / 255 - mean_c`` (scalar scale, per-channel bias), and ``1 / std_c`` is folded into the weights of
the first convolution. Only the scale is folded: the convolution's zero padding stays exactly zero under
a scale, whereas folding the mean too would pad with ``-mean / std`` instead of 0 and change every border
pixel. Models without a recognizable first convolution get a per-channel multiply instead.

Checks here. Core ML predicts only on macOS. Elsewhere the converted program itself is checked:
conversion succeeds, no tensor has rank above 5 (Core ML's limit) and the operators are reported
(``details["mil_ops"]``); numbers are compared with PyTorch on macOS only, through a tensor-input twin
of the same network for image-input models (an image input cannot take the float test tensors).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..version import __version__
from ..errors import ExportError, UsageError, first_line, require
from ..metadata import encode_metadata, output_names_of
from ..quiet import silenced
from ..runtimes.coreml_runner import COREML, CoreMLOptions
from .context import ExportContext, Written
from .exporter import Exporter
from .options import ExportOptions
from .registry import register_exporter
from .calibration import BATCH_PERCENTILE_METHOD
from .coreml_int8 import WEIGHT_QUANT_TARGET, describe, quantize_network, scheme_for, simulated_agreement

DEFAULT_TARGET = "iOS16"
#: the default under --int8: the first OS with quantize/dequantize ops, so activations are int8 too (W8A8)
DEFAULT_INT8_TARGET = "iOS17"
IMAGE_INPUT = "image"
TENSOR_INPUT = "input"
LOGITS = "logits"
OUTPUT_DESCRIPTIONS = {LOGITS: "class scores before softmax, float32",
                       "embedding": "pooled (projected) features the classifier reads, float32"}
PROBABILITIES = "probabilities"
MAX_RANK = 5
# ML programs exist from these OS versions on
_TARGET = re.compile(r"^(ios|macos|tvos|watchos)(\d+)$", re.IGNORECASE)
_MIN_ML_PROGRAM = {"ios": 15, "macos": 12, "tvos": 15, "watchos": 8}
_OS_SPELLING = {"ios": "iOS", "macos": "macOS", "tvos": "tvOS", "watchos": "watchOS"}


def parse_target(text: str | None) -> str:
    """``ios16`` -> ``iOS16``; None -> the default.

    Raises:
        UsageError: not an OS name and version, or older than ML programs (iOS 15, macOS 12).
    """
    if text is None:
        return DEFAULT_TARGET
    match = _TARGET.match(text.strip())
    if not match:
        raise UsageError(f"--target {text!r} is not a Core ML deployment target; use e.g. iOS16, iOS17, macOS13")
    system, version = match.group(1).lower(), int(match.group(2))
    if version < _MIN_ML_PROGRAM[system]:
        raise UsageError(f"--target {text} is too old for ML programs; use {_OS_SPELLING[system]}"
                         f"{_MIN_ML_PROGRAM[system]} or later")
    return f"{_OS_SPELLING[system]}{version}"


#: why a Core ML export is float16 without --half (the summary's note)
FLOAT16_DEFAULT_NOTE = ("float16: Core ML's default, kept because the Neural Engine runs float16 only (a float32 "
                        "model runs on CPU and GPU); --float32 for float32 compute")


def wants_float32(options: ExportOptions) -> bool:
    """Whether float32 compute was asked for (``CoreMLOptions.float32``; float16 otherwise)."""
    return options.own(CoreMLOptions).float32


class InputScale(nn.Module):
    """Multiplies each input channel by a constant (the fallback when no first convolution is found)."""

    def __init__(self, model: nn.Module, scale: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("scale", scale.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.scale)


def _first_conv(model: nn.Module, in_chans: int) -> nn.Conv2d | None:
    """The convolution that reads the model input, when the model says where it is (``patch_embed``)."""
    stem = getattr(model, "patch_embed", None)
    first = stem[0] if isinstance(stem, nn.Sequential) and len(stem) else None
    conv = getattr(first, "c", first)  # a Conv2d_BN keeps its convolution in ``c``
    if isinstance(conv, nn.Conv2d) and conv.in_channels == in_chans and conv.groups == 1:
        return conv
    return None


@torch.no_grad()
def fold_input_scale(model: nn.Module, scale: torch.Tensor) -> nn.Module:
    """A copy of ``model`` that takes ``x`` where it took ``x * scale`` (one factor per input channel).

    The factor goes into the first convolution's weights (exact: its zero padding scales to zero), or,
    failing that, into a multiply in front of the model.
    """
    model = copy.deepcopy(model)
    conv = _first_conv(model, scale.numel())
    if conv is None:
        return InputScale(model, scale).eval()
    conv.weight.mul_(scale.to(conv.weight).view(1, -1, 1, 1))
    return model


class LogitsAndProbabilities(nn.Module):
    """Returns the logits and their softmax (the classifier reads the second, apps may read the first)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, logits.float().softmax(dim=-1)


def program_summary(spec) -> dict:
    """Operator counts and the largest tensor rank of an ML program spec (works on any OS).

    Args:
        spec: a ``Model_pb2.Model`` (``coremltools.utils.load_spec(path)`` or ``MLModel.get_spec()``).

    Returns:
        ``{"mil_ops": {op type: count} (constants excluded), "max_rank": int}``.
    """
    ops: collections.Counter = collections.Counter()
    max_rank = 0

    def walk(block) -> None:
        nonlocal max_rank
        for op in block.operations:
            if op.type != "const":
                ops[op.type] += 1
            for out in op.outputs:
                if out.type.HasField("tensorType"):
                    max_rank = max(max_rank, out.type.tensorType.rank)
            for inner in op.blocks:
                walk(inner)

    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            walk(block)
    return {"mil_ops": dict(sorted(ops.items())), "max_rank": max_rank}


def _describe(model, metadata: Mapping[str, str], image_input: bool, labels: bool, input_name: str) -> None:
    height, width = json.loads(metadata["input_size"])
    model.author = "lsnet-deploy"
    model.version = __version__
    model.short_description = (f"{json.loads(metadata['model'])} (LSNet, CVPR 2025) image classifier exported by "
                               "lsnet-deploy; preprocessing and labels are in the user-defined metadata (JSON values)")
    if image_input:
        model.input_description[input_name] = (f"RGB image, {width}x{height} (resize the short side to "
                                               f"{json.loads(metadata['resize_size'])[0]} and center-crop); "
                                               "normalization is inside the model")
    else:
        model.input_description[input_name] = (f"float32 NCHW tensor {json.loads(metadata['input_shape'])}: RGB / 255, "
                                               "minus mean, divided by std (metadata mean, std)")
    for name in output_names_of(dict(metadata)):
        model.output_description[name] = OUTPUT_DESCRIPTIONS.get(name, "float32 feature map or embedding (metadata "
                                                                       "outputs: shape, stride, channels)")
    if labels:
        model.output_description["classLabel"] = "most likely class label"
        model.output_description["classLabel_probs"] = "probability of every class label (softmax of logits)"
    for key, value in metadata.items():
        model.user_defined_metadata[key] = value


@register_exporter
class CoreMLExporter(Exporter):
    """Core ML ML program (``.mlpackage``)."""

    spec = COREML
    writes_directory = True
    no_dynamic_hw_reason = "Core ML image inputs have one size"
    ska_auto = "onehot_conv"
    int8_keep_float = True  # layers in keep_float keep float weights and inputs (coreml_int8.quantize_network)
    no_dynamic_reason = "the package has one input shape; export one per batch size with --batch N"

    def check_outputs(self, options: ExportOptions, outputs: list[dict]) -> None:
        super().check_outputs(options, outputs)
        if [o["kind"] for o in outputs] == ["logits"]:
            return
        names = ", ".join(o["name"] for o in outputs)
        if options.own(CoreMLOptions).image_input:
            raise UsageError(f"a Core ML image input describes a classifier; outputs {names} need --tensor-input")
        if options.labels:
            raise UsageError(f"a Core ML classifier (--labels) has one logits output, not {names}; drop --labels")

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        parse_target(options.own(CoreMLOptions).deployment_target)
        if options.own(CoreMLOptions).image_input and options.batch != 1:
            raise UsageError("a Core ML image input takes one image; use --tensor-input for --batch "
                             f"{options.batch}")
        if wants_float32(options) and options.half:
            raise UsageError("--half and float32 compute are exclusive; Core ML computes in float16 by default")

    def precision_note(self, options: ExportOptions) -> str | None:
        if options.half and not options.int8 and not wants_float32(options):
            return FLOAT16_DEFAULT_NOTE
        return None

    def effective_options(self, options: ExportOptions) -> ExportOptions:
        # float16 is Core ML's default compute precision: made explicit where metadata and validation read it
        # (under --int8 it is the precision of what stays float); --int8 defaults to W8A8's first OS
        own = options.own(CoreMLOptions)
        target = own.deployment_target or (DEFAULT_INT8_TARGET if options.int8 else None)
        return dataclasses.replace(options, half=not wants_float32(options),
                                   format_options=dataclasses.replace(own, deployment_target=target))

    def check_environment(self, options: ExportOptions) -> None:
        ct = require("coremltools", self.extra, "to write Core ML models")
        target = self._target(ct, options)
        requested = options.own(CoreMLOptions).deployment_target
        if options.int8 and requested is not None and target.value < WEIGHT_QUANT_TARGET:
            raise UsageError(f"--int8 needs --target iOS16 or later (int8 weights; iOS17+ quantizes activations "
                             f"too), not {parse_target(requested)}; drop --target or use iOS17")

    @staticmethod
    def _target(ct, options: ExportOptions):
        name = parse_target(options.own(CoreMLOptions).deployment_target)
        members = {k: v for k, v in ct.target.__members__.items() if v.value >= 6}  # ML program targets
        if name not in members:
            raise UsageError(f"--target {name} is unknown to coremltools {ct.__version__}; choose one of: "
                             f"{', '.join(members)}")
        return members[name]

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        ct = require("coremltools", self.extra, "to write Core ML models")
        options, metadata = context.options, context.metadata
        own = options.own(CoreMLOptions)
        image_input, target_name = own.image_input, parse_target(own.deployment_target)
        labels = options.labels
        input_name = IMAGE_INPUT if image_input else TENSOR_INPUT
        fields = {"input_name": input_name, "input_kind": "image" if image_input else "tensor",
                  "normalized_in_model": image_input, "classifier": bool(labels), "deployment_target": target_name}

        network = model
        std = torch.tensor(json.loads(metadata["std"]), dtype=torch.float32)
        if image_input:
            network = fold_input_scale(model, 1.0 / std)
        int8 = None
        if options.int8:
            int8 = self._quantize(ct, model, network, std if image_input else None, context)
            network = int8.network
            fields["int8_calibration"] = int8.record
        added = encode_metadata(fields)
        meta = {**metadata, **added}
        context.progress(f"converting to Core ML ({'image' if image_input else 'tensor'} input, "
                         f"{int8.record['scheme'] + ' int8, ' if int8 else ''}"
                         f"{'float32' if wants_float32(options) else 'float16'}, "
                         f"{target_name})")
        mlmodel = self._convert(ct, network, example, options, input_name, metadata)
        summary = program_summary(mlmodel.get_spec())
        if summary["max_rank"] > MAX_RANK:
            raise ExportError(f"the Core ML program has a rank-{summary['max_rank']} tensor and Core ML allows "
                              f"rank {MAX_RANK} at most; try another --ska form")
        _describe(mlmodel, meta, image_input, bool(labels), input_name)
        with silenced():
            mlmodel.save(str(path))
        clean_package(path, meta)
        twin = None
        if sys.platform == "darwin" and (options.validate or options.int8) and image_input:
            twin_network = int8.twin() if int8 else model
            twin = self._tensor_twin(ct, twin_network, example, options, metadata, context.resources)
        details = {**summary, "input": input_name, "deployment_target": target_name,
                   "compute_precision": "float32" if wants_float32(options) else "float16",
                   "classifier": bool(labels), **(int8.details if int8 else {})}
        return Written(details=details, metadata=added, validate_path=twin)

    def _quantize(self, ct, model: nn.Module, network: nn.Module, std: torch.Tensor | None,
                  context: ExportContext) -> "QuantizedNetwork":
        """``network`` with int8 layers, calibrated on the export's images (``coreml_int8``).

        Args:
            model: the prepared model (``keep_float`` names its modules).
            network: what is converted: ``model``, or for an image input its copy taking ``x * std``.
            std: the image input's std (its network is calibrated on ``images * std``), or None.
        """
        target = self._target(ct, context.options)
        scheme = scheme_for(target.value)
        images = context.calibration.images(dict(context.metadata))
        scale = (lambda x: x) if std is None else (lambda x: x * std.numpy().reshape(1, -1, 1, 1))
        # an InputScale wrapper (no first convolution to fold into) prefixes the model's names with "model."
        prefix = "model." if isinstance(network, InputScale) else ""
        context.progress(f"calibrating {scheme} int8 on {len(images)} images")

        def name_of(name: str) -> str:
            return name[len(prefix):] if name.startswith(prefix) else name

        quantized, counts = quantize_network(network, scale(images), scheme, context.keeps_float, name_of)
        held_out = context.calibration.held_out_images(dict(context.metadata))
        simulated = simulated_agreement(quantized, network, scale(held_out))
        record = context.int8_record(BATCH_PERCENTILE_METHOD, **describe(scheme), minimum_deployment_target=target.name,
                                     **counts)
        details = {"int8_scheme": scheme, **counts}
        if simulated is not None:
            details["int8_simulated_agreement"] = round(simulated, 4)
        return QuantizedNetwork(quantized, record, details,
                                twin=lambda: quantize_network(model, images, scheme, context.keeps_float)[0])

    def _convert(self, ct, network: nn.Module, example: torch.Tensor, options: ExportOptions, input_name: str,
                 metadata: dict[str, str], image_input: bool | None = None):
        """torch.export, then coremltools; with labels through MIL so the classifier keeps ``logits``."""
        image_input = options.own(CoreMLOptions).image_input if image_input is None else image_input
        labels = options.labels
        module = LogitsAndProbabilities(network).eval() if labels else network
        precision = ct.precision.FLOAT32 if wants_float32(options) else ct.precision.FLOAT16
        target = self._target(ct, options)
        if image_input:
            mean = json.loads(metadata["mean"])
            inputs = [ct.ImageType(name=input_name, shape=tuple(example.shape), scale=1 / 255,
                                   bias=[-m for m in mean], color_layout=ct.colorlayout.RGB)]
        else:
            inputs = [ct.TensorType(name=input_name, shape=tuple(example.shape), dtype=np.float32)]
        outputs = [ct.TensorType(name=name, dtype=np.float32) for name in output_names_of(dict(metadata))]
        if labels:
            outputs.append(ct.TensorType(name=PROBABILITIES, dtype=np.float32))
        with silenced() as log:
            try:
                program = torch.export.export(module, (example,)).run_decompositions({})
            except Exception as exc:
                raise ExportError(f"torch.export failed: {first_line(exc, log.getvalue().strip()[-300:])}") from exc
            try:
                converted = ct.convert(program, inputs=inputs, outputs=outputs, minimum_deployment_target=target,
                                       compute_precision=precision,
                                       convert_to="milinternal" if labels else "mlprogram")
                if labels:
                    # coremltools 9 cannot add a classifier to a torch.export program that has other
                    # outputs; adding it to the MIL program works (output dtypes are fixed by then)
                    converted.functions["main"].output_types = None
                    config = ct.ClassifierConfig(list(labels), predicted_probabilities_output=PROBABILITIES)
                    converted = ct.convert(converted, classifier_config=config, convert_to="mlprogram",
                                           minimum_deployment_target=target, compute_precision=precision)
            except Exception as exc:
                raise ExportError("coremltools could not convert the model: "
                                  f"{first_line(exc, log.getvalue().strip()[-300:])}") from exc
        return converted

    def _tensor_twin(self, ct, model, example, options, metadata, resources: contextlib.ExitStack) -> Path:
        """macOS only: the same network with a tensor input, for comparing numbers with PyTorch (under
        ``--int8``, ``model`` is the int8 network calibrated for a tensor input)."""
        work = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="lsnet-coreml-twin-")))
        twin = work / "twin.mlpackage"
        converted = self._convert(ct, model, example, options, TENSOR_INPUT, metadata, image_input=False)
        with silenced():
            converted.save(str(twin))
        return twin

    def cannot_validate(self, context: ExportContext) -> str | None:
        if sys.platform != "darwin":
            return (f"Core ML predicts only on macOS (this is {sys.platform}); the converted program was "
                    f"checked instead: it converts and no tensor exceeds rank {MAX_RANK}")
        return None


@dataclasses.dataclass(frozen=True)
class QuantizedNetwork:
    """What ``--int8`` converts: the int8 network, its ``int8_calibration`` record, facts to report, and
    a builder of the tensor-input twin's int8 network (macOS validation)."""

    network: nn.Module
    record: dict
    details: dict
    twin: Callable[[], nn.Module]


#: what belongs in an ML program package; anything else was left there by a tool and is removed
PACKAGE_FILES = ("Manifest.json", "Data")


def clean_package(package: Path, metadata: Mapping[str, str]) -> None:
    """Leave only what Core ML reads in a saved ``.mlpackage``, and only lsnet-deploy's keys in its metadata.

    Removes files other tools leave inside the package (ExecuTorch's debug-handle map, ...) and the
    user-defined keys coremltools adds on save (its version), which ``MLModel.save`` writes back whatever
    the model object holds, so the saved spec itself is edited.
    """
    from coremltools.proto import Model_pb2

    for entry in list(package.iterdir()):
        if entry.name not in PACKAGE_FILES:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for spec_file in package.glob("Data/*/*.mlmodel"):
        spec = Model_pb2.Model()
        spec.ParseFromString(spec_file.read_bytes())
        stored = spec.description.metadata.userDefined
        for key in [k for k in stored if k not in metadata]:
            del stored[key]
        spec_file.write_bytes(spec.SerializeToString())
