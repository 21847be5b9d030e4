"""One call from pictures to answers, for any artifact: ``Predictor(artifact).predict(images, topk=5)``.

The predictor reads the artifact's metadata (``artifact_metadata``), picks the runtime from the file type
(the runtime registry, ``lsnet_deploy.runtimes``; PyTorch for an ``nn.Module`` or a checkpoint),
preprocesses exactly as the metadata says (``preprocess``), batches as the artifact allows, and returns
class indices, softmax scores and labels. The same picture gives the same answer whichever runtime runs
it. A picture that cannot be read either stops the call or gets its own error entry
(``predict(..., errors="return")``).

Example:
    >>> from lsnet_deploy import Predictor
    >>> with Predictor("lsnet_t.onnx") as predictor:
    ...     best = predictor.predict("cat.jpg", topk=5)[0]
    ...     print(best.label, best.score)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np

from .artifact_metadata import ArtifactMetadata, read_artifact_metadata, sidecar_path
from .constants import is_checkpoint_source
from .errors import LsnetDeployError, UsageError, first_line
from .metadata import build_metadata, decode_metadata, describe_outputs, read_labels
from .preprocess import Preprocessing, missing_fields, preprocess_one
from .recipe import given_fields, recipe_origin
from .runtimes import canonical_runtime, runner_for
from .runtimes.torch_runner import TorchRunner

#: chunk size for artifacts with a dynamic batch dimension (and PyTorch models)
DEFAULT_DYNAMIC_BATCH = 8
#: how users pass each required recipe field: (command-line flag, Predictor keyword)
MISSING_FLAGS = {"input_size": ("--imgsz", "imgsz="), "mean": ("--mean", "mean="), "std": ("--std", "std=")}
#: what ``predict`` does with a picture it cannot read
ERROR_MODES = ("raise", "return")


@dataclass(frozen=True)
class Prediction:
    """The top-k answer for one picture, or why there is none.

    Attributes:
        indices: class indices, best first (empty when ``error`` is set).
        scores: softmax probabilities of those classes (empty when ``error`` is set).
        labels: class names of those classes, None when the artifact has no labels (or on an error).
        source: the file the picture came from (None for in-memory inputs).
        error: why the picture could not be classified (one line), None for a prediction.
    """

    indices: tuple[int, ...]
    scores: tuple[float, ...]
    labels: tuple[str, ...] | None = None
    source: str | None = None
    error: str | None = None

    @classmethod
    def failed(cls, source: str | None, error: str) -> "Prediction":
        """The entry of a picture that could not be classified."""
        return cls(indices=(), scores=(), labels=None, source=source, error=error)

    @property
    def ok(self) -> bool:
        """True for a prediction, False for an error entry."""
        return self.error is None

    @property
    def index(self) -> int:
        """The best class.

        Raises:
            LsnetDeployError: this entry is an error (see ``error``).
        """
        self._check()
        return self.indices[0]

    @property
    def score(self) -> float:
        """The best class's probability.

        Raises:
            LsnetDeployError: this entry is an error (see ``error``).
        """
        self._check()
        return self.scores[0]

    def _check(self) -> None:
        if self.error is not None:
            raise LsnetDeployError(f"no prediction for {self.source or 'this input'}: {self.error}")

    @property
    def label(self) -> str | None:
        """The best class's name (None without labels)."""
        return self.labels[0] if self.labels else None

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"file": ..., "predictions": [{"rank", "index", "label", "score"}, ...]}``, or
        ``{"file": ..., "error": ...}`` for an error entry."""
        if self.error is not None:
            return {"file": self.source, "error": self.error}
        rows = [{"rank": rank, "index": index, "label": self.labels[rank - 1] if self.labels else None,
                 "score": round(score, 6)}
                for rank, (index, score) in enumerate(zip(self.indices, self.scores), start=1)]
        return {"file": self.source, "predictions": rows}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable for large logits)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the k largest entries per row, best first; ties go to the lower index."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def parse_size(value) -> tuple[int, int] | None:
    """``224`` or ``(H, W)`` -> (H, W); None passes through."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    size = tuple(int(v) for v in value)
    if len(size) == 1:
        size *= 2
    if len(size) != 2:
        raise UsageError(f"image size {value} must be one number or (H, W)")
    return size


