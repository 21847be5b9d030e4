"""The preprocessing recipe: how a picture becomes the model's input, and where a model's recipe came from.

``Recipe`` is the one typed recipe (the preprocessing fields of timm's ``PretrainedCfg``: mean, std,
interpolation, crop_pct, crop_mode), with its defaults in one place (``constants``: timm's ImageNet eval
recipe). A model carries its own (``LSNet.recipe``; ``pretrained_cfg`` reads it), the artifact metadata
serializes it (``metadata.build_metadata``) and ``preprocess.Preprocessing`` reads it back, so an app,
``lsnet-predict``, int8 calibration and the ``--data`` gate all preprocess the way the model was trained.

The recipe is the user's. In order of precedence it is:

1. given by the user (``lsnet-export``/``lsnet-predict`` ``--mean --std --interpolation --crop-pct
   --crop-mode``, ``apply_recipe(model, ...)``), field by field;
2. read from a card the user passes (``read_recipe_card``: a JSON file with those fields at the top level
   or under ``pretrained_cfg``, as timm's hub ``config.json`` has them);
3. recorded with the weights (``recorded_recipe``): training args saved in the checkpoint (fields named
   as timm's ``train.py`` names them, or the reference LSNet/DeiT ``main.py`` args, whose eval transform
   follows from ``input_size`` and ``finetune``), or a hub download's ``config.json``;
4. otherwise timm's ImageNet eval recipe, and ``apply_recipe`` says that it was assumed.

Torch-free: the artifact-only install imports it through ``preprocess``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .constants import DEFAULT_CROP_MODE, DEFAULT_CROP_PCT, DEFAULT_INTERPOLATION, IMAGENET_MEAN, IMAGENET_STD
from .errors import UsageError, did_you_mean

#: resize filters, by the name a recipe uses, with Pillow's constant name
INTERPOLATIONS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST", "lanczos": "LANCZOS",
                  "box": "BOX", "hamming": "HAMMING"}
#: ``center``: short side to size / crop_pct, aspect kept, centre crop; ``squash``: both sides to size /
#: crop_pct (aspect changed), centre crop (timm's crop modes; squash with crop 1 is ``Resize((H, W))``)
CROP_MODES = ("center", "squash")
#: the widest crop_pct accepted: beyond 1 the resized picture is smaller than the input and the crop pads it
MAX_CROP_PCT = 4.0
#: named mean/std pairs the flags accept instead of numbers
NAMED_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
#: the command-line flag of each recipe field (lsnet-export and lsnet-predict spell them the same)
RECIPE_FLAGS = {"mean": "--mean", "std": "--std", "interpolation": "--interpolation", "crop_pct": "--crop-pct",
                "crop_mode": "--crop-mode"}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How a picture is resized, cropped and normalized for the model (timm ``PretrainedCfg`` fields).

    Attributes:
        mean, std: per-channel statistics on the 0-1 scale, in the model's channel order.
        interpolation: resize filter (``INTERPOLATIONS``: bicubic, bilinear, ...).
        crop_pct: fraction of the resized picture kept by the centre crop (resize to floor(size / crop_pct)).
        crop_mode: ``center`` (aspect kept) or ``squash`` (both sides resized); see ``CROP_MODES``.

    Raises:
        UsageError: a value out of range or of the wrong kind (one line, with the closest valid name).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = DEFAULT_INTERPOLATION
    crop_pct: float = DEFAULT_CROP_PCT
    crop_mode: str = DEFAULT_CROP_MODE

    def __post_init__(self):
        try:
            mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        except (TypeError, ValueError):
            raise UsageError(f"mean and std must be numbers, got {self.mean!r} and {self.std!r}") from None
        if len(mean) != 3 or len(std) != 3:
            raise UsageError(f"mean and std need 3 values (one per channel), got {len(mean)} and {len(std)}")
        if not all(math.isfinite(v) for v in mean + std):
            raise UsageError(f"mean and std must be finite numbers, got {mean} and {std}")
        if min(std) <= 0:
            raise UsageError(f"std values must be positive, got {std}")
        try:
            crop_pct = float(self.crop_pct)
        except (TypeError, ValueError):
            raise UsageError(f"crop_pct must be a number, got {self.crop_pct!r}") from None
        if not 0 < crop_pct <= MAX_CROP_PCT:  # also refuses NaN
            raise UsageError(f"crop_pct must be in (0, {MAX_CROP_PCT:g}], got {self.crop_pct}")
        interpolation = str(self.interpolation).strip().lower()
        if interpolation not in INTERPOLATIONS:
            raise UsageError(f"unknown interpolation {self.interpolation!r}"
                             + (did_you_mean(interpolation, INTERPOLATIONS) or f" (choose from {', '.join(INTERPOLATIONS)})"))
        crop_mode = str(self.crop_mode).strip().lower()
        if crop_mode not in CROP_MODES:
            raise UsageError(f"crop_mode {self.crop_mode!r} is not supported"
                             + (did_you_mean(crop_mode, CROP_MODES) or f" (choose from {', '.join(CROP_MODES)})"))
        for name, value in (("mean", mean), ("std", std), ("crop_pct", crop_pct), ("interpolation", interpolation),
                            ("crop_mode", crop_mode)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_fields(cls, fields: Mapping, base: "Recipe | None" = None) -> "Recipe":
        """The recipe of ``base`` (default: timm's ImageNet eval recipe) with the recipe fields ``fields``
        holds (a ``pretrained_cfg``, decoded metadata, ...); other keys and None values are ignored."""
        given = {name: fields[name] for name in RECIPE_FIELDS if fields.get(name) is not None}
        return dataclasses.replace(base or cls(), **given)

    def recipe_fields(self) -> dict:
        """The five recipe fields, as the metadata and ``pretrained_cfg`` hold them (lists for mean/std)."""
        return {"mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation,
                "crop_pct": self.crop_pct, "crop_mode": self.crop_mode}

    def resize_for(self, input_size: Sequence[int]) -> tuple[int, int]:
        """(H, W) the picture is resized to before the centre crop: floor(side / crop_pct), as timm computes it."""
        return tuple(int(math.floor(s / self.crop_pct)) for s in input_size)

    def describe(self) -> str:
        """``bicubic, crop 0.9 (center), mean [..], std [..]``: the recipe in one phrase, for summaries."""
        return (f"{self.interpolation}, crop {self.crop_pct:g} ({self.crop_mode}), mean {list(self.mean)}, "
                f"std {list(self.std)}")


RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))
#: the fields a whole recipe needs given (the crop mode defaults to centre, as timm's does)
FLAG_FIELDS = ("mean", "std", "interpolation", "crop_pct")
#: timm's ImageNet eval recipe, what LSNet's published weights were evaluated with
DEFAULT_RECIPE = Recipe()
ASSUMED_TEXT = (f"assumed timm's ImageNet eval recipe ({DEFAULT_RECIPE.interpolation}, crop {DEFAULT_RECIPE.crop_pct:g}, "
                "ImageNet mean/std)")
GIVEN_TEXT = "given on the command line"


# ----------------------------------------------------------------------------------- parsing user values


def parse_stats(value, name: str) -> tuple[float, float, float] | None:
    """Mean/std given as 3 numbers (``0.485,0.456,0.406`` or a sequence), one number (all channels) or
    ``imagenet``; None passes through.

    Raises:
        UsageError: wrong count, not numbers, or values that look like 0-255 pixel units.
    """
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key in NAMED_STATS:
            return NAMED_STATS[key][0 if name == "mean" else 1]
        parts = [p for p in key.replace(",", " ").split() if p]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise UsageError(f"--{name} {value!r} is not a list of numbers; use e.g. 0.485,0.456,0.406 or imagenet") from None
    try:
        values = [float(v) for v in (value if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else [value])]
    except (TypeError, ValueError):
        raise UsageError(f"--{name} {value!r} is not a list of numbers; use e.g. 0.485,0.456,0.406 or imagenet") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"--{name} needs 1 or 3 values (one per channel), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--{name} {values} holds a value that is not a finite number")
    if max(abs(v) for v in values) > 1.0 + 1e-6:
        raise UsageError(f"--{name} {values} looks like 0-255 pixel units; give it on the 0-1 scale "
                         "(divide by 255), as timm and the artifact metadata do")
    return tuple(values)


def given_fields(*, mean=None, std=None, interpolation=None, crop_pct=None, crop_mode=None) -> dict:
    """The recipe fields a user gave (None: not given), parsed and checked one by one, each error naming its flag.

    Raises:
        UsageError: a bad value, in one line that names the flag (and the closest filter for a typo).
    """
    given = {"mean": parse_stats(mean, "mean"), "std": parse_stats(std, "std"),
             "interpolation": interpolation, "crop_pct": crop_pct, "crop_mode": crop_mode}
    given = {k: v for k, v in given.items() if v is not None}
    for name, value in given.items():
        try:
            Recipe(**{name: value})
        except UsageError as exc:
            text = str(exc)
            raise UsageError(f"{RECIPE_FLAGS[name]}: {text}") from None
    return given


# ----------------------------------------------------------------------------------- where a recipe is recorded


def _arg(args, name: str):
    return args.get(name) if isinstance(args, Mapping) else getattr(args, name, None)


def _has(args, name: str) -> bool:
    return name in args if isinstance(args, Mapping) else hasattr(args, name)


#: the training options of the reference LSNet (and DeiT) ``main.py`` that its eval transform depends on
REFERENCE_ARGS = ("input_size", "finetune", "train_interpolation")
#: the reference eval transform's resize: ``int(256 / 224 * input_size)`` before the centre crop
REFERENCE_CROP_PCT = 224 / 256


def recipe_from_training_args(args) -> dict:
    """The recipe fields a checkpoint's training args record (an ``argparse.Namespace`` or a dict).

    Explicit fields (``mean``, ``std``, ``interpolation``, ``crop_pct``, ``crop_mode``, as timm's
    ``train.py`` saves them; empty values mean "not set") are taken as they are. The reference LSNet/DeiT
    ``main.py`` args record no such fields, but fix its eval transform (``data/datasets.py``
    ``build_transform``): bicubic, ImageNet mean/std, and a resize to ``int(256 / 224 * input_size)``
    with a centre crop, or, for a fine-tune (``finetune`` set), a squash resize to the input size.

    Returns:
        The recorded fields (possibly partial), or ``{}`` when the args record none.
    """
    if args is None:
        return {}
    found = {}
    for name in RECIPE_FIELDS:
        value = _arg(args, name)
        if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
            continue
        found[name] = tuple(value) if isinstance(value, list) else value
    if found:
        return found
    if all(_has(args, name) for name in REFERENCE_ARGS):
        size = _arg(args, "input_size")
        if _arg(args, "finetune"):
            return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bicubic", "crop_pct": 1.0,
                    "crop_mode": "squash"}
        small = isinstance(size, int) and size <= 32  # no resize at all there: crop 1 keeps a 32-px picture as is
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bicubic",
                "crop_pct": 1.0 if small else REFERENCE_CROP_PCT, "crop_mode": "center"}
    return {}


def recipe_from_config(config: Mapping) -> dict:
    """The recipe fields of a timm-style config (hub ``config.json``: under ``pretrained_cfg`` or at the top)."""
    if not isinstance(config, Mapping):
        return {}
    nested = config.get("pretrained_cfg")
    source = nested if isinstance(nested, Mapping) else config
    return {name: source[name] for name in RECIPE_FIELDS if source.get(name) is not None}


def read_recipe_card(path: str | Path) -> dict:
    """The recipe fields of a card the user passes: a JSON file with ``mean``, ``std``, ``interpolation``,
    ``crop_pct``, ``crop_mode`` at the top level or under ``pretrained_cfg`` (a timm ``config.json``).

    Raises:
        UsageError: the file cannot be read, is not JSON, or records no recipe field; a bad value.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the recipe card {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"the recipe card {path} is not JSON ({str(exc).splitlines()[0]})") from None
    fields = recipe_from_config(data) if isinstance(data, dict) else {}
    if not fields:
        raise UsageError(f"the recipe card {path} records no preprocessing field ({', '.join(RECIPE_FIELDS)}, "
                         "at the top level or under pretrained_cfg)")
    try:
        Recipe.from_fields(fields)
    except UsageError as exc:
        raise UsageError(f"the recipe card {path}: {exc}") from None
    return fields


# ----------------------------------------------------------------------------------- a model's recipe


def recipe_of(model) -> Recipe:
    """The recipe a model carries: its ``recipe`` attribute, else its ``pretrained_cfg``'s fields, else the default."""
    recipe = getattr(model, "recipe", None)
    if isinstance(recipe, Recipe):
        return recipe
    cfg = getattr(model, "pretrained_cfg", None)
    return Recipe.from_fields(cfg) if isinstance(cfg, Mapping) else DEFAULT_RECIPE


def record_recipe(model, fields: Mapping, where: str) -> None:
    """Set what the weights record as ``model``'s recipe (``load_model`` calls it): the fields, over the
    default recipe, and where they were found (``recorded_recipe``, read by ``apply_recipe``).

    A recorded value that is not a valid recipe value is not used: the model keeps the default recipe,
    ``apply_recipe`` then says so, and the reason is added to ``model.load_notes``.
    """
    fields = {k: fields[k] for k in RECIPE_FIELDS if fields.get(k) is not None}
    if not fields:
        return
    try:
        model.recipe = Recipe.from_fields(fields)
    except UsageError as exc:
        notes = getattr(model, "load_notes", None)
        if isinstance(notes, list):
            notes.append(f"{where} records a preprocessing recipe that is not valid ({exc}); ignored it")
        return
    model.recorded_recipe = (dict(fields), where)


def apply_recipe(model, *, mean=None, std=None, interpolation=None, crop_pct=None, crop_mode=None,
                 card: str | Path | None = None) -> str:
    """Validate and set ``model``'s preprocessing recipe; say where it came from.

    Values given here win field by field over a ``card``'s, which win over what the checkpoint records
    (``load_model`` keeps that in ``model.recorded_recipe``); fields nothing gives are timm's ImageNet eval
    recipe. The flags of ``lsnet-export`` and ``lsnet-predict`` pass their values straight through: mean/std
    as ``0.485,0.456,0.406``, one number, or ``imagenet``.

    Args:
        model: the LSNet (or anything with a settable ``recipe`` attribute).
        mean, std, interpolation, crop_pct, crop_mode: the user's values; None for "not given".
        card: a recipe card (``read_recipe_card``).

    Returns:
        One line naming where the recipe came from: ``given on the command line``, ``from the checkpoint's
        training args`` (or another recorded source), or that timm's ImageNet eval recipe was assumed and
        which flags set it; mixed sources are named field by field.

    Raises:
        UsageError: a bad value (one line naming the flag; the closest filter name for a typo), an unreadable
            card.
    """
    given = given_fields(mean=mean, std=std, interpolation=interpolation, crop_pct=crop_pct, crop_mode=crop_mode)
    layers: list[tuple[dict, str]] = []
    recorded = getattr(model, "recorded_recipe", None)
    if recorded:
        layers.append((dict(recorded[0]), f"from {recorded[1]}"))
    if card is not None:
        layers.append((read_recipe_card(card), f"from the recipe card {Path(card).name}"))
    layers.append((given, GIVEN_TEXT))
    origin: dict[str, str] = {}
    values: dict = {}
    for fields, text in layers:
        for name, value in fields.items():
            values[name], origin[name] = value, text
    model.recipe = Recipe.from_fields(values)
    model.recipe_origin = describe_origin(origin)
    return model.recipe_origin


def recipe_origin(model) -> str:
    """Where ``model``'s recipe came from, in ``apply_recipe``'s words (without changing anything)."""
    origin = getattr(model, "recipe_origin", None)
    if origin:
        return origin
    recorded = getattr(model, "recorded_recipe", None)
    return describe_origin({name: f"from {recorded[1]}" for name in recorded[0]} if recorded else {})


def describe_origin(origin: Mapping[str, str]) -> str:
    """The one line ``apply_recipe`` returns, from the source of each field that something set."""
    if not origin:
        return f"{ASSUMED_TEXT}: nothing records the recipe; pass {'/'.join(RECIPE_FLAGS[n] for n in FLAG_FIELDS)}"
    sources: dict[str, list[str]] = {}
    for name in RECIPE_FIELDS:
        if name in origin:
            sources.setdefault(origin[name], []).append(name)
    # the crop mode is centre unless something says otherwise: four flags given make a whole recipe
    rest = [name for name in FLAG_FIELDS if name not in origin]
    if len(sources) == 1 and not rest:
        return next(iter(sources))
    parts = [f"{', '.join(names)} {text}" for text, names in sources.items()]
    if rest:
        parts.append(f"{', '.join(rest)} assumed (timm's ImageNet eval recipe)")
    return "; ".join(parts)
