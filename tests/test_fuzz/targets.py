"""Fuzz targets: each feeds arbitrary bytes to one reader and checks the project's rules.

The rules: a reader either returns or raises one of the project's own errors
(``lsnet_deploy.errors.LsnetDeployError``); it finishes within the campaign's per-input timeout; and it
writes no file outside its temporary directory. Anything else escapes the target, and the fuzzer
reports it as a crash with the input that caused it.

The targets take bytes only, so both the atheris driver (``run_fuzz.py``) and plain replays of a corpus
can call them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from lsnet_deploy.errors import LsnetDeployError


#: a folder for the inputs' scratch folders (the tests give their tmp_path); default: the system's temp dir
SCRATCH_ENV = "LSNET_FUZZ_TMP"


def _fresh_folder() -> Path:
    """A new empty folder for one input. Each input's folder is removed when it is done, crash or not:
    libFuzzer ends its process with ``_exit``, so nothing registered with atexit would ever run."""
    return Path(tempfile.mkdtemp(prefix="lsnet-fuzz-", dir=os.environ.get(SCRATCH_ENV) or None))


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def allowed(call: Callable[[], object]) -> object:
    """Run ``call``; a project error is an accepted outcome (with a message), anything else escapes."""
    try:
        return call()
    except LsnetDeployError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return None


def _checked(files: dict[str, bytes], call: Callable[[Path], object]) -> None:
    """Write ``files`` into a fresh folder, run ``call`` on it, and enforce the rules."""
    folder = _fresh_folder()
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        cwd_before = _listing(Path.cwd())
        call(folder)
        after = _listing(folder)
        assert after == set(files), f"the reader wrote {sorted(after - set(files))} beside its input"
        assert _listing(Path.cwd()) == cwd_before, "the reader wrote into the working directory"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------- targets


def checkpoint(data: bytes) -> None:
    """models/checkpoint.py: the same bytes as a torch file, a suffix-less file and a safetensors file."""
    from lsnet_deploy.models.checkpoint import read_checkpoint

    files = {"ckpt.pth": data, "ckpt": data, "ckpt.safetensors": data}
    _checked(files, lambda folder: [allowed(lambda: read_checkpoint(folder / name)) for name in files])


def checkpoint_model(data: bytes) -> None:
    """models/factory.py: a full ``load_model`` of the bytes (architecture inference, size resolution)."""
    from lsnet_deploy.models import load_model

    _checked({"ckpt.pth": data}, lambda folder: allowed(lambda: load_model(folder / "ckpt.pth")))


def metadata(data: bytes) -> None:
    """artifact_metadata.py through its public entry point: embedded ONNX / ORT readers and the sidecar."""
    from lsnet_deploy.artifact_metadata import read_artifact_metadata

    files = {"m.onnx": data, "m.ort": data, "e.engine": b"", "e.engine.json": data}
    _checked(files, lambda folder: [allowed(lambda: read_artifact_metadata(folder / name))
                                    for name in ("m.onnx", "m.ort", "e.engine")])


def labels(data: bytes) -> None:
    """metadata.py ``read_labels``: text or JSON class names, with and without a class count."""
    from lsnet_deploy.metadata import read_labels

    def call(folder: Path) -> None:
        allowed(lambda: read_labels(folder / "labels.txt"))
        allowed(lambda: read_labels(folder / "labels.txt", num_classes=3))

    _checked({"labels.txt": data}, call)


def image(data: bytes) -> None:
    """preprocess.py: decode, orient, resize, crop and normalize the bytes as a picture."""
    from lsnet_deploy.preprocess import Preprocessing, preprocess_one

    recipe = Preprocessing(input_size=(32, 32))

    def call(folder: Path) -> None:
        for fast in (False, True):
            out = allowed(lambda: preprocess_one(folder / "image.jpg", recipe, fast_decode=fast))
            assert out is None or out.shape == (3, 32, 32), out.shape

    _checked({"image.jpg": data}, call)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "checkpoint": checkpoint,
    "checkpoint_model": checkpoint_model,
    "metadata": metadata,
    "labels": labels,
    "image": image,
}
# the seed corpus of each target (tests/data/fuzz_corpus/<folder>)
CORPUS = {"checkpoint": "checkpoint", "checkpoint_model": "checkpoint", "metadata": "metadata",
          "labels": "labels", "image": "image"}
