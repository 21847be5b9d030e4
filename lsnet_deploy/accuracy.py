"""Accuracy of a model or an exported artifact on an ImageFolder of labelled pictures.

``evaluate(model_or_artifact, data_dir)`` runs every picture through ``Predictor`` (the artifact's own
preprocessing recipe, or the PyTorch model's ``pretrained_cfg``) and returns an ``EvaluationReport``
with top-1 / top-5 accuracy, the pictures that could not be read, optional per-class accuracy and the
top-1 agreement with a reference model.

Class indices: the sorted class-folder names, as torchvision's ``ImageFolder`` numbers them; when the
model carries class labels (artifact metadata ``labels``), folders are matched to labels by name instead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .constants import IMAGE_SUFFIXES
from .errors import UsageError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


@dataclass
class EvaluationReport:
    """What ``evaluate`` measured.

    Attributes:
        top1, top5: accuracy in percent over the readable pictures.
        count: pictures evaluated (readable ones).
        correct, correct_top5: pictures whose class was first / among the first five.
        skipped: (path, reason) of pictures that could not be read; they count in no accuracy.
        per_class: class name -> {"count", "top1"} (top1 in percent).
        agreement: top-1 agreement in percent with the reference model (None without one).
        seconds: wall time of the evaluation, including reading the pictures.
        model: what was evaluated (path or class name).
        data_dir: the ImageFolder evaluated.
    """

    top1: float
    top5: float
    count: int
    correct: int
    correct_top5: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    per_class: dict[str, dict] = field(default_factory=dict)
    agreement: float | None = None
    seconds: float = 0.0
    model: str = ""
    data_dir: str = ""

    @property
    def unreadable(self) -> int:
        """Number of pictures that could not be read."""
        return len(self.skipped)

    def to_dict(self) -> dict:
        """Plain JSON-serializable fields (``unreadable`` included)."""
        data = asdict(self)
        data["skipped"] = [list(item) for item in self.skipped]
        data["unreadable"] = self.unreadable
        return data

    def summary(self) -> str:
        """One line: accuracy, count, unreadable pictures, agreement and time."""
        parts = [f"{self.model}: top-1 {self.top1:.2f}%, top-5 {self.top5:.2f}% on {self.count} images"]
        if self.skipped:
            parts.append(f"{self.unreadable} unreadable skipped")
        if self.agreement is not None:
            parts.append(f"top-1 agreement with reference {self.agreement:.2f}%")
        parts.append(f"{self.seconds:.1f} s")
        return ", ".join(parts)


def class_folders(data_dir: str | Path) -> list[Path]:
    """The class folders of an ImageFolder, sorted by name (hidden folders ignored).

    Raises:
        UsageError: ``data_dir`` is missing, not a folder, or has no class folders.
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise UsageError(f"{root}: no such folder; pass an ImageFolder (one sub-folder of images per class)")
    if not root.is_dir():
        raise UsageError(f"{root} is a file; pass an ImageFolder (one sub-folder of images per class)")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not folders:
        raise UsageError(f"{root} has no class folders; an ImageFolder holds one sub-folder of images per class")
    return folders


def list_images(data_dir: str | Path, *, limit: int | None = None,
                labels: Sequence[str] | None = None) -> list[tuple[Path, int]]:
    """(path, class index) of every picture in an ImageFolder, in sorted (deterministic) order.

    Args:
        data_dir: the ImageFolder.
        limit: keep N pictures spread evenly over the sorted list (every class stays represented);
            None keeps all.
        labels: the model's class names; folders are then matched to labels by name.

    Raises:
        UsageError: no class folders, no pictures, or a folder name that is not among ``labels``.
    """
    folders = class_folders(data_dir)
    if labels is not None:
        index_of = {str(name): i for i, name in enumerate(labels)}
        unknown = [f.name for f in folders if f.name not in index_of]
        if unknown:
            shown = ", ".join(repr(str(x)) for x in list(labels)[:5]) + (", ..." if len(labels) > 5 else "")
            raise UsageError(f"class folder {unknown[0]!r} in {data_dir} is not one of the model's {len(labels)} "
                             f"labels ({shown}); rename the folder to its label"
                             + (f" ({len(unknown)} folders do not match)" if len(unknown) > 1 else ""))
        indices = [index_of[f.name] for f in folders]
    else:
        indices = list(range(len(folders)))
    samples = [(path, index) for folder, index in zip(folders, indices)
               for path in sorted(folder.iterdir(), key=lambda p: p.name)
               if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]
    if not samples:
        raise UsageError(f"{data_dir} has {len(folders)} class folders but no pictures in them "
                         f"(looked for {', '.join(IMAGE_SUFFIXES[:5])}, ...)")
    if limit is not None:
        if limit < 1:
            raise UsageError(f"limit must be at least 1, got {limit}")
        if limit < len(samples):
            keep = np.linspace(0, len(samples) - 1, limit).round().astype(np.int64)
            samples = [samples[i] for i in keep]
    return samples


def _checkpoint_input_size(path: Path) -> int | tuple[int, int] | None:
    """``args.input_size`` of a reference-format training checkpoint (None when it has none)."""
    import argparse

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable here: the Predictor reports the checkpoint's problem in its own words
        return None
    size = getattr(obj.get("args"), "input_size", None) if isinstance(obj, dict) else None
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(size, (list, tuple)) and len(size) in (2, 3) and all(isinstance(s, int) for s in size):
        return tuple(size[-2:])
    return None