class Predictor:
    """Runs an exported LSNet (or a PyTorch model) on pictures, preprocessing as the artifact says.

    Args:
        artifact: an exported file (any suffix ``lsnet_deploy.runtimes.artifact_suffixes()`` lists), a
            checkpoint (``.pth``, ``.safetensors``, ``hf-hub:ORG/REPO``) or an ``nn.Module``.
        runtime: force a runtime (a name or alias of ``lsnet_deploy.runtimes.runtimes()``); default from the
            suffix.
        threads: intra-op threads of the runtime (None: the runtime's default).
        labels: class names, or a labels file (one per line / JSON); replaces the artifact's labels.
        imgsz, mean, std, crop_pct, interpolation, crop_mode: replace the metadata's recipe; ``imgsz``,
            ``mean`` and ``std`` are required for artifacts without metadata (mean/std also accept
            ``"imagenet"``). A checkpoint or model brings its own recipe (``lsnet_deploy.recipe``).
        batch_size: images per inference call for dynamic-batch artifacts (default 8); a fixed-batch
            artifact always runs its own batch, padding the last one.
        exif_transpose: apply the EXIF orientation of photos.
        fast_decode: let JPEG decoding downscale (much faster on camera photos, slightly different pixels).
        **runner_options: runtime settings passed to ``runtimes.runner_for`` (``provider``, ...).

    Raises:
        UsageError: missing artifact, missing metadata without overrides, bad options.
        MissingDependencyError / RuntimeUnavailableError: the runtime is not available here.
    """

    def __init__(self, artifact, runtime: str | None = None, *, threads: int | None = None,
                 labels: Sequence[str] | str | Path | None = None, imgsz=None, mean=None, std=None,
                 crop_pct: float | None = None, interpolation: str | None = None, crop_mode: str | None = None,
                 batch_size: int | None = None,
                 exif_transpose: bool = True, fast_decode: bool = False, **runner_options):
        self.exif_transpose = exif_transpose
        self.fast_decode = fast_decode
        self.runner, self.artifact, meta, self.recipe_origin = _open_runner(artifact, runtime, threads,
                                                                            runner_options, parse_size(imgsz))
        try:
            self.runtime = self.runner.runtime
            self.metadata_info = meta if meta is not None else read_artifact_metadata(self.artifact, self.runner)
            self.metadata = self.metadata_info.fields
            overrides = {"input_size": parse_size(imgsz),
                         **given_fields(mean=mean, std=std, interpolation=interpolation, crop_pct=crop_pct,
                                        crop_mode=crop_mode)}
            # a value equal to the metadata's (a checkpoint loaded at --imgsz) replaces nothing
            self.overridden = sorted(k for k, v in overrides.items() if v is not None and
                                     self.metadata.get(k) is not None and not _same_value(v, self.metadata[k]))
            self.recipe = self._recipe(overrides)
            self._check_input_shape()
            self.batch = self._fixed_batch()
            if batch_size is not None and batch_size < 1:
                raise UsageError(f"batch_size must be at least 1, got {batch_size}")
            self.batch_size = self.batch or batch_size or DEFAULT_DYNAMIC_BATCH
            self.labels = self._labels(labels)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------- setup

    def _recipe(self, overrides: dict) -> Preprocessing:
        missing = missing_fields(self.metadata, overrides)
        if missing:
            flags = _join([MISSING_FLAGS[m][0] for m in missing])
            kwargs = ", ".join(MISSING_FLAGS[m][1] for m in missing)
            declared = self.runner.input_metadata()
            hint = f"; its graph input is {declared[0]}" if declared else ""
            if self.metadata_info.found:
                where = f"metadata has no {_join(missing)}"
            elif isinstance(self.artifact, Path):
                where = f"has no lsnet-export metadata (none embedded, no {sidecar_path(self.artifact).name} beside it)"
            else:
                where = "has no preprocessing recipe"
            raise UsageError(f"{_name(self.artifact)} {where}, so its preprocessing is unknown: pass {flags} "
                             f"(Predictor: {kwargs}){hint}")
        return Preprocessing.from_metadata(self.metadata, **overrides)

    def _check_input_shape(self) -> None:
        declared = self.runner.input_metadata()
        if not declared or len(declared[0]) != 4:
            return
        shape = declared[0]
        spatial = shape[2:] if self.recipe.layout == "NCHW" else shape[1:3]
        if None not in spatial and tuple(spatial) != self.recipe.input_size:
            h, w = spatial
            raise UsageError(f"{_name(self.artifact)} takes {h}x{w} inputs but the preprocessing gives "
                             f"{self.recipe.input_size[0]}x{self.recipe.input_size[1]}; pass --imgsz {h},{w}")

    def _fixed_batch(self) -> int | None:
        batch = self.metadata.get("batch")
        if isinstance(batch, int) and batch > 0:
            return batch
        if batch == "dynamic":
            return None
        declared = self.runner.input_metadata()
        if declared and declared[0]:
            return declared[0][0]  # None: a dynamic batch
        return 1  # unknown: one image per call always works

    def _labels(self, labels) -> list[str] | None:
        classes = self.metadata.get("num_classes")
        classes = classes if isinstance(classes, int) and classes > 0 else None
        if isinstance(labels, (str, Path)):
            return read_labels(labels, classes)
        if labels is not None:
            labels = [str(label) for label in labels]
            if classes is not None and len(labels) != classes:
                raise UsageError(f"{len(labels)} labels given but the model has {classes} classes")
            return labels
        found = self.metadata.get("labels")
        return [str(label) for label in found] if isinstance(found, list) and found else None

    # ------------------------------------------------------------------------------- inputs

    def preprocess(self, image) -> np.ndarray:
        """One picture (path, PIL image, uint8 array) -> its model input, (3, H, W) float32.

        Raises:
            UsageError: the picture cannot be read.
        """
        return preprocess_one(image, self.recipe, exif_transpose=self.exif_transpose, fast_decode=self.fast_decode)

    def _samples(self, images) -> Iterator[tuple[np.ndarray, str | None]]:
        for item in _as_items(images):
            yield self._sample(item)

    def _sample(self, item) -> tuple[np.ndarray, str | None]:
        """(model input, source file or None) of one picture or preprocessed sample."""
        if isinstance(item, np.ndarray) and _is_tensor_like(item):
            return self._check_tensor(item), None
        return self.preprocess(item), _source(item)

    def _check_tensor(self, array: np.ndarray) -> np.ndarray:
        h, w = self.recipe.input_size
        expected = (3, h, w) if self.recipe.layout == "NCHW" else (h, w, 3)
        if array.shape != expected:
            raise UsageError(f"a preprocessed input must have shape {expected} per sample "
                             f"(or (N, {', '.join(map(str, expected))})), got {array.shape}")
        return np.ascontiguousarray(array, dtype=np.float32)

    # ------------------------------------------------------------------------------- running

    def infer(self, batch: np.ndarray, output: int | None = None) -> np.ndarray:
        """Raw model outputs for preprocessed inputs (N, 3, H, W), batched and padded as the artifact needs.

        Args:
            batch: the inputs.
            output: which output of a multi-output artifact (its position in the metadata's ``outputs``);
                None: the first.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        outputs = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            count = len(chunk)
            if self.batch is not None and count < self.batch:  # fixed-batch artifact: pad, then drop the padding
                chunk = np.concatenate([chunk, np.zeros((self.batch - count, *chunk.shape[1:]), np.float32)])
            outputs.append(self._run(chunk, output)[:count])
        if not outputs:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(outputs)

    def _run(self, chunk: np.ndarray, output: int | None = None) -> np.ndarray:
        try:
            out = self.runner.infer(chunk) if not output else self.runner.infer_outputs(chunk)[output]
        except LsnetDeployError:
            raise
        except Exception as exc:  # runtimes raise their own types; the first line names the problem
            raise LsnetDeployError(f"{self.runtime} failed on a batch of shape {list(chunk.shape)}: "
                                   f"{first_line(exc)}") from None
        return self._per_sample_vectors(np.asarray(out, dtype=np.float32), len(chunk))

    def _per_sample_vectors(self, out: np.ndarray, count: int) -> np.ndarray:
        """A runtime's output as (N, values): a batch dimension a runtime dropped, or singleton dimensions
        such as (N, C, 1, 1), are tolerated; a map of several dimensions (a backbone, a detector) is not
        class scores, and neither is an output whose first dimension is not the batch."""
        shape = list(out.shape)
        spread = [d for d in shape[1:] if d != 1] if out.ndim > 1 else []
        batch_dropped = out.ndim == 1 and out.size % max(count, 1) == 0
        if (out.ndim > 1 and shape[0] == count and len(spread) <= 1) or batch_dropped:
            return out.reshape(count, -1)
        raise UsageError(f"{_name(self.artifact)} outputs a {shape} tensor for a batch of {count}, not one vector "
                         "of class scores per picture: it is not a classifier (a backbone or detector?); "
                         "classify with an artifact exported by lsnet-export --task classification")

    def _output_index(self, kind: str) -> int | None:
        """Position of the first output of ``kind`` in the metadata's ``outputs``; None without ``outputs``."""
        described = self.metadata.get("outputs")
        if not isinstance(described, list):
            return None
        return next((i for i, o in enumerate(described) if isinstance(o, dict) and o.get("kind") == kind), -1)

    def embed(self, images) -> np.ndarray:
        """The embedding (pooled, projected features the classifier reads) of each picture, (N, dim).

        Works for artifacts exported with an ``embedding`` output (``--outputs logits,embedding`` or
        ``embedding``) and for PyTorch models.

        Raises:
            UsageError: the artifact has no embedding output, or a picture cannot be read.
        """
        index = self._output_index("embedding")
        if index is None or index < 0:
            raise UsageError(f"{_name(self.artifact)} has no embedding output; export it with "
                             "lsnet-export --outputs logits,embedding")
        samples = [array for array, _ in self._samples(images)]
        return self.infer(np.stack(samples), index) if samples else np.zeros((0, 0), np.float32)

    def _check_logits(self) -> None:
        if self._output_index("logits") == -1:
            raise UsageError(f"{_name(self.artifact)} outputs no class scores (its outputs: "
                             f"{', '.join(o.get('name', '?') for o in self.metadata['outputs'])}); use embed()")

    def logits(self, images) -> np.ndarray:
        """Model outputs (N, classes) for pictures or preprocessed arrays."""
        self._check_logits()
        samples = [array for array, _ in self._samples(images)]
        return self.infer(np.stack(samples), self._output_index("logits")) if samples else np.zeros((0, 0), np.float32)

    def predict(self, images, topk: int = 5, *, errors: Literal["raise", "return"] = "raise") -> list[Prediction]:
        """Top-k classes and softmax scores for each picture.

        Args:
            images: one picture or a sequence: file paths, PIL images, uint8 (H, W, 3) RGB arrays, or
                preprocessed float arrays (3, H, W) / (N, 3, H, W) (NumPy or torch).
            topk: how many classes per picture (capped at the number of classes).
            errors: what a picture that cannot be read (or a preprocessed array of the wrong shape) does:
                ``"raise"`` (default) stops the call with its UsageError; ``"return"`` gives it an error
                entry (``Prediction.error`` set, no classes) and classifies the others. Failures of the
                runtime itself always raise.

        Returns:
            One Prediction per picture, in input order.

        Raises:
            UsageError: with ``errors="raise"``, a picture cannot be read or a preprocessed array has the
                wrong shape; in any mode, a bad ``topk`` or ``errors``.
            LsnetDeployError: the runtime failed on a batch.
        """
        return list(self.iter_predictions(images, topk, errors=errors))

    def iter_predictions(self, images, topk: int = 5, *,
                         errors: Literal["raise", "return"] = "raise") -> Iterator[Prediction]:
        """``predict``, yielding each batch's predictions as soon as it has run (for long lists of files).

        Arguments, results and errors are those of ``predict``; a bad ``topk`` or ``errors`` raises before
        any picture is read.
        """
        if int(topk) < 1:
            raise UsageError(f"topk must be at least 1, got {topk}")
        self._check_logits()
        if errors not in ERROR_MODES:
            raise UsageError(f"errors must be one of {', '.join(map(repr, ERROR_MODES))}, got {errors!r}")
        return self._iter_predictions(images, int(topk), errors)

    def _iter_predictions(self, images, topk: int, errors: str) -> Iterator[Prediction]:
        # failed entries wait in `pending` (as None arrays) so the output keeps the input order
        pending: list[tuple[np.ndarray | None, str | None, str | None]] = []
        ready = 0
        for item in _as_items(images):
            try:
                array, source = self._sample(item)
                pending.append((array, source, None))
                ready += 1
            except UsageError as exc:
                if errors == "raise":
                    raise
                pending.append((None, _source(item), first_line(exc)))
            if ready == self.batch_size:
                yield from self._predict_pending(pending, topk)
                pending, ready = [], 0
        if pending:
            yield from self._predict_pending(pending, topk)

    def _predict_pending(self, pending: list[tuple[np.ndarray | None, str | None, str | None]],
                         topk: int) -> list[Prediction]:
        good = [(array, source) for array, source, _ in pending if array is not None]
        done = iter(self._predict_batch(good, topk) if good else [])
        return [next(done) if array is not None else Prediction.failed(source, error)
                for array, source, error in pending]

    def _predict_batch(self, samples: list[tuple[np.ndarray, str | None]], topk: int) -> list[Prediction]:
        outputs = self.infer(np.stack([array for array, _ in samples]), self._output_index("logits"))
        return self.predictions_from_outputs(outputs, topk, [source for _, source in samples])

    def predictions_from_outputs(self, outputs: np.ndarray, topk: int = 5,
                                 sources: Sequence[str | None] | None = None) -> list[Prediction]:
        """Turn raw outputs (N, classes) into Predictions (softmax unless the artifact outputs probabilities)."""
        if self.labels is not None and outputs.shape[1] != len(self.labels):
            raise UsageError(f"the model outputs {outputs.shape[1]} classes but there are {len(self.labels)} labels")
        declared = self.metadata.get("num_classes")
        if isinstance(declared, int) and declared > 0 and outputs.shape[1] != declared:
            raise UsageError(f"{_name(self.artifact)} outputs {outputs.shape[1]} values per picture but its metadata "
                             f"says {declared} classes: the file is not the classifier its metadata describes")
        if not np.isfinite(outputs).all():
            raise LsnetDeployError(f"{_name(self.artifact)} gave NaN or infinite class scores ({self.runtime}); its "
                                   "weights are damaged or the runtime failed: check the model with lsnet-export's "
                                   "validation")
        scores = outputs.astype(np.float64) if self.metadata.get("output") == "probabilities" else softmax(outputs)
        indices, values = top_k(scores, min(topk, scores.shape[1]))
        sources = list(sources) if sources is not None else [None] * len(outputs)
        return [Prediction(indices=tuple(int(i) for i in row), scores=tuple(float(v) for v in vals),
                           labels=tuple(self.labels[i] for i in row) if self.labels else None, source=source)
                for row, vals, source in zip(indices, values, sources)]

    # ------------------------------------------------------------------------------- lifecycle

    def info(self) -> dict:
        """What runs and how: artifact, runtime, metadata source, recipe, batching, label count."""
        return {"artifact": _name(self.artifact), "runtime": self.runtime,
                "metadata_source": self.metadata_info.source, "recipe": self.recipe.to_metadata(),
                "batch": self.batch or "dynamic", "batch_size": self.batch_size,
                "labels": len(self.labels) if self.labels else 0, "overridden": self.overridden}

    def close(self) -> None:
        """Release the runtime (idempotent)."""
        if self.runner is not None:
            self.runner.deactivate()

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Predictor({_name(self.artifact)!r}, runtime={self.runtime!r}, input_size={self.recipe.input_size})"


