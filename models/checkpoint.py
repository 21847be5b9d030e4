"""Reading checkpoints safely: file formats, wrappers and prefixes, never executing code.

Accepted: ``constants.TORCH_CHECKPOINT_SUFFIXES`` (``torch.save`` files: ``.pth``, ``.pt``, ``.bin``,
Lightning's ``.ckpt``, legacy ``.tar``; read with ``weights_only=True``) and ``.safetensors``; a plain state dict or one wrapped under ``model`` / ``state_dict`` (training checkpoints
of the reference code are ``{"model": ..., "optimizer": ..., "epoch": ..., "args": Namespace}``), with or
without a ``module.`` (DDP) or ``_orig_mod.`` (torch.compile) prefix.

Where a checkpoint records the input size it was trained at (``args.input_size`` of reference training
checkpoints, this project's ``lsnet_deploy`` / ``metadata`` entry, a safetensors metadata field
``input_size``), ``read_checkpoint`` returns it too: the attention grid alone cannot tell 160 from 192.
Likewise the preprocessing recipe the training used, where the same places record it
(``lsnet_deploy.recipe.recipe_from_training_args``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..constants import SAFETENSORS_SUFFIX, TORCH_CHECKPOINT_SUFFIXES, checkpoint_suffixes_text
from ..errors import CheckpointError, UnsafeCheckpointError, first_line
from ..recipe import RECIPE_FIELDS, recipe_from_training_args

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
# Pure data holders that training scripts put in checkpoints; unpickling them runs no code.
SAFE_GLOBALS = [argparse.Namespace]
# where this project's own checkpoints keep their metadata (the artifact metadata field names)
METADATA_KEYS = ("lsnet_deploy", "metadata")


@dataclass
class Checkpoint:
    """A checkpoint's float32 state dict, and the training input size and preprocessing recipe it records."""

    state: dict[str, torch.Tensor]
    input_size: tuple[int, int] | None = None
    size_source: str | None = None  # where ``input_size`` was found, for messages
    recipe: dict | None = None  # recipe fields (``lsnet_deploy.recipe.RECIPE_FIELDS``) the checkpoint records
    recipe_source: str | None = None  # where they were found, for messages


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_torch_file(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # only a pickle that names a callable (GLOBAL module.name) would run code; other refusals of the
        # weights-only unpickler ("Unsupported operand 216") are bytes that are no pickle at all
        found = re.search(r"GLOBAL ([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\b", str(exc), re.ASCII)
        if found:
            raise UnsafeCheckpointError(
                f"{path} holds Python objects beyond tensors ({found.group(1)}); loading it would run code, so it "
                "is refused. Re-save just the weights: torch.save(model.state_dict(), 'weights.pth')") from None
        operand = re.search(r"Unsupported operand \d+", str(exc))
        raise CheckpointError(_not_a_checkpoint(path, operand.group(0) if operand else first_line(exc))) from None
    except Exception as exc:  # noqa: BLE001
        # on damaged bytes torch.load surfaces whatever its zip, pickle and struct layers hit (RuntimeError,
        # EOFError, struct.error, zipfile.BadZipFile, UnicodeDecodeError, KeyError, IndexError's "pop from
        # empty list", ...): all mean "not a checkpoint"
        detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(_not_a_checkpoint(path, f"{type(exc).__name__}: {detail}")) from None


#: bytes read to tell a text file from binary data in messages
HEAD_BYTES = 256


def _not_a_checkpoint(path: Path, detail: str) -> str:
    """Why a file torch.load could not read is not a checkpoint, in the user's terms (a text file is named as
    one; anything else is damaged or another kind of file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        head = b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the head is still text
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if head and text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return (f"{path} is a text file (it begins {first!r}), not a PyTorch checkpoint; pass the weights file "
                f"({checkpoint_suffixes_text()})")
    return f"{path} is truncated, corrupt or not a PyTorch checkpoint ({detail}); download or save it again"



def _load_safetensors_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            return tensors, dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError variants
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a safetensors file ({first_line(exc)}); download or save it again"
        ) from None


def parse_input_size(value: object) -> tuple[int, int] | None:
    """An input size as recorded by training code: ``224``, ``[H, W]``, ``(3, H, W)`` or JSON text of them.

    Returns:
        (H, W), or None when ``value`` is not a plausible size.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        return None
    sides = value[-2:]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 16384 for v in sides):
        return None
    return (int(sides[0]), int(sides[1]))


