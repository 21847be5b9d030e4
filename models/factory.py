"""Public entry points for models: ``create_model``, ``list_models`` and ``load_model``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

import torch

from ..constants import is_hub_source
from ..errors import CheckpointError, UsageError, first_line
from ..recipe import record_recipe, recipe_from_config
from .arch import attention_grid, closest_variant, infer_config, matching_variant, size_candidates
from .backbone import DETECTION_GRID, LSNetBackbone, check_bias_mode
from .backbone_state import backbone_of_detector, ignored_note, is_detector_state, tables_at, without_head
from .checkpoint import Checkpoint, file_sha256, read_checkpoint
from .hub import download_from_hub, read_hub_config
from .lsnet import VARIANTS, LSNet, to_2tuple, variant_config, variant_names
from .resize import resize_attention_state

CUSTOM_NAME = "lsnet"
HUB_ORG = "jameslahm"
PUBLISHED_SIZE = 224
# keys a checkpoint may omit: both are rebuilt exactly by the model itself
REBUILDABLE_SUFFIXES = (".num_batches_tracked", ".attention_bias_idxs")
DEFAULT_OUT_INDICES = (0, 1, 2, 3)
#: export size of a backbone from a detector checkpoint (which records none): the YOLO-fork size
DETECTOR_EXPORT_SIZE = (640, 640)
#: the variants whose ImageNet weights are on the hub under HUB_ORG
PUBLISHED_NAMES = tuple(n for base in VARIANTS for n in (base, f"{base}_distill"))


def list_models(pattern: str = "*") -> list[str]:
    """Names accepted by ``create_model`` (fnmatch ``pattern``), the six published variants first."""
    import fnmatch

    return [n for n in [*variant_names(), CUSTOM_NAME] if fnmatch.fnmatch(n, pattern)]


def unknown_model_error(name: str) -> UsageError:
    """A UsageError for an unknown model name that suggests the closest valid one."""
    close = difflib.get_close_matches(name, list_models(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; choose one of: {', '.join(list_models())}"
    return UsageError(f"unknown model {name!r}{hint}")


def create_model(name: str = "lsnet_t", pretrained: bool = False, *, features_only: bool = False,
                 out_indices: Sequence[int] = DEFAULT_OUT_INDICES, bias_mode: str = "table",
                 **overrides) -> LSNet:
    """Build an LSNet by variant name, with any constructor argument overridden.

    Args:
        name: ``lsnet_t``, ``lsnet_s``, ``lsnet_b``, their ``_distill`` versions, the artist variants
            (``lsnet_t_artist`` .. ``lsnet_xl_artist_448``), or ``lsnet`` for a fully custom configuration
            given in ``overrides``.
        pretrained: load the published ImageNet weights from the Hugging Face hub
            (``hf-hub:jameslahm/<name>``; cached, honours ``HF_HUB_OFFLINE``).
        features_only: build the backbone (``LSNetBackbone``): no head, the maps of ``out_indices`` out,
            ``feature_info`` describing them, any input size (timm's convention).
        out_indices: with ``features_only``, the stages to return (0..3, strides 8, 16, 32, 64).
        bias_mode: with ``features_only``, how the attention bias reaches other grids (``table`` or
            ``matrix``, the reference detection code's; see ``lsnet_deploy.models.backbone``).
        **overrides: ``img_size``, ``num_classes``, ``embed_dim``, ``depth``, ``num_heads``, ``key_dim``,
            ``distillation``, ``feature_dim``, ``fused``, ``ska``, ...; with ``features_only`` also
            ``attention_grid`` (the grid the tables are defined on, e.g. 14 for the detection code's).

    Returns:
        The model, in training mode as torch modules start (call ``.eval()`` for inference).

    Raises:
        UsageError: for an unknown name or constructor argument, or a bad ``out_indices``.
    """
    if pretrained:
        if name == CUSTOM_NAME or name not in PUBLISHED_NAMES:
            raise UsageError(f"pretrained weights are published for {', '.join(PUBLISHED_NAMES)} only; "
                             f"load other checkpoints with load_model(PATH)")
        model = load_model(f"hf-hub:{HUB_ORG}/{name}", img_size=overrides.pop("img_size", None),
                           ska=overrides.pop("ska", "auto"), features_only=features_only,
                           out_indices=out_indices, bias_mode=bias_mode if features_only else None)
        if overrides:
            raise UsageError(f"pretrained models take only img_size and ska, not {sorted(overrides)}")
        return model
    if name == CUSTOM_NAME:
        config = {}
    else:
        try:
            config = variant_config(name)
        except KeyError:
            raise unknown_model_error(name) from None
    config.update(overrides)
    try:
        if features_only:
            model = LSNetBackbone(**config, out_indices=out_indices, bias_mode=bias_mode)
        else:
            model = LSNet(**config)
    except TypeError as exc:
        raise UsageError(f"bad argument for {name}: {exc}") from None
    model.variant = name if name != CUSTOM_NAME else (matching_variant(model.config) or CUSTOM_NAME)
    model.load_notes = []
    return model


def _resolve(source: str | Path) -> Path:
    if is_hub_source(source):
        return download_from_hub(str(source))
    return Path(source).expanduser()


def _describe_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor], config: dict) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(REBUILDABLE_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or wrong):
        return None
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape (checkpoint vs model)", wrong)):
        if items:
            shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
            parts.append(f"{len(items)} {label}: {shown}")
    return "; ".join(parts) + f"; it looks closest to {closest_variant(config)}"


def load_state_dict_checked(model: LSNet, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly, or raise one CheckpointError describing every mismatch.

    ``num_batches_tracked`` and ``attention_bias_idxs`` may be absent; the model's own values are kept.
    """
    problem = _describe_mismatch(model, state, infer_config_safe(state) or model.config)
    if problem:
        raise CheckpointError(f"{source} does not fit the model: {problem}")
    merged = {**{k: v for k, v in model.state_dict().items() if k.endswith(REBUILDABLE_SUFFIXES)}, **state}
    model.load_state_dict(merged, strict=True)


def infer_config_safe(state: dict[str, torch.Tensor]) -> dict | None:
    """``infer_config`` that returns None instead of raising."""
    try:
        return infer_config(state)
    except CheckpointError:
        return None


def _size_text(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def _recorded_size(source: str | Path, path: Path, checkpoint: Checkpoint) -> tuple[tuple[int, int] | None, str]:
    """The training size the checkpoint records (its own metadata or training args; a hub download's
    config.json), and where. Nothing else beside the file is read: loading reads only what the user named."""
    if checkpoint.input_size:
        return checkpoint.input_size, checkpoint.size_source or "the checkpoint"
    if is_hub_source(source):
        hub_cfg = read_hub_config(path)
        pretrained = hub_cfg.get("pretrained_cfg")
        hub_size = (pretrained if isinstance(pretrained, dict) else hub_cfg).get("input_size")
        if isinstance(hub_size, (list, tuple)) and len(hub_size) == 3:
            try:
                return (int(hub_size[1]), int(hub_size[2])), "the hub config.json"
            except (TypeError, ValueError):
                pass
    return None, ""


HUB_CONFIG_SOURCE = "the hub's config.json"


def _recorded_recipe(source: str | Path, path: Path, checkpoint: Checkpoint) -> tuple[dict | None, str]:
    """The preprocessing recipe the checkpoint records (its own metadata, training args or safetensors
    header; a hub download's config.json), and where."""
    if checkpoint.recipe:
        return checkpoint.recipe, checkpoint.recipe_source or "the checkpoint"
    if is_hub_source(source) and (fields := recipe_from_config(read_hub_config(path))):
        return fields, HUB_CONFIG_SOURCE
    return None, ""


def _training_size(config: dict, recorded: tuple[int, int] | None, where: str, source: str,
                   needed: bool, notes: list[str]) -> tuple[int, int] | None:
    """The input size the checkpoint was trained at: recorded, else unambiguous from its attention grid.

    Returns None for an ambiguous grid when the caller chooses the size anyway (``needed`` False).

    Raises:
        UsageError: when ``needed`` and several common sizes share the grid of a custom architecture.
    """
    grid = attention_grid(config)
    if recorded is not None:
        if attention_grid({**config, "img_size": recorded}) == grid:
            return recorded
        notes.append(f"{where} records input size {_size_text(recorded)}, but the attention bias is for a "
                     f"{_size_text(grid)} grid; ignored it")
    if config["depth"][3] < 2:  # no attention, nothing size-dependent in the weights
        return tuple(config["img_size"])
    rows, cols = (size_candidates(side, config.get("patch_size", 8)) for side in grid)
    if len(rows) <= 1 and len(cols) <= 1:
        return tuple(config["img_size"])
    if matching_variant(config) and PUBLISHED_SIZE in rows and PUBLISHED_SIZE in cols:
        if needed:
            notes.append(f"input size not recorded in the checkpoint; assumed the published {PUBLISHED_SIZE} "
                         "(pass --imgsz to choose)")
        return (PUBLISHED_SIZE, PUBLISHED_SIZE)
    if not needed:
        return None
    pairs = [(r, c) for r in rows or [config["img_size"][0]] for c in cols or [config["img_size"][1]]]
    names = [str(r) if r == c else f"{r}x{c}" for r, c in pairs if r == c or grid[0] != grid[1]]
    choices = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    raise UsageError(f"{source} does not record its input size and its {_size_text(grid)} attention grid fits "
                     f"{choices}; pass --imgsz with the size it was trained at (img_size= in the API)")


def load_model(source: str | Path, img_size: int | Sequence[int] | None = None, *,
               model_name: str | None = None, ska: str = "auto", features_only: bool = False,
               out_indices: Sequence[int] = DEFAULT_OUT_INDICES, bias_mode: str | None = None) -> LSNet:
    """Load an LSNet checkpoint with its architecture inferred from the weights, in eval mode.

    Args:
        source: a ``.pth``/``.pt``/``.bin``/``.safetensors`` path, or ``hf-hub:ORG/REPO[/FILE]``
            (``hf_hub:`` too). Fused state dicts (saved from ``reparameterize``) load into a fused model.
            mmdetection / mmsegmentation checkpoints (the backbone under ``backbone.``) need
            ``features_only``.
        img_size: input size (int or (H, W)); None keeps the size the checkpoint was trained at. A
            different last-stage grid resamples the attention bias tables once, here (for backbones: the
            export size; any size runs).
        model_name: if given, the variant the checkpoint must be (class count and input size may
            differ); a checkpoint of another width or depth is refused.
        ska: SKA formulation for the LS blocks.
        features_only: load the backbone (``LSNetBackbone``): the head's keys, or a detector's neck and
            heads, are ignored and reported in ``load_notes``.
        out_indices: with ``features_only``, the stages to return.
        bias_mode: with ``features_only``, the attention bias semantics: None lets the checkpoint decide
            (``matrix`` for detector checkpoints, ``table`` for classification ones); ``matrix`` on a
            classification checkpoint resizes its tables to 14x14 first, as the reference detection code's
            ``init_weights`` does.

    Returns:
        The model in eval mode, with ``checkpoint_sha256``, ``checkpoint_source`` and ``load_notes`` (what
        was assumed or changed while loading, one sentence each) attributes. Its ``recipe`` is the
        preprocessing the checkpoint records (training args, hub ``config.json``; see
        ``lsnet_deploy.recipe``), else timm's ImageNet eval recipe.

    Raises:
        CheckpointError: unreadable, unsafe, corrupt or mismatched checkpoints (one clear message).
        UsageError: ``img_size`` is None and the checkpoint neither records its training size (reference
            ``args.input_size``, hub ``config.json``) nor has an attention
            grid that only one common size gives.
    """
    path = _resolve(source)
    checkpoint = read_checkpoint(path)
    state = checkpoint.state
    if not features_only and is_detector_state(state):
        raise UsageError(f"{source} is a detection/segmentation checkpoint (an LSNet under 'backbone.' beside "
                         "its neck and heads); load it as a backbone: features_only=True "
                         "(lsnet-export --task features)")
    if features_only:
        return _load_backbone(source, path, checkpoint, img_size, ska, out_indices, bias_mode)
    config = infer_config(state)
    notes: list[str] = []
    recorded, where = _recorded_size(source, path, checkpoint)
    trained = _training_size(config, recorded, where, str(source), needed=img_size is None, notes=notes)
    if trained is not None:
        config["img_size"] = trained

    if model_name is not None:
        try:
            expected = variant_config(model_name)
        except KeyError:
            raise unknown_model_error(model_name) from None
        expected.update(num_classes=config["num_classes"], img_size=config["img_size"],
                        fused=config["fused"], distillation=config["distillation"],
                        feature_dim=config["feature_dim"])
        config = expected

    if img_size is not None:
        new_size = to_2tuple(img_size)
        if min(new_size) < 32:
            raise UsageError(f"img_size {new_size} is too small: LSNet needs at least 32x32")
        new_config = {**config, "img_size": new_size}
        old_grid, new_grid = attention_grid(config), attention_grid(new_config)
        if config["depth"][3] >= 2 and old_grid != new_grid:
            try:
                state = resize_attention_state(state, old_grid, new_grid)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise CheckpointError(f"{source}: its attention bias tables do not fit its "
                                      f"{_size_text(old_grid)} grid ({first_line(exc)}); the file is damaged") from None
            was = _size_text(trained) if trained else f"its {_size_text(old_grid)} grid"
            notes.append(f"attention bias resampled from {was} to {_size_text(new_size)}")
        config = new_config

    return _built(lambda: LSNet(**config, ska=ska), config, state, source, path, notes, checkpoint)


def _load_backbone(source: str | Path, path: Path, checkpoint: Checkpoint, img_size, ska: str,
                   out_indices: Sequence[int], bias_mode: str | None) -> LSNetBackbone:
    """``load_model(..., features_only=True)``: a detector's or a classifier's LSNet as a backbone."""
    notes: list[str] = []
    detector = is_detector_state(checkpoint.state)
    if detector:
        state, ignored = backbone_of_detector(checkpoint.state)
        where = "outside the backbone"
    else:
        state, ignored = without_head(checkpoint.state)
        where = "of the classifier head"
    config = infer_config(state)
    table_grid = attention_grid(config)
    has_attention = config["depth"][3] >= 2
    mode = check_bias_mode(bias_mode or ("matrix" if detector else "table"))
    if detector:
        size = to_2tuple(img_size) if img_size is not None else DETECTOR_EXPORT_SIZE
        if img_size is None:
            notes.append(f"detector checkpoints record no input size; {_size_text(size)} is the default "
                         "export size (any size runs in PyTorch; pass --imgsz to choose)")
    else:
        recorded, where_size = _recorded_size(source, path, checkpoint)
        trained = _training_size(config, recorded, where_size, str(source), needed=img_size is None, notes=notes)
        size = to_2tuple(img_size) if img_size is not None else trained
        if mode == "matrix" and has_attention and table_grid != DETECTION_GRID:
            state = tables_at(state, table_grid, DETECTION_GRID)
            notes.append(f"attention tables resized from {_size_text(table_grid)} to "
                         f"{_size_text(DETECTION_GRID)} (the reference detection code's init_weights)")
            table_grid = DETECTION_GRID
    if min(size) < 32:
        raise UsageError(f"img_size {size} is too small: LSNet needs at least 32x32")
    if (note := ignored_note(ignored, where)) is not None:
        notes.append(note)
    if has_attention:
        semantics = ("bicubic resize of the gathered bias matrix (reference detection code)" if mode == "matrix"
                     else "bicubic resampling of the offset table")
        notes.append(f"attention bias: {_size_text(table_grid)} tables, {semantics} for other grids")
    arch = {k: v for k, v in config.items() if k not in ("num_classes", "distillation", "feature_dim", "img_size")}
    return _built(lambda: LSNetBackbone(**arch, img_size=size, out_indices=out_indices, bias_mode=mode,
                                        attention_grid=table_grid, ska=ska), config, state, source, path, notes, checkpoint)


def _built(build, config: dict, state: dict, source, path: Path, notes: list[str], checkpoint: Checkpoint):
    """``build()`` the model a checkpoint describes, load its weights strictly, and record where they came
    from and the preprocessing recipe they record.

    Raises:
        CheckpointError: the weights describe an LSNet that cannot be built, or do not fit it.
    """
    try:
        model = build()
    except (ValueError, RuntimeError, TypeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{source}: its weights describe an LSNet that cannot be built "
                              f"(embed_dim {config['embed_dim']}, depth {config['depth']}: {first_line(exc)}); "
                              "is it an LSNet checkpoint?") from None
    load_state_dict_checked(model, state, str(source))
    model.eval()
    model.checkpoint_sha256 = file_sha256(path)
    model.checkpoint_source = str(source)
    model.variant = matching_variant(config) or CUSTOM_NAME
    model.load_notes = notes
    recipe, where = _recorded_recipe(source, path, checkpoint)
    if recipe:
        record_recipe(model, recipe, where)
    return model
