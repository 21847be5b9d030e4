"""The metadata every artifact carries, so an app can feed it correctly without reading our docs.

Every value is a JSON-encoded string (ONNX ``metadata_props`` and Core ML user fields are string maps), so
an app decodes every field with one JSON parser; ``decode_metadata`` does it here, ``SCHEMA`` lists every
key with its type (docs/metadata.md), and ``lsnet_deploy.artifact_metadata.read_artifact_metadata`` reads
the map from any artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .version import __version__
from .constants import is_hub_source
from .errors import UsageError, first_line
from .recipe import recipe_of

#: the version of the key set below; bumped when a key changes meaning or type
SCHEMA_VERSION = 2

#: the stage whose blocks are attention blocks (LSNet's last)
ATTENTION_STAGE = 3

#: every key lsnet-deploy writes: (JSON type, meaning). docs/metadata.md is this table.
SCHEMA: dict[str, tuple[str, str]] = {
    "schema": ("integer", "version of this key set (2)"),
    "producer": ("string", "always \"lsnet-deploy\""),
    "producer_version": ("string", "lsnet-deploy version that wrote the artifact"),
    "model": ("string", "variant name (lsnet_t, ...) or \"lsnet\" for a custom architecture"),
    "architecture": ("object", "constructor arguments of the network (widths, depths, heads, ...)"),
    "task": ("string", "\"image-classification\" (logits out), \"feature-extraction\" (feature maps out), "
                       "\"image-embedding\" (embedding only) or \"custom\""),
    "input_name": ("string", "name of the input tensor"),
    "output_name": ("string", "name of the first output (the logits of a classifier)"),
    "outputs": ("array of objects", "every output in order: name, kind (logits, embedding, feature_map, output), "
                                    "shape (N -1 for a dynamic batch), channels, and stride for feature maps"),
    "attention_bias": ("object", "how the attention bias reaches the input's token grid: mode (\"table\": offset "
                                 "table resampled at build time; \"matrix\": the reference detection code's "
                                 "bicubic resize of the (N, N) bias), table_grid, grid (the artifact's; its bias "
                                 "is a constant)"),
    "input_shape": ("array of integers", "N, C, H, W; N is -1 for a dynamic batch"),
    "input_size": ("array of integers", "H, W the network takes"),
    "input_layout": ("string", "\"NCHW\""),
    "channel_order": ("string", "\"RGB\""),
    "pixel_scale": ("number", "multiply 8-bit pixels by this before mean/std (1/255)"),
    "mean": ("array of numbers", "per-channel mean subtracted after scaling (the model's recipe: the checkpoint's "
                                 "training args, the user's --mean, or timm's ImageNet mean)"),
    "std": ("array of numbers", "per-channel std divided by after the mean"),
    "interpolation": ("string", "resize filter: bicubic, bilinear, nearest, lanczos, box or hamming"),
    "crop_pct": ("number", "centre-crop fraction of the resized image"),
    "resize_size": ("array of integers", "resized to cover these H, W before the crop (floor(size / crop_pct))"),
    "crop_mode": ("string", "\"center\" (aspect kept, short side resized) or \"squash\" (both sides resized)"),
    "num_classes": ("integer", "number of logits"),
    "batch": ("integer or string", "fixed batch size, or \"dynamic\""),
    "ska_form": ("string", "SKA formulation inside the artifact"),
    "fused": ("boolean", "re-parameterizable branches fused"),
    "precision": ("string", "float32, float16 or int8"),
    "weights_sha256": ("string", "SHA-256 of the checkpoint file, or \"random-init\""),
    "weights_source": ("string", "checkpoint file name or hub id (never a local directory), or \"random-init\""),
    "labels": ("array of strings", "class names, one per logit (with --labels)"),
    "int8_calibration": ("object", "int8 only: calibration image count, method, what was quantized"),
    "accelerator": ("object", "--accelerator / --format qnn: the accelerator targeted (name), the options picking "
                    "its variant (soc), allow_fallback when CPU fallback was kept"),
    "qnn": ("object", "--format qnn: SoC, QNN soc_model and htp_arch the context binary was compiled for, "
            "onnxruntime-qnn version, context_embedded"),
    "input_kind": ("string", "Core ML: \"image\" or \"tensor\""),
    "normalized_in_model": ("boolean", "Core ML: mean/std applied inside the model (image input)"),
    "classifier": ("boolean", "Core ML: classLabel / classLabel_probs outputs (with --labels)"),
    "deployment_target": ("string", "Core ML: minimum OS (iOS16, ...)"),
}
_JSON_TYPES = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,), "object": (dict,),
               "array of integers": (list,), "array of numbers": (list,), "array of strings": (list,),
               "array of objects": (list,),
               "integer or string": (int, str)}


def public_source(source: str | None) -> str:
    """A checkpoint source fit to ship inside an app: a hub id as is, a local path reduced to its file name."""
    if not source:
        return "random-init"
    text = str(source)
    if is_hub_source(text):
        return text
    return Path(text).name


def architecture_fields(model) -> dict:
    """The network's constructor arguments, as recorded in the metadata.

    ``key_dim`` and ``num_heads`` only mean something where a stage has attention blocks (LSNet's last
    stage, from its second block on); elsewhere they are null, so a custom configuration is never described
    with values that nothing in the network used (and that a checkpoint cannot record).
    """
    config = {k: v for k, v in model.config.items() if k != "fused"}
    if "depth" in config:
        for key in ("key_dim", "num_heads"):
            if key in config:
                config[key] = [value if stage == ATTENTION_STAGE and config["depth"][stage] > 1 else None
                               for stage, value in enumerate(config[key])]
    return config


def output_kind(name: str, shape: Sequence[int]) -> str:
    """``logits`` and ``embedding`` by name, ``feature_map`` for any other 4-D output, else ``output``."""
    if name in ("logits", "embedding"):
        return name
    return "feature_map" if len(shape) == 4 else "output"


def describe_outputs(names: Sequence[str], shapes: Sequence[Sequence[int]], input_size: Sequence[int],
                     dynamic: bool = False, reductions: Sequence[int] | None = None) -> list[dict]:
    """The ``outputs`` metadata entries: name, kind, shape, channels, and stride for feature maps.

    Args:
        names, shapes: each output's name and shape (from a run of the model).
        input_size: H, W of the input.
        dynamic: the batch dimension is dynamic (written as -1).
        reductions: the nominal stride of each output when the model declares them (a backbone's
            ``feature_info``); otherwise a feature map's stride is input height / its height, rounded.
    """
    entries = []
    for index, (name, shape) in enumerate(zip(names, shapes)):
        kind = output_kind(name, shape)
        entry = {"name": name, "kind": kind, "shape": [-1 if dynamic else int(shape[0]), *map(int, shape[1:])],
                 "channels": int(shape[1]) if len(shape) > 1 else 1}
        if kind == "feature_map":
            entry["stride"] = int(reductions[index]) if reductions else max(1, round(input_size[0] / shape[2]))
        entries.append(entry)
    return entries


#: the ``task`` of a backbone export (feature maps out)
BACKBONE_TASK = "feature-extraction"


def task_of(outputs: Sequence[dict]) -> str:
    """The ``task`` metadata value for a list of ``describe_outputs`` entries."""
    kinds = {o["kind"] for o in outputs}
    if "logits" in kinds:
        return "image-classification"
    if kinds == {"feature_map"}:
        return BACKBONE_TASK
    if kinds == {"embedding"}:
        return "image-embedding"
    return "custom"


def attention_bias_fields(model) -> dict | None:
    """The ``attention_bias`` metadata value of an LSNet (None when it has no attention layer)."""
    from .models.lsnet import stage_grids

    if model.depth[3] < 2:
        return None
    grid = stage_grids(model.img_size, model.patch_size)[3]
    table = getattr(model, "attention_grid", None) or grid
    return {"mode": getattr(model, "bias_mode", "table"), "table_grid": list(table), "grid": list(grid)}


def encode_metadata(fields: dict) -> dict[str, str]:
    """JSON-encode every value (the string map ONNX, Core ML and sidecars store)."""
    return {key: json.dumps(value) for key, value in fields.items()}


def build_metadata(model, *, ska_form: str, fused: bool, precision: str, batch: int | str,
                   labels: Sequence[str] | None = None, input_name: str = "input",
                   output_name: str = "logits", outputs: Sequence[dict] | None = None) -> dict[str, str]:
    """Assemble the metadata of an exported LSNet (keys and types: ``SCHEMA``).

    Args:
        model: the LSNet being exported, or inside the exported module (its config, preprocessing recipe
            (``recipe.recipe_of``) and checkpoint attributes are read).
        ska_form: the SKA formulation in the artifact.
        fused: whether re-parameterizable branches were fused.
        precision: ``float32``, ``float16`` or ``int8``.
        batch: the fixed batch size, or ``"dynamic"``.
        labels: class names, one per output.
        input_name, output_name: tensor names in the artifact (``outputs``, when given, names the outputs).
        outputs: the ``describe_outputs`` entries of the artifact; they set ``task`` and ``output_name``.

    Returns:
        A string-to-string map; every value is JSON (strings too: ``"\"RGB\""``).
    """
    recipe = recipe_of(model)
    img_size = tuple(model.img_size)
    fields = {
        "schema": SCHEMA_VERSION,
        "producer": "lsnet-deploy",
        "producer_version": __version__,
        "model": getattr(model, "variant", "lsnet"),
        "architecture": architecture_fields(model),
        "task": task_of(outputs) if outputs else "image-classification",
        "input_name": input_name,
        "output_name": outputs[0]["name"] if outputs else output_name,
        "input_shape": [batch if isinstance(batch, int) else -1, model.in_chans, *img_size],
        "input_size": list(img_size),
        "input_layout": "NCHW",
        "channel_order": "RGB",
        "pixel_scale": 1 / 255,
        **recipe.recipe_fields(),
        "resize_size": list(recipe.resize_for(img_size)),
        "num_classes": model.num_classes,
        "batch": batch,
        "ska_form": ska_form,
        "fused": fused,
        "precision": precision,
        "weights_sha256": getattr(model, "checkpoint_sha256", None) or "random-init",
        "weights_source": public_source(getattr(model, "checkpoint_source", None)),
    }
    if outputs:
        fields["outputs"] = [dict(o) for o in outputs]
    if (bias := attention_bias_fields(model)) is not None:
        fields["attention_bias"] = bias
    if labels is not None:
        fields["labels"] = list(labels)
    return encode_metadata(fields)


def output_names_of(metadata: dict[str, str]) -> list[str]:
    """The output names a metadata map (raw JSON strings) declares, in order."""
    if "outputs" in metadata:
        return [o["name"] for o in json.loads(metadata["outputs"])]
    return [json.loads(metadata.get("output_name", '"logits"'))]


def decode_metadata(props: dict[str, str]) -> dict:
    """Decode a string map written by ``build_metadata``.

    Values that are not JSON (other tools' keys, or raw strings of artifacts written before schema 2)
    are kept as the strings they are.
    """
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def schema_problems(props: dict[str, str]) -> list[str]:
    """What in a stored map breaks the schema: unknown keys, values that are not JSON or not of the type.

    Returns:
        One line per problem; empty when the map conforms.
    """
    problems = []
    for key, value in props.items():
        if key not in SCHEMA:
            problems.append(f"{key}: not a documented key")
            continue
        try:
            decoded = json.loads(value)
        except (TypeError, ValueError):
            problems.append(f"{key}: value {value!r} is not JSON")
            continue
        kind = SCHEMA[key][0]
        ok = isinstance(decoded, _JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(decoded, bool))
        if ok and kind.startswith("array of "):
            item = {"integers": int, "numbers": (int, float), "strings": str, "objects": dict}[kind.split()[-1]]
            ok = all(isinstance(v, item) and not isinstance(v, bool) for v in decoded)
        if not ok:
            problems.append(f"{key}: {decoded!r} is not {kind}")
    return problems


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Read class labels: one per line (blank lines ignored), or a JSON list / {index: name} map.

    Raises:
        UsageError: unreadable file, or a count that does not match ``num_classes``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels file {path}: {exc}") from None
    labels: list[str]
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's parser goes
            raise UsageError(f"labels file {path} is not valid JSON: {first_line(exc)}") from None
        if isinstance(data, dict):
            try:
                labels = [str(data[k]) for k in sorted(data, key=lambda k: int(k))]
            except ValueError:
                raise UsageError(f"labels file {path}: JSON object keys must be class indices") from None
        else:
            labels = [str(x) for x in data]
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if num_classes is not None and len(labels) != num_classes:
        raise UsageError(f"labels file {path} has {len(labels)} labels but the model has {num_classes} classes")
    return labels


def duplicate_labels(labels) -> dict[str, list[int]]:
    """Labels that name more than one class, each with its class indices.

    Repeated labels are allowed (ImageNet-1k's usual list repeats 'crane' and 'maillot', so refusing them
    would refuse the commonest labels file); callers warn, and matching a folder to a repeated label is
    refused as ambiguous.

    Args:
        labels: class names, by class index.

    Returns:
        ``{label: [index, ...]}`` for every label given to two or more classes (empty when none is).
    """
    seen: dict[str, list[int]] = {}
    for index, name in enumerate(labels):
        seen.setdefault(str(name), []).append(index)
    return {name: indices for name, indices in seen.items() if len(indices) > 1}