def recorded_input_size(obj: object) -> tuple[tuple[int, int] | None, str | None]:
    """The training input size a loaded checkpoint object records, and where: (size, source) or (None, None).

    Looks at this project's own ``lsnet_deploy`` / ``metadata`` entry (key ``input_size``), then the
    reference training checkpoint's ``args.input_size`` (an ``argparse.Namespace`` or a dict).
    """
    if not isinstance(obj, dict):
        return None, None
    for key in METADATA_KEYS:
        meta = obj.get(key)
        if isinstance(meta, dict) and (size := parse_input_size(meta.get("input_size"))):
            return size, f"its {key} input_size"
    args = obj.get("args")
    value = args.get("input_size") if isinstance(args, dict) else getattr(args, "input_size", None)
    if (size := parse_input_size(value)) is not None:
        return size, "its training args (args.input_size)"
    return None, None


TRAINING_ARGS_SOURCE = "the checkpoint's training args"


def recorded_recipe(obj: object) -> tuple[dict | None, str | None]:
    """The preprocessing recipe fields a loaded checkpoint object records, and where: (fields, source) or
    (None, None).

    Looks at this project's own ``lsnet_deploy`` / ``metadata`` entry, then the training args (``args``: an
    ``argparse.Namespace`` or a dict; see ``recipe_from_training_args``).
    """
    if not isinstance(obj, dict):
        return None, None
    for key in METADATA_KEYS:
        meta = obj.get(key)
        if isinstance(meta, dict) and (fields := {k: meta[k] for k in RECIPE_FIELDS if meta.get(k) is not None}):
            return fields, f"the checkpoint's {key} entry"
    fields = recipe_from_training_args(obj.get("args"))
    return (fields, TRAINING_ARGS_SOURCE) if fields else (None, None)


def header_recipe(header: dict[str, str]) -> dict | None:
    """The recipe fields a safetensors header records (JSON or plain strings), None when it records none."""
    fields = {}
    for name in RECIPE_FIELDS:
        if (text := header.get(name)) is None:
            continue
        try:
            fields[name] = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            fields[name] = text  # a plain string such as bicubic
    return fields or None


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint and strip DDP / torch.compile prefixes.

    Raises:
        CheckpointError: when no mapping of tensors is found.
    """
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        kind = type(obj).__name__
        keys = f" with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else ""
        raise CheckpointError(f"{source} holds no state dict (found a {kind}{keys}); expected a mapping of "
                              "parameter names to tensors, or one under 'model' or 'state_dict'")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor) or not isinstance(key, str):
            continue
        for prefix in STRIPPED_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a float32 state dict without executing any code.

    Floating-point tensors are cast to float32 (the model computes in float32).

    Raises:
        CheckpointError: missing, unreadable, corrupt or wrapper-less files.
        UnsafeCheckpointError: files whose unpickling would build arbitrary objects.
    """
    return read_checkpoint(path).state


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file: its float32 state dict and the training input size it records.

    Raises:
        CheckpointError: missing, unreadable, corrupt or wrapper-less files, or weights holding NaN / inf.
        UnsafeCheckpointError: files whose unpickling would build arbitrary objects.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the weights file inside it")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not head:
        raise CheckpointError(f"{path} is empty; download or save it again")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        obj, header = _load_safetensors_file(path)
        size = parse_input_size(header.get("input_size"))
        where = "its safetensors metadata" if size else None
        recipe = header_recipe(header)
        recipe_where = "the checkpoint's safetensors metadata" if recipe else None
    elif suffix in TORCH_CHECKPOINT_SUFFIXES or not suffix:
        obj = _load_torch_file(path)
        size, where = recorded_input_size(obj)
        recipe, recipe_where = recorded_recipe(obj)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type {suffix!r}; use {checkpoint_suffixes_text()}")
    state = unwrap_state_dict(obj, str(path))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    damaged = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if damaged:
        # every output of such a model is NaN: refuse it here, not as a "drift" of each artifact made from it
        named = ", ".join(damaged[:3]) + (", ..." if len(damaged) > 3 else "")
        raise CheckpointError(f"{path} holds NaN or infinite values in {len(damaged)} tensor"
                              f"{'s' * (len(damaged) > 1)} ({named}): a diverged training run or a damaged "
                              "file; use an earlier or intact checkpoint")
    return Checkpoint(state, size, where, recipe, recipe_where)