# ----------------------------------------------------------------------------------- helpers


def _same_value(given, recorded) -> bool:
    """A recipe value given by the user equals the metadata's (tuples and JSON lists alike)."""
    def plain(value):
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else value

    return plain(given) == plain(recorded)


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _name(artifact) -> str:
    return str(artifact) if isinstance(artifact, (str, Path)) else type(artifact).__name__


def _is_tensor_like(array: np.ndarray) -> bool:
    """Float arrays are preprocessed model inputs; integer arrays are pictures."""
    return not (array.dtype == np.uint8 or (array.dtype == np.uint16 and array.ndim == 2))


def _as_items(images) -> Iterable:
    """Flatten the accepted input forms into single pictures / single preprocessed samples."""
    if isinstance(images, (str, Path)):
        return [images]
    if hasattr(images, "detach") and hasattr(images, "numpy"):  # a torch tensor
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):  # (N, ...) is a batch, anything else one sample or picture
        return list(images) if images.ndim == 4 else [images]
    try:
        from PIL import Image

        if isinstance(images, Image.Image):
            return [images]
    except ImportError:  # pragma: no cover - Pillow is a core dependency
        pass
    return (_as_array(item) for item in images)


def _as_array(item):
    if hasattr(item, "detach") and hasattr(item, "numpy"):
        return item.detach().cpu().numpy()
    return item


