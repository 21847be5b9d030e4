"""``lsnet-predict``: classify pictures with any exported LSNet, preprocessed exactly as its metadata says.

One table (or one JSON line) per picture. A file that cannot be read gets its own error and the others
still run; the exit code is then 1. Directories are expanded to the image files they hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..constants import CHECKPOINT_SUFFIXES, HUB_PREFIXES
from ..errors import UsageError
from ..metadata import duplicate_labels
from ..predict import Predictor
from ..quiet import quiet_third_party_warnings
from ..recipe import INTERPOLATIONS, RECIPE_FLAGS
from ..runtimes import artifact_suffixes, runtimes
from .common import JsonParseErrors, cli_errors, err, json_errors, parse_imgsz, whole_command

PROG = "lsnet-predict"
#: the widest IMAGE column of the table before long paths simply overflow it
MAX_NAME_WIDTH = 48

_FILE_RUNTIMES = ", ".join(cls.title for cls in runtimes().values() if cls.suffixes)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help=f"Classify images with an exported LSNet ({_FILE_RUNTIMES}) or a checkpoint, preprocessing "
                       "exactly as the artifact's metadata says.")

ARTIFACT_HELP = (f"Exported model ({', '.join(artifact_suffixes())}) or a checkpoint "
                 f"({', '.join(CHECKPOINT_SUFFIXES)}, {HUB_PREFIXES[0]}ORG/REPO).")
RUNTIME_HELP = f"Force a runtime: {', '.join(runtimes())}."
STATS_HELP = "Per-channel {what} on the 0-1 scale: 3 numbers ({example}), one number, or 'imagenet'."
RECIPE_NOTE = ("Only needed for files without lsnet-export metadata; given for a file that has it, the value "
               "replaces the metadata's.")
CROP_PCT_HELP = "Centre-crop fraction: resize to size / crop_pct, then crop (default: metadata, else 0.9)."
INTERPOLATION_HELP = f"Resize filter: {', '.join(INTERPOLATIONS)} (default: metadata, else bicubic)."
CROP_MODE_HELP = ("center (aspect kept, short side resized) or squash (both sides resized) (default: metadata, "
                  "else center).")


@app.command(cls=JsonParseErrors)
def predict(
    artifact: Annotated[str, typer.Argument(help=ARTIFACT_HELP, show_default=False)],
    images: Annotated[list[Path], typer.Argument(help="Image files and/or directories of images.", show_default=False)],
    topk: Annotated[int, typer.Option("--topk", "-k", help="Classes shown per image.")] = 5,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout (JSON lines).")] = False,
    runtime: Annotated[Optional[str], typer.Option("--runtime", help=RUNTIME_HELP)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads of the runtime.")] = None,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Model input size: 224 or H,W. " + RECIPE_NOTE)] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", help=STATS_HELP.format(what="mean", example="0.485,0.456,0.406") + " " + RECIPE_NOTE)] = None,
    std: Annotated[Optional[str], typer.Option("--std", help=STATS_HELP.format(what="std", example="0.229,0.224,0.225") + " " + RECIPE_NOTE)] = None,
    crop_pct: Annotated[Optional[float], typer.Option("--crop-pct", help=CROP_PCT_HELP)] = None,
    interpolation: Annotated[Optional[str], typer.Option("--interpolation", help=INTERPOLATION_HELP)] = None,
    crop_mode: Annotated[Optional[str], typer.Option("--crop-mode", help=CROP_MODE_HELP)] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Class names file (one per line, or JSON); replaces the artifact's.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per call for dynamic-batch artifacts (default 8).")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look for images in subdirectories too.")] = False,
    fast_decode: Annotated[bool, typer.Option("--fast-decode", help="Let JPEG decoding downscale large photos (faster, slightly different pixels).")] = False,
    embedding: Annotated[bool, typer.Option("--embedding", help="Print each image's embedding instead of classes, one "
                                            "JSON line per image (artifacts exported with --outputs "
                                            "logits,embedding or embedding, and checkpoints).")] = False,
) -> None:
    """Print the top classes of each image."""
    with cli_errors(PROG), json_errors(json_output):
        if topk < 1:
            raise UsageError(f"--topk must be at least 1, got {topk}")
        files = collect_images(images, recursive)
        predictor = Predictor(artifact, runtime, threads=threads, labels=labels, imgsz=parse_imgsz(imgsz), mean=mean,
                              std=std, crop_pct=crop_pct, interpolation=interpolation, crop_mode=crop_mode,
                              batch_size=batch_size,
                              fast_decode=fast_decode)
        with predictor:
            _explain_recipe(predictor)
            if embedding:
                for path, vector in zip(files, predictor.embed(files)):
                    typer.echo(json.dumps({"file": str(path), "embedding": [round(float(v), 6) for v in vector]}))
                return
            printer = JsonPrinter() if json_output else TablePrinter(files)
            failures = 0
            for prediction in predictor.iter_predictions(files, topk, errors="return"):
                if prediction.error is not None:
                    failures += 1
                    printer.error(Path(prediction.source), prediction.error)
                else:
                    printer.prediction(prediction)
    if failures:
        err(f"{PROG}: {failures} of {len(files)} image{'s' if len(files) != 1 else ''} could not be read")
        raise typer.Exit(1)


def image_suffixes() -> set[str]:
    """File suffixes Pillow can open here (lower case, with the dot)."""
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def collect_images(inputs: list[Path], recursive: bool = False) -> list[Path]:
    """Expand directories into their image files (sorted); files are kept as given, readable or not.

    Raises:
        UsageError: when nothing is left to classify.
    """
    suffixes = image_suffixes()
    files: list[Path] = []
    for item in inputs:
        if not item.is_dir():
            files.append(item)  # missing or unreadable files get their own error later
            continue
        candidates = sorted(p for p in (item.rglob("*") if recursive else item.iterdir())
                            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts))
        found = [p for p in candidates if p.suffix.lower() in suffixes]
        skipped = len(candidates) - len(found)
        if skipped:
            err(f"{PROG}: skipped {skipped} non-image file{'s' if skipped != 1 else ''} in {item}")
        if not found:
            err(f"{PROG}: no images in {item}" + ("" if recursive else " (use --recursive for subdirectories)"))
        files += found
    if not files:
        raise UsageError("no images to classify: give image files or directories that contain images")
    return files


def _explain_recipe(predictor) -> None:
    recipe = predictor.recipe
    if predictor.recipe_origin is not None:  # a checkpoint or model: its own recipe, wherever that came from
        changed = ", with the flags' changes below" if predictor.overridden else ""
        err(f"{PROG}: note: preprocessing {recipe.describe()}: {predictor.recipe_origin}{changed}")
    elif not predictor.metadata_info.found:
        err(f"{PROG}: note: {predictor.artifact} has no lsnet-export metadata; preprocessing "
            f"{recipe.input_size[0]}x{recipe.input_size[1]}, crop {recipe.crop_pct:g} {recipe.interpolation}, "
            f"mean {list(recipe.mean)}, std {list(recipe.std)}")
    repeated = duplicate_labels(predictor.labels or [])
    if repeated:
        name, indices = next(iter(repeated.items()))
        err(f"{PROG}: warning: the labels give {len(repeated)} name{'s' * (len(repeated) > 1)} to several classes "
            f"({name!r}: classes {', '.join(map(str, indices))}); those classes print the same LABEL, the CLASS "
            "index tells them apart")
    for name in predictor.overridden:
        flag = {"input_size": "--imgsz", **RECIPE_FLAGS}.get(name, f"--{name}")
        err(f"{PROG}: warning: {flag} replaces the artifact's {name} ({predictor.metadata[name]})")


class TablePrinter:
    """Aligned rows: image, rank, score, class index, label."""

    def __init__(self, files: list[Path]):
        self.width = min(max((len(str(f)) for f in files), default=5), MAX_NAME_WIDTH)
        self.header_done = False

    def _header(self) -> None:
        if not self.header_done:
            typer.echo(f"{'IMAGE':<{self.width}}  RANK  SCORE   CLASS  LABEL")
            self.header_done = True

    def prediction(self, prediction) -> None:
        self._header()
        for rank, index in enumerate(prediction.indices):
            name = prediction.source if rank == 0 else ""
            label = prediction.labels[rank] if prediction.labels else ""
            typer.echo(f"{name:<{self.width}}  {rank + 1:>4}  {prediction.scores[rank]:.4f}  {index:>5}  {label}".rstrip())

    def error(self, path: Path, message: str) -> None:
        err(f"{PROG}: error: {message}")


class JsonPrinter:
    """One JSON object per line: ``{"file", "predictions": [...]}`` or ``{"file", "error"}``."""

    def prediction(self, prediction) -> None:
        typer.echo(json.dumps(prediction.to_dict()))

    def error(self, path: Path, message: str) -> None:
        typer.echo(json.dumps({"file": str(path), "error": message}))


def main() -> None:
    """Console-script entry point."""
    quiet_third_party_warnings()
    with whole_command(PROG):
        app(prog_name=PROG)


if __name__ == "__main__":
    main()
