"""``--format coreml``: a Core ML ML program (``.mlpackage``) for iPhones, iPads and Macs.

What an app gets by default: an image input named ``image`` (RGB, the model's input size) that takes a
camera frame or ``CGImage`` as is, float16 compute, iOS 16 as the minimum deployment target, and a
``logits`` output; with ``--labels`` a classifier (``classLabel`` and ``classLabel_probs``, the outputs
Vision's ``VNClassificationObservation`` reads) that keeps ``logits`` beside them. ``--tensor-input``
gives a float32 NCHW ``input`` normalized as the metadata says (as the ONNX file takes it), ``--target``
another minimum OS (``iOS15``, ``macOS13``...), ``--float32`` float32 compute.

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
from typing import Mapping

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import ExportError, UsageError, first_line, require
from ..metadata import encode_metadata
from ..quiet import silenced
from .base import ExportContext, ExportOptions, Exporter, Written, register_exporter

DEFAULT_TARGET = "iOS16"
IMAGE_INPUT = "image"
TENSOR_INPUT = "input"
LOGITS = "logits"
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


def wants_float32(options: ExportOptions) -> bool:
    """Whether float32 compute was asked for (the ``float32`` export option; float16 otherwise)."""
    return options.float32


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
    model.output_description[LOGITS] = "class scores before softmax, float32"
    if labels:
        model.output_description["classLabel"] = "most likely class label"
        model.output_description["classLabel_probs"] = "probability of every class label (softmax of logits)"
    for key, value in metadata.items():
        model.user_defined_metadata[key] = value


@register_exporter
class CoreMLExporter(Exporter):
    """Core ML ML program (``.mlpackage``)."""

    name = "coreml"
    runtime = "coreml"
    aliases = ("mlpackage", "mlprogram")
    suffix = ".mlpackage"
    writes_directory = True
    extra = "coreml"
    description = "Core ML ML program (iOS, iPadOS, macOS apps; Neural Engine, GPU, CPU)"
    supported_options = frozenset({"half", "float32", "deployment_target", "image_input"})
    ska_auto = "onehot_conv"
    no_dynamic_reason = "the package has one input shape; export one per batch size with --batch N"

    def check_options(self, options: ExportOptions) -> None:
        super().check_options(options)
        parse_target(options.deployment_target)
        if options.image_input and options.batch != 1:
            raise UsageError("a Core ML image input takes one image; use --tensor-input for --batch "
                             f"{options.batch}")
        if wants_float32(options) and options.half:
            raise UsageError("--half and float32 compute are exclusive; Core ML computes in float16 by default")

    def effective_options(self, options: ExportOptions) -> ExportOptions:
        # float16 is Core ML's default compute precision: made explicit where metadata and validation read it
        return dataclasses.replace(options, half=not wants_float32(options))

    def check_environment(self, options: ExportOptions) -> None:
        ct = require("coremltools", self.extra, "to write Core ML models")
        self._target(ct, options)

    @staticmethod
    def _target(ct, options: ExportOptions):
        name = parse_target(options.deployment_target)
        members = {k: v for k, v in ct.target.__members__.items() if v.value >= 6}  # ML program targets
        if name not in members:
            raise UsageError(f"--target {name} is unknown to coremltools {ct.__version__}; choose one of: "
                             f"{', '.join(members)}")
        return members[name]

    def write(self, model, example, path: Path, context: ExportContext) -> Written:
        ct = require("coremltools", self.extra, "to write Core ML models")
        options, metadata = context.options, context.metadata
        image_input = options.image_input
        labels = options.labels
        input_name = IMAGE_INPUT if image_input else TENSOR_INPUT
        added = encode_metadata({"input_name": input_name, "input_kind": "image" if image_input else "tensor",
                                 "normalized_in_model": image_input, "classifier": bool(labels),
                                 "deployment_target": parse_target(options.deployment_target)})
        meta = {**metadata, **added}

        network = model
        if image_input:
            std = torch.tensor(json.loads(metadata["std"]), dtype=torch.float32)
            network = fold_input_scale(model, 1.0 / std)
        context.progress(f"converting to Core ML ({'image' if image_input else 'tensor'} input, "
                         f"{'float32' if wants_float32(options) else 'float16'}, "
                         f"{parse_target(options.deployment_target)})")
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
            twin = self._tensor_twin(ct, model, example, options, metadata, context.resources)
        details = {**summary, "input": input_name, "deployment_target": parse_target(options.deployment_target),
                   "compute_precision": "float32" if wants_float32(options) else "float16",
                   "classifier": bool(labels)}
        return Written(details=details, metadata=added, validate_path=twin)

    def _convert(self, ct, network: nn.Module, example: torch.Tensor, options: ExportOptions, input_name: str,
                 metadata: dict[str, str], image_input: bool | None = None):
        """torch.export, then coremltools; with labels through MIL so the classifier keeps ``logits``."""
        image_input = options.image_input if image_input is None else image_input
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
        outputs = [ct.TensorType(name=LOGITS, dtype=np.float32)]
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
        """macOS only: the same network with a tensor input, for comparing numbers with PyTorch."""
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