def _source(item) -> str | None:
    return str(item) if isinstance(item, (str, Path)) else None


def _open_runner(artifact, runtime: str | None, threads: int | None, options: dict,
                 imgsz: tuple[int, int] | None = None):
    """(active runner, artifact, metadata or None, where a model's recipe came from or None) for a file, a
    checkpoint or an nn.Module; a checkpoint is loaded at ``imgsz`` (None: the size it records)."""
    if not isinstance(artifact, (str, Path)) or is_checkpoint_source(str(artifact)):
        if runtime is not None and canonical_runtime(runtime) != "torch":
            raise UsageError(f"{_name(artifact)} is a PyTorch model; export it to run it with {runtime}")
        return _open_torch(artifact, threads, imgsz)
    path = Path(artifact)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    runner = runner_for(path, runtime, threads=threads, **options)
    runner.activate()
    return runner, path, None, None


def _open_torch(artifact, threads: int | None, imgsz: tuple[int, int] | None = None):
    if isinstance(artifact, (str, Path)):
        from .models import load_model

        model = load_model(artifact, img_size=imgsz)
    else:
        model = artifact
    network = model
    model, outputs = _with_embedding(model)
    try:
        raw = build_metadata(network, ska_form=getattr(network, "ska_form", "auto"),
                             fused=bool(getattr(network, "fused", False)), precision="float32", batch="dynamic",
                             outputs=outputs)
        meta = ArtifactMetadata(decode_metadata(raw), raw, "model pretrained_cfg")
        origin = recipe_origin(network)
    except AttributeError:  # not an LSNet: the caller passes the recipe
        meta, origin = ArtifactMetadata(), None
    runner = TorchRunner(model.eval(), threads=threads)
    runner.activate()
    return runner, artifact, meta, origin


def _with_embedding(model):
    """An LSNet classifier as a module returning (logits, embedding), with its ``outputs`` entries; any
    other model unchanged (and None)."""
    from .models.backbone import LSNetBackbone
    from .models.lsnet import LSNet
    from .models.outputs import ClassifierOutputs

    if not isinstance(model, LSNet) or isinstance(model, LSNetBackbone):
        return model, None
    names = ("logits", "embedding") if model.num_classes > 0 else ("embedding",)
    shapes = {"logits": (1, model.num_classes), "embedding": (1, model.embedding_dim)}
    wrapped = ClassifierOutputs(model, names)
    return wrapped, describe_outputs(names, [shapes[n] for n in names], model.img_size, dynamic=True)
