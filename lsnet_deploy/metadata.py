"""The metadata every artifact carries, so an app can feed it correctly without reading our docs.

Values are JSON-encoded strings (ONNX ``metadata_props`` and Core ML user fields are string maps); an
app decodes each field with a JSON parser; ``decode_metadata`` does it here, and
``lsnet_deploy.artifact_metadata.read_artifact_metadata`` reads the map from any artifact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from . import __version__

METADATA_VERSION = 1
# keys whose values are plain strings, not JSON
STRING_KEYS = ("producer", "producer_version", "model", "task", "input_name", "output_name", "input_layout",
               "channel_order", "ska_form", "precision", "weights_sha256", "weights_source", "output")


def resize_size(img_size: tuple[int, int], crop_pct: float) -> tuple[int, int]:
    """Resize target before the centre crop, as timm computes it (``floor(size / crop_pct)``)."""
    return tuple(int(math.floor(s / crop_pct)) for s in img_size)


def build_metadata(model, *, ska_form: str, fused: bool, precision: str, batch: int | str,
                   labels: Sequence[str] | None = None, input_name: str = "input",
                   output_name: str = "logits") -> dict[str, str]:
    """Assemble the metadata of an exported LSNet.

    Args:
        model: the LSNet being exported (its config, pretrained_cfg and checkpoint attributes are read).
        ska_form: the SKA formulation in the artifact.
        fused: whether re-parameterizable branches were fused.
        precision: ``float32``, ``float16`` or ``int8``.
        batch: the fixed batch size, or ``"dynamic"``.
        labels: class names, one per output.
        input_name, output_name: tensor names in the artifact.

    Returns:
        A string-to-string map (JSON-encoded values for non-string fields).
    """
    cfg = model.pretrained_cfg
    img_size = tuple(model.img_size)
    fields = {
        "producer": "lsnet-deploy",
        "producer_version": __version__,
        "metadata_version": METADATA_VERSION,
        "model": getattr(model, "variant", "lsnet"),
        "architecture": {k: v for k, v in model.config.items() if k != "fused"},
        "task": "image-classification",
        "input_name": input_name,
        "output_name": output_name,
        "output": "logits",
        "input_shape": [batch if isinstance(batch, int) else -1, model.in_chans, *img_size],
        "input_size": list(img_size),
        "input_layout": "NCHW",
        "channel_order": "RGB",
        "pixel_scale": 1 / 255,
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "interpolation": cfg["interpolation"],
        "crop_pct": cfg["crop_pct"],
        "resize_size": list(resize_size(img_size, cfg["crop_pct"])),
        "crop_mode": "center",
        "num_classes": model.num_classes,
        "batch": batch,
        "ska_form": ska_form,
        "fused": fused,
        "precision": precision,
        "weights_sha256": getattr(model, "checkpoint_sha256", None) or "random-init",
        "weights_source": getattr(model, "checkpoint_source", None) or "random-init",
    }
    if labels is not None:
        fields["labels"] = list(labels)
    return {k: v if k in STRING_KEYS else json.dumps(v) for k, v in fields.items()}


def decode_metadata(props: dict[str, str]) -> dict:
    """Decode a string map written by ``build_metadata`` (unknown keys are kept as strings)."""
    out = {}
    for key, value in props.items():
        if key in STRING_KEYS:
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Read class labels: one per line (blank lines ignored), or a JSON list / {index: name} map.

    Raises:
        UsageError: unreadable file, or a count that does not match ``num_classes``.
    """
    from .errors import UsageError

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
        except ValueError as exc:
            raise UsageError(f"labels file {path} is not valid JSON: {exc}") from None
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
