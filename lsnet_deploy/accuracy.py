"""Accuracy of a model or an exported artifact on an ImageFolder of labelled pictures.

``evaluate(model_or_artifact, data_dir)`` runs every picture through ``Predictor`` (the artifact's own
preprocessing recipe, or the PyTorch model's ``recipe``) and returns an ``EvaluationReport``
with top-1 / top-5 accuracy, the pictures that could not be read, optional per-class accuracy and the
top-1 agreement with a reference model.

Class indices (``ClassMapping``, one per dataset, shared by every scorer): folders are matched to the
model's labels by name when labels are known (``--labels``, artifact metadata); without labels the sorted
folder names are the class indices, as torchvision's ``ImageFolder`` numbers them, and only when the folders
are exactly the model's classes. Anything else is refused with the mismatch named, unless ``--class-map``
maps it.
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .artifact_metadata import read_artifact_metadata
from .constants import IMAGE_SUFFIXES, is_checkpoint_source
from .errors import LsnetDeployError, UsageError, did_you_mean, first_line
from .predict import Predictor


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
        classes: the folder -> class mapping the pictures were scored with.
        predicted: the top-1 class of each evaluated picture, in ``evaluated`` order (not in ``to_dict``).
        evaluated: the pictures evaluated (readable ones), in order (not in ``to_dict``).
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
    classes: "ClassMapping | None" = None
    predicted: tuple[int, ...] = ()
    evaluated: tuple[str, ...] = ()

    @property
    def unreadable(self) -> int:
        """Number of pictures that could not be read."""
        return len(self.skipped)

    def to_dict(self) -> dict:
        """Plain JSON-serializable fields (``unreadable`` included)."""
        data = asdict(self)
        data["skipped"] = [list(item) for item in self.skipped]
        data["unreadable"] = self.unreadable
        data["classes"] = self.classes.to_dict() if self.classes is not None else None
        del data["predicted"], data["evaluated"]
        return data

    def summary(self) -> str:
        """One line: accuracy, count, unreadable pictures, agreement and time."""
        parts = [f"{self.model}: top-1 {self.top1:.2f}%, top-5 {self.top5:.2f}% on {self.count} images"]
        if self.skipped:
            parts.append(f"{self.unreadable} unreadable skipped")
        if self.agreement is not None:
            parts.append(f"top-1 agreement with reference {self.agreement:.2f}%")
        parts.append(f"{self.seconds:.1f} s")
        line = ", ".join(parts)
        return line + (f"; classes {self.classes.describe()}" if self.classes is not None else "")


def agreement(report: EvaluationReport, reference: EvaluationReport) -> float:
    """Top-1 agreement in percent between two evaluations of the same pictures (say, each candidate of a
    benchmark against one evaluation of the checkpoint, instead of re-running it for every candidate).

    Raises:
        UsageError: the two evaluated different pictures (another folder, limit or unreadable set).
    """
    if report.evaluated != reference.evaluated or not report.evaluated:
        raise UsageError(f"{report.model} and {reference.model} were evaluated on different pictures "
                         f"({report.count} and {reference.count}); evaluate both on the same folder and limit")
    same = np.asarray(report.predicted) == np.asarray(reference.predicted)
    return 100.0 * float(same.mean())


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


#: the flag users map folders to classes with (named in every mismatch message)
CLASS_MAP_FLAG = "--class-map"
#: the help of ``--class-map`` (lsnet-export and lsnet-bench take it alike)
CLASS_MAP_HELP = ("Map --data class folders to classes where their names do not say it: FOLDER=CLASS,... "
                  "(CLASS a label or an index, e.g. aeroplane=airplane or cat=3), or a file of such lines or a "
                  "JSON object. Other folders are matched to the labels by name, or are the sorted classes.")
#: rules a ClassMapping can follow, as recorded in reports
RULE_LABELS, RULE_SORTED, RULE_EXPLICIT = "label names", "sorted folders", "class map"
#: folders listed in a mapping's JSON record; beyond this many only the rule and the count are recorded
#: (the rule and the folder names reproduce the map; a thousand entries in every result line help nobody)
MAP_RECORDED_MAX = 100
#: folder -> class entries shown in a one-line description
MAP_SHOWN = 6


@dataclass(frozen=True)
class ClassMapping:
    """Which class index each class folder of an ImageFolder stands for, and by which rule.

    Every scorer of one dataset (the PyTorch model, each artifact) uses the same mapping, so their
    accuracies are comparable.

    Attributes:
        folders: folder name -> class index, in sorted folder order.
        rule: ``"label names"`` (folders matched to the model's labels), ``"sorted folders"`` (the n-th
            sorted folder is class n, as torchvision's ImageFolder numbers them) or ``"class map"``
            (``--class-map`` entries, the remaining folders by label name).
        labels: the model's class names when known.
        explicit: the user's ``--class-map`` entries (folder -> class index).
    """

    folders: dict[str, int]
    rule: str
    labels: tuple[str, ...] | None = None
    explicit: dict[str, int] = field(default_factory=dict)

    def name_of(self, index: int) -> str:
        """The name of class ``index``: its label when known, else the folder mapped to it."""
        if self.labels is not None:
            return self.labels[index]
        return next(folder for folder, i in self.folders.items() if i == index)

    def check_outputs(self, classes: int, data_dir) -> None:
        """Refuse a mapping that does not fit a model with ``classes`` outputs (known only once it ran).

        Raises:
            UsageError: more folders than classes under the sorted rule, fewer folders than classes
                without labels, or a class index beyond the outputs.
        """
        if self.rule == RULE_SORTED:
            _check_sorted_count(list(self.folders), classes, data_dir)
        beyond = [(folder, index) for folder, index in self.folders.items() if index >= classes]
        if beyond:
            folder, index = beyond[0]
            raise UsageError(f"class folder {folder!r} of {data_dir} is mapped to class {index}, but the model "
                             f"outputs {classes} classes (0-{classes - 1}); fix {CLASS_MAP_FLAG}")

    def describe(self) -> str:
        """One line: the rule and the first folders' classes (``cat->3, dog->5``)."""
        def entry(folder: str, index: int) -> str:
            named = self.labels[index] if self.labels is not None and index < len(self.labels) else None
            return f"{folder}->{index}" + (f" ({named})" if named is not None and named != folder else "")

        items = list(self.folders.items())
        shown = ", ".join(entry(f, i) for f, i in items[:MAP_SHOWN])
        more = f", ... ({len(items)} folders)" if len(items) > MAP_SHOWN else ""
        return f"by {self.rule}: {shown}{more}"

    def to_dict(self) -> dict:
        """JSON-ready record: the rule, the folder count, the map (up to ``MAP_RECORDED_MAX`` folders) and
        the explicit ``--class-map`` entries."""
        record = {"rule": self.rule, "summary": self.describe(), "folders": len(self.folders),
                  "map": dict(self.folders) if len(self.folders) <= MAP_RECORDED_MAX else None}
        if self.explicit:
            record["class_map"] = dict(self.explicit)
        return record


def parse_class_map(spec) -> dict[str, int | str]:
    """The entries of a ``--class-map``: folder -> class (an index, or a label name).

    Args:
        spec: a mapping, inline text ``aeroplane=airplane,car=automobile`` (``cat=3`` for indices), or a
            file: a JSON object ``{"folder": class}``, or one ``folder=class`` (or tab-separated) per line
            (``n01440764=tench, Tinca tinca``: a line's class may hold commas).

    Raises:
        UsageError: an unreadable file, a malformed entry, or a folder given twice.
    """
    if isinstance(spec, Mapping):
        pairs = [(str(k), v) for k, v in spec.items()]
    else:
        text = str(spec)
        path = Path(text).expanduser()
        lines = [text]
        if path.is_file():
            try:
                content = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {CLASS_MAP_FLAG} file {path}: {first_line(exc)}") from None
            if content.strip().startswith("{"):
                try:
                    data = json.loads(content)
                except (ValueError, RecursionError) as exc:
                    raise UsageError(f"{CLASS_MAP_FLAG} file {path} is not valid JSON: {first_line(exc)}") from None
                return parse_class_map(data)
            lines = content.splitlines()
        elif "=" not in text:
            raise UsageError(f"{CLASS_MAP_FLAG} {text!r} is neither a file nor FOLDER=CLASS entries; e.g. "
                             f"{CLASS_MAP_FLAG} aeroplane=airplane,car=automobile (or cat=3 by class index)")
        # a file holds one entry a line (labels may hold commas: 'tench, Tinca tinca'); inline entries are
        # separated by commas
        items = lines if path.is_file() else text.split(",")
        pairs = []
        for item in items:
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            folder, sep, cls = item.partition("=") if "=" in item else item.partition("\t")
            if not sep or not folder.strip() or not cls.strip():
                raise UsageError(f"{CLASS_MAP_FLAG} entry {item!r} is not FOLDER=CLASS")
            pairs.append((folder.strip(), cls.strip()))
    entries: dict[str, int | str] = {}
    for folder, cls in pairs:
        if folder in entries:
            raise UsageError(f"{CLASS_MAP_FLAG} maps folder {folder!r} twice")
        if isinstance(cls, bool) or not isinstance(cls, (int, str)):
            raise UsageError(f"{CLASS_MAP_FLAG} maps {folder!r} to {cls!r}; give a class index or a label")
        entries[folder] = int(cls) if isinstance(cls, str) and cls.lstrip("-").isdigit() else cls
    if not entries:
        raise UsageError(f"{CLASS_MAP_FLAG} {spec} has no FOLDER=CLASS entries")
    return entries


def shared_labels(sources: Sequence) -> list[str] | None:
    """The class labels that several scorers of one dataset share: those of the first source carrying
    labels (an artifact's metadata, a model's ``labels`` attribute); None when none does. Checkpoints
    carry none.

    Args:
        sources: artifact paths, checkpoint paths or ``nn.Module`` objects.

    Raises:
        UsageError: two sources carry different labels (their scores would not be comparable).
    """
    found: list[tuple[str, list[str]]] = []
    for source in sources:
        if isinstance(source, (str, Path)):
            if is_checkpoint_source(str(source)) or not Path(source).exists():
                continue
            try:
                labels = read_artifact_metadata(source).fields.get("labels")
            except LsnetDeployError:  # unreadable metadata: that candidate's own evaluation reports it
                continue
        else:
            labels = getattr(source, "labels", None)
        if isinstance(labels, (list, tuple)) and labels:
            found.append((_name(source), [str(x) for x in labels]))
    for name, labels in found[1:]:
        if labels != found[0][1]:
            raise UsageError(f"{found[0][0]} and {name} carry different class labels, so their accuracies on "
                             "one folder are not comparable; evaluate them separately")
    return found[0][1] if found else None


def resolve_class_mapping(data_dir: str | Path, *, labels: Sequence[str] | None = None,
                          num_classes: int | None = None, class_map=None) -> ClassMapping:
    """The one folder -> class mapping every scorer of ``data_dir`` uses.

    With labels, folders are matched to labels by name; without, the n-th sorted folder is class n, and
    only when the folders are exactly the model's classes. ``class_map`` entries come first.

    Args:
        data_dir: the ImageFolder.
        labels: the model's class names (``--labels``, artifact metadata), None when unknown.
        num_classes: the model's class count, None when unknown (checked later by ``check_outputs``).
        class_map: explicit entries, anything ``parse_class_map`` takes.

    Raises:
        UsageError: a folder that matches no label (a case difference named as such), a folder naming a
            repeated label, fewer folders than classes without labels, more folders than classes, or a
            ``class_map`` entry that names no folder or no class.
    """
    folders = [f.name for f in class_folders(data_dir)]
    labels = tuple(str(x) for x in labels) if labels is not None else None
    explicit = {}
    if class_map is not None:
        entries = parse_class_map(class_map)
        stray = [folder for folder in entries if folder not in folders]
        if stray:
            raise UsageError(f"{CLASS_MAP_FLAG} maps {stray[0]!r}, which is not a class folder of {data_dir} "
                             f"(its folders: {_shown(folders)})" + did_you_mean(stray[0], folders))
        explicit = {folder: _class_index(folder, cls, labels, num_classes) for folder, cls in entries.items()}
    if labels is None and not explicit:
        if num_classes is not None:
            _check_sorted_count(folders, num_classes, data_dir)
        return ClassMapping({folder: i for i, folder in enumerate(folders)}, RULE_SORTED)
    rest = [folder for folder in folders if folder not in explicit]
    if rest and labels is None:
        raise UsageError(f"class folder {rest[0]!r} of {data_dir} is not in {CLASS_MAP_FLAG} and the model has "
                         f"no labels to match it by name; map every folder, or pass --labels")
    index = {**explicit, **{folder: _label_index(folder, labels, data_dir, rest) for folder in rest}}
    return ClassMapping({folder: index[folder] for folder in folders}, RULE_EXPLICIT if explicit else RULE_LABELS,
                        labels, explicit)


def _shown(names: Sequence[str], count: int = 5) -> str:
    return ", ".join(repr(str(x)) for x in list(names)[:count]) + (", ..." if len(names) > count else "")


def _check_sorted_count(folders: list[str], classes: int, data_dir) -> None:
    if len(folders) > classes:
        raise UsageError(f"{data_dir} has {len(folders)} class folders but the model outputs {classes} classes; "
                         "evaluate on a folder of its classes")
    if len(folders) < classes:
        example = ",".join(f"{f}=INDEX" for f in folders[:2]) + (",..." if len(folders) > 2 else "")
        raise UsageError(f"{data_dir} has {len(folders)} class folders ({_shown(folders, 3)}) but the model has "
                         f"{classes} classes and no labels, so which classes they are is unknown (sorted order "
                         f"would guess 0-{len(folders) - 1}); pass --labels FILE to match folders by name, or "
                         f"{CLASS_MAP_FLAG} {example}")


def _class_index(folder: str, cls: int | str, labels: tuple[str, ...] | None, num_classes: int | None) -> int:
    """The class index a ``--class-map`` entry names."""
    count = num_classes if num_classes is not None else len(labels) if labels is not None else None
    if isinstance(cls, int):
        if cls < 0 or (count is not None and cls >= count):
            raise UsageError(f"{CLASS_MAP_FLAG} maps {folder!r} to class {cls}, but the model's classes are "
                             f"0-{count - 1}" if count else f"{CLASS_MAP_FLAG} maps {folder!r} to class {cls}")
        return cls
    if labels is None:
        raise UsageError(f"{CLASS_MAP_FLAG} maps {folder!r} to {cls!r}, but the model has no labels; give a "
                         "class index, or pass --labels")
    indices = [i for i, name in enumerate(labels) if name == cls]
    if not indices:
        raise UsageError(f"{CLASS_MAP_FLAG} maps {folder!r} to {cls!r}, which is not one of the model's "
                         f"{len(labels)} labels ({_shown(labels)})" + did_you_mean(cls, labels))
    if len(indices) > 1:
        raise UsageError(f"{CLASS_MAP_FLAG} maps {folder!r} to {cls!r}, a label of {len(indices)} classes "
                         f"({', '.join(map(str, indices))}); map it by index: {folder}={indices[0]}")
    return indices[0]


def _label_index(folder: str, labels: tuple[str, ...], data_dir, unmatched_candidates: list[str]) -> int:
    """The class whose label is ``folder``'s name; refuse a mismatch, naming it."""
    indices = [i for i, name in enumerate(labels) if name == folder]
    if len(indices) == 1:
        return indices[0]
    if len(indices) > 1:
        raise UsageError(f"class folder {folder!r} of {data_dir} names {len(indices)} classes "
                         f"({', '.join(map(str, indices))}: the labels repeat it); map it to one: "
                         f"{CLASS_MAP_FLAG} {folder}={indices[0]}")
    unmatched = [f for f in unmatched_candidates if f not in labels]
    more = f" ({len(unmatched)} folders do not match: {_shown(unmatched)})" if len(unmatched) > 1 else ""
    folded = [name for name in labels if name.casefold() == folder.casefold()]
    if folded:
        raise UsageError(f"class folder {folder!r} of {data_dir} differs from the label {folded[0]!r} only in "
                         f"case; rename the folder to {folded[0]!r} or map it: {CLASS_MAP_FLAG} "
                         f"{folder}={folded[0]}{more}")
    close = difflib.get_close_matches(folder, labels, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}? Rename" if close else "; rename"
    fix = f"{CLASS_MAP_FLAG} {folder}={close[0] if close else 'LABEL'}"
    raise UsageError(f"class folder {folder!r} of {data_dir} is not one of the model's {len(labels)} labels "
                     f"({_shown(labels)}){hint} the folder to its label or map it: {fix}{more}")


def list_images(data_dir: str | Path, *, limit: int | None = None, labels: Sequence[str] | None = None,
                classes: ClassMapping | None = None) -> list[tuple[Path, int]]:
    """(path, class index) of every picture in an ImageFolder, in sorted (deterministic) order.

    Args:
        data_dir: the ImageFolder.
        limit: keep N pictures spread evenly over the sorted list (every class stays represented);
            None keeps all.
        labels: the model's class names; folders are then matched to labels by name (ignored when
            ``classes`` is given).
        classes: the mapping to use (``resolve_class_mapping``); None resolves one from ``labels``.

    Raises:
        UsageError: no class folders, no pictures, or a folder the mapping refuses.
    """
    mapping = classes if classes is not None else resolve_class_mapping(data_dir, labels=labels)
    folders = class_folders(data_dir)
    samples = [(path, mapping.folders[folder.name]) for folder in folders
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


def _open_predictor(model_or_artifact, options: dict):
    options = dict(options)
    # a checkpoint brings its training input size and recipe itself (load_model reads its training args)
    if not isinstance(model_or_artifact, (str, Path)) and options.get("labels") is None \
            and getattr(model_or_artifact, "labels", None):
        options["labels"] = list(model_or_artifact.labels)
    return Predictor(model_or_artifact, **options)


def _name(model_or_artifact) -> str:
    if isinstance(model_or_artifact, (str, Path)):
        return Path(model_or_artifact).name
    return type(model_or_artifact).__name__


def evaluate(model_or_artifact, data_dir: str | Path, *, batch_size: int = 50, limit: int | None = None,
             progress: Callable[[int, int], None] | None = None, reference=None,
             reference_options: Mapping | None = None, per_class: bool = True,
             classes: ClassMapping | None = None, class_map=None, **predictor_options) -> EvaluationReport:
    """Top-1 / top-5 accuracy of a model or artifact on an ImageFolder.

    Args:
        model_or_artifact: an ``nn.Module`` (run in PyTorch with its own recipe, ``recipe.recipe_of``), an
            exported artifact (run by ``Predictor`` with the recipe of its metadata) or a checkpoint path
            (loaded at the input size and with the recipe its training args record).
        data_dir: ImageFolder: one sub-folder of pictures per class (see ``resolve_class_mapping``).
        batch_size: pictures per inference call.
        limit: evaluate N pictures spread evenly over the sorted list (deterministic); None: all.
        progress: called as ``progress(done, total)`` after every batch.
        reference: another model or artifact; the report's ``agreement`` is the percentage of pictures
            on which both predict the same class.
        reference_options: ``Predictor`` options of the reference (``imgsz`` for a checkpoint, ...);
            ``threads`` is shared with the evaluated model unless given here.
        per_class: fill ``per_class`` with each class's count and top-1.
        classes: the folder -> class mapping to score with: pass the ``classes`` of an earlier report so
            that every scorer of one dataset shares it. None resolves it here from the model's labels
            (``labels=`` or its metadata) and ``class_map``.
        class_map: explicit folder -> class entries (``parse_class_map``); only when ``classes`` is None.
        **predictor_options: passed to ``Predictor`` (``runtime``, ``threads``, ``imgsz``, ``labels``, ...).

    Returns:
        The EvaluationReport (its ``classes`` is the mapping used).

    Raises:
        UsageError: bad folder layout, folders the mapping refuses (see ``resolve_class_mapping``), more
            classes than the model outputs, or no readable picture at all.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    if classes is not None and class_map is not None:
        raise UsageError("pass either classes (a resolved mapping) or class_map, not both")
    started = time.perf_counter()
    predictor = _open_predictor(model_or_artifact, predictor_options)
    ref_predictor = None
    try:
        declared = predictor.metadata.get("num_classes")
        mapping = classes if classes is not None else resolve_class_mapping(
            data_dir, labels=predictor.labels, class_map=class_map,
            num_classes=declared if isinstance(declared, int) and declared > 0 else None)
        samples = list_images(data_dir, limit=limit, classes=mapping)
        if reference is not None:
            # the reference brings its own recipe and runtime; only the thread count is shared by default
            ref_options = {k: v for k, v in predictor_options.items() if k == "threads"}
            ref_predictor = _open_predictor(reference, {**ref_options, **(reference_options or {})})
        share_inputs = ref_predictor is not None and ref_predictor.recipe == predictor.recipe

        top5_hits, ref_top1, targets, paths_seen, skipped = [], [], [], [], []
        total, done, checked = len(samples), 0, False
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
                if not checked:
                    mapping.check_outputs(logits.shape[1], data_dir)
                    checked = True
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
            for index in sorted(set(targets)):
                mask = truth == index
                classes_report[mapping.name_of(index)] = {"count": int(mask.sum()),
                                                          "top1": 100.0 * float(hit1[mask].mean())}
        return EvaluationReport(
            top1=100.0 * float(hit1.mean()), top5=100.0 * float(hit5.mean()), count=int(len(truth)),
            correct=int(hit1.sum()), correct_top5=int(hit5.sum()), skipped=skipped, per_class=classes_report,
            agreement=agreement, seconds=time.perf_counter() - started, model=_name(model_or_artifact),
            data_dir=str(data_dir), classes=mapping, predicted=tuple(int(i) for i in best[:, 0]),
            evaluated=tuple(str(p) for p in paths_seen))
    finally:
        predictor.close()
        if ref_predictor is not None:
            ref_predictor.close()
