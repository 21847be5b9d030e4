"""The model a command works on, from a variant name and/or a checkpoint (shared by the CLIs and the bench).

Not part of the command-line layer: ``lsnet_deploy.bench`` builds its PyTorch candidates with it too.
"""

from __future__ import annotations

import sys

RANDOM_INIT_WARNING = ("warning: no --weights given, so {name} is randomly initialized: fine for latency and "
                       "export checks, useless for predictions. Pass --weights PATH or hf-hub:ORG/REPO.")


def resolve_model(model_name: str | None, weights: str | None, img_size: tuple[int, int] | None,
                  default: str = "lsnet_t", warn: bool = True, **backbone):
    """Build the model a command works on, from a variant name and/or a checkpoint.

    With ``weights`` the architecture comes from the checkpoint (``model_name``, if given, must match);
    without, a randomly initialized ``model_name`` (default ``lsnet_t``) is built after a warning on stderr
    (``warn``). ``backbone`` (``features_only``, ``out_indices``, ``bias_mode``) builds the backbone instead.

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError / UsageError: as ``models.load_model`` and ``models.create_model``.
    """
    from .models import create_model, load_model

    if weights:
        if backbone.get("features_only"):
            return load_model(weights, img_size=img_size, **backbone)
        return load_model(weights, img_size=img_size, model_name=model_name)
    name = model_name or default
    if warn:
        print(RANDOM_INIT_WARNING.format(name=name), file=sys.stderr, flush=True)
    overrides = {"img_size": img_size} if img_size else {}
    if backbone.get("features_only"):
        overrides.update({k: v for k, v in backbone.items() if v is not None})
    return create_model(name, **overrides).eval()
