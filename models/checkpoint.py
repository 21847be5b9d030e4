"""Reading checkpoints safely: file formats, wrappers and prefixes, never executing code.

Accepted: ``.pth``, ``.pt``, ``.bin`` (``torch.save`` files, read with ``weights_only=True``) and
``.safetensors``; a plain state dict or one wrapped under ``model`` / ``state_dict`` (training checkpoints
of the reference code are ``{"model": ..., "optimizer": ..., "epoch": ..., "args": Namespace}``), with or
without a ``module.`` (DDP) or ``_orig_mod.`` (torch.compile) prefix.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from pathlib import Path

import torch

from ..errors import CheckpointError, UnsafeCheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
# Pure data holders that training scripts put in checkpoints; unpickling them runs no code.
SAFE_GLOBALS = [argparse.Namespace]


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
        if "Weights only load failed" in str(exc):
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise UnsafeCheckpointError(
                f"{path} holds Python objects beyond tensors{what}; loading it would run code, so it is "
                "refused. Re-save just the weights: torch.save(model.state_dict(), 'weights.pth')") from None
        raise CheckpointError(f"{path} is corrupt or not a PyTorch checkpoint ({exc})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, TypeError) as exc:
        detail = str(exc).split(". ")[0] or type(exc).__name__
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a PyTorch checkpoint ({detail}); download or save it again"
        ) from None


def _load_safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError variants
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a safetensors file ({exc}); download or save it again"
        ) from None


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
        if not isinstance(value, torch.Tensor):
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
    if suffix == ".safetensors":
        obj = _load_safetensors_file(path)
    elif suffix in TORCH_SUFFIXES or not suffix:
        obj = _load_torch_file(path)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type {suffix!r}; use .pth, .pt, .bin or .safetensors")
    state = unwrap_state_dict(obj, str(path))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