def _open_predictor(model_or_artifact, options: dict):
    from .predict import Predictor

    options = dict(options)
    if isinstance(model_or_artifact, (str, Path)):
        path = Path(model_or_artifact)
        if path.suffix.lower() in CHECKPOINT_SUFFIXES and options.get("imgsz") is None and path.is_file():
            # the weights alone cannot tell 96 from 128 px (same last-stage grid): the training args can
            options["imgsz"] = _checkpoint_input_size(path)
    elif options.get("labels") is None and getattr(model_or_artifact, "labels", None):
        options["labels"] = list(model_or_artifact.labels)
    return Predictor(model_or_artifact, **options)


def _name(model_or_artifact) -> str:
    if isinstance(model_or_artifact, (str, Path)):
        return Path(model_or_artifact).name
    return type(model_or_artifact).__name__


def evaluate(model_or_artifact, data_dir: str | Path, *, batch_size: int = 50, limit: int | None = None,
             progress: Callable[[int, int], None] | None = None, reference=None,
             per_class: bool = True, **predictor_options) -> EvaluationReport:
    """Top-1 / top-5 accuracy of a model or artifact on an ImageFolder.

    Args:
        model_or_artifact: an ``nn.Module`` (run in PyTorch with its ``pretrained_cfg`` preprocessing), an
            exported artifact or a checkpoint path (run by ``Predictor`` with the recipe of its metadata;
            a training checkpoint's ``args.input_size`` sets the input size).
        data_dir: ImageFolder: one sub-folder of pictures per class. Sorted folder names are the class
            indices, unless the model carries labels: then folders are matched to labels by name.
        batch_size: pictures per inference call.
        limit: evaluate N pictures spread evenly over the sorted list (deterministic); None: all.
        progress: called as ``progress(done, total)`` after every batch.
        reference: another model or artifact; the report's ``agreement`` is the percentage of pictures
            on which both predict the same class.
        per_class: fill ``per_class`` with each class's count and top-1.
        **predictor_options: passed to ``Predictor`` (``runtime``, ``threads``, ``imgsz``, ``labels``, ...).

    Returns:
        The EvaluationReport.

    Raises:
        UsageError: bad folder layout, a folder that matches no label, more classes than the model
            outputs, or no readable picture at all.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    predictor = _open_predictor(model_or_artifact, predictor_options)
    ref_predictor = None
    try:
        labels = predictor.labels
        samples = list_images(data_dir, limit=limit, labels=labels)
        folders = class_folders(data_dir)
        if reference is not None:
            # the reference brings its own recipe and runtime; only the thread count is shared
            ref_predictor = _open_predictor(reference, {k: v for k, v in predictor_options.items() if k == "threads"})
        share_inputs = ref_predictor is not None and ref_predictor.recipe == predictor.recipe

        top5_hits, ref_top1, targets, paths_seen, skipped = [], [], [], [], []
        total, done = len(samples), 0
        for start in range(0, total, batch_size):
            chunk = samples[start:start + batch_size]
            arrays, ref_arrays, chunk_targets = [], [], []
            for path, target in chunk:
                try:
                    arrays.append(predictor.preprocess(path))
                    if ref_predictor is not None and not share_inputs:
                        ref_arrays.append(ref_predictor.preprocess(path))
                except UsageError as exc:
                    skipped.append((str(path), str(exc)))
                    continue
                chunk_targets.append(target)
                paths_seen.append(path)
            done += len(chunk)
            if arrays:
                logits = predictor.logits(np.stack(arrays))
                classes = logits.shape[1]
                if labels is None and len(folders) > classes:
                    raise UsageError(f"{data_dir} has {len(folders)} class folders but the model outputs "
                                     f"{classes} classes; evaluate on a folder of its classes")
                order = np.argsort(-logits, axis=1, kind="stable")[:, :5]
                top5_hits.append(order)
                targets.extend(chunk_targets)
                if ref_predictor is not None:
                    ref_logits = ref_predictor.logits(np.stack(arrays if share_inputs else ref_arrays))
                    ref_top1.append(np.argmax(ref_logits, axis=1))
            if progress is not None:
                progress(done, total)
        if not targets:
            first = skipped[0][1] if skipped else "no pictures"
            raise UsageError(f"none of the {total} pictures in {data_dir} could be read (first: {first})")
        best = np.concatenate(top5_hits)
        truth = np.asarray(targets)
        hit1 = best[:, 0] == truth
        hit5 = (best == truth[:, None]).any(axis=1)
        agreement = None
        if ref_predictor is not None:
            agreement = 100.0 * float(np.mean(np.concatenate(ref_top1) == best[:, 0]))
        classes_report = {}
        if per_class:
            names = list(labels) if labels is not None else [f.name for f in folders]
            for index in sorted(set(targets)):
                mask = truth == index
                classes_report[names[index]] = {"count": int(mask.sum()), "top1": 100.0 * float(hit1[mask].mean())}
        return EvaluationReport(
            top1=100.0 * float(hit1.mean()), top5=100.0 * float(hit5.mean()), count=int(len(truth)),
            correct=int(hit1.sum()), correct_top5=int(hit5.sum()), skipped=skipped, per_class=classes_report,
            agreement=agreement, seconds=time.perf_counter() - started, model=_name(model_or_artifact),
            data_dir=str(data_dir))
    finally:
        predictor.close()
        if ref_predictor is not None:
            ref_predictor.close()
