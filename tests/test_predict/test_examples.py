"""The examples an app developer copies: the Python ones run, the C++ and Java preprocessing compile and
match the Python preprocessing bit for bit, the platform snippets read the same metadata fields."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lsnet_deploy import Predictor
from lsnet_deploy.preprocess import Preprocessing, load_rgb, preprocess_one

from .conftest import LABELS, synthetic_photo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# (height, width) of the pictures the native ports are checked on: shrink both ways, odd offsets, upscale
NATIVE_CASES = [(375, 500), (500, 375), (333, 501), (90, 120), (1000, 141)]
RECIPES = [Preprocessing(input_size=(224, 224)), Preprocessing(input_size=(128, 128), interpolation="bilinear",
                                                                crop_pct=0.875, mean=(0.5,) * 3, std=(0.25,) * 3)]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minimal_python_app(tiny_onnx, photos, capsys):
    app = _load("classify_example", EXAMPLES / "python" / "classify.py")
    assert app.main([str(tiny_onnx), str(photos[0]), str(photos[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{photos[0]}: class_") and "%" in lines[0]


def test_onnxruntime_only_example_matches_the_predictor(tiny_onnx, photos):
    example = _load("ort_only_example", EXAMPLES / "python" / "onnxruntime_only.py")
    classifier = example.Classifier(str(tiny_onnx))
    with Predictor(tiny_onnx) as predictor:
        for photo in photos:
            np.testing.assert_array_equal(classifier.preprocess(str(photo)), predictor.preprocess(photo))
            expected = predictor.predict(photo, topk=5)[0]
            got = classifier.classify(str(photo), topk=5)
            assert [i for i, _, _ in got] == list(expected.indices)
            assert [label for _, _, label in got] == list(expected.labels)
            np.testing.assert_allclose([s for _, s, _ in got], expected.scores, rtol=0, atol=1e-6)


def _write_cases(folder: Path) -> list[tuple[Path, Path, Preprocessing, tuple[int, int], np.ndarray]]:
    """Raw RGB inputs for the native harnesses and the tensors Python makes from them."""
    cases = []
    for n, (height, width) in enumerate(NATIVE_CASES):
        image = synthetic_photo(height, width, seed=40 + n)
        raw = folder / f"case{n}.rgb"
        raw.write_bytes(np.asarray(image, np.uint8).tobytes())
        for m, recipe in enumerate(RECIPES):
            cases.append((raw, folder / f"case{n}_{m}.f32", recipe, (width, height),
                          preprocess_one(load_rgb(image), recipe)))
    return cases


def _args(raw, out, recipe, size):
    return [str(raw), str(size[0]), str(size[1]), str(recipe.input_size[0]), repr(recipe.crop_pct),
            recipe.interpolation, *map(repr, recipe.mean), *map(repr, recipe.std), str(out)]


CPP_HARNESS = r"""
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include "lsnet_preprocess.hpp"
int run(char** argv) {
    std::ifstream in(argv[1], std::ios::binary);
    lsnet::RgbImage image{std::atoi(argv[2]), std::atoi(argv[3]),
                          std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {})};
    lsnet::Recipe r;
    r.height = r.width = std::atoi(argv[4]);
    r.crop_pct = std::atof(argv[5]);
    r.interpolation = argv[6];
    for (int c = 0; c < 3; ++c) { r.mean[c] = std::strtof(argv[7 + c], nullptr); r.std[c] = std::strtof(argv[10 + c], nullptr); }
    std::vector<float> out = lsnet::preprocess(image, r);
    std::ofstream(argv[13], std::ios::binary).write(reinterpret_cast<const char*>(out.data()), out.size() * 4);
    return 0;
}
int main(int argc, char** argv) {  // groups of 13 arguments, one case each
    for (int i = 0; i + 13 < argc; i += 13) run(argv + i);
}
"""

JAVA_HARNESS = r"""
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Paths;
import org.lsnet.deploy.LsnetPreprocess;
public class Harness {
    public static void main(String[] all) throws Exception {  // groups of 13 arguments, one case each
        for (int i = 0; i + 13 <= all.length; i += 13) run(java.util.Arrays.copyOfRange(all, i, i + 13));
    }
    static void run(String[] a) throws Exception {
        byte[] rgb = Files.readAllBytes(Paths.get(a[0]));
        int w = Integer.parseInt(a[1]), h = Integer.parseInt(a[2]);
        int[] argb = new int[w * h];
        for (int i = 0; i < w * h; i++) {
            argb[i] = 0xFF000000 | (rgb[3 * i] & 0xFF) << 16 | (rgb[3 * i + 1] & 0xFF) << 8 | (rgb[3 * i + 2] & 0xFF);
        }
        LsnetPreprocess.Recipe r = new LsnetPreprocess.Recipe();
        r.height = r.width = Integer.parseInt(a[3]);
        r.cropPct = Double.parseDouble(a[4]);
        r.interpolation = a[5];
        for (int c = 0; c < 3; c++) { r.mean[c] = Float.parseFloat(a[6 + c]); r.std[c] = Float.parseFloat(a[9 + c]); }
        float[] out = LsnetPreprocess.preprocess(argb, w, h, r);
        ByteBuffer buf = ByteBuffer.allocate(out.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : out) buf.putFloat(v);
        Files.write(Paths.get(a[12]), buf.array());
    }
}
"""


def _check_outputs(cases) -> None:
    for raw, out, recipe, size, expected in cases:
        got = np.fromfile(out, dtype="<f4").reshape(expected.shape)
        np.testing.assert_array_equal(got, expected, err_msg=f"{raw.name} {size} {recipe.interpolation}")


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_cpp_preprocessing_is_bit_identical(tmp_path):
    (tmp_path / "harness.cpp").write_text(CPP_HARNESS)
    binary = tmp_path / "harness"
    subprocess.run(["g++", "-std=c++17", "-O2", "-I", str(EXAMPLES / "cpp"), str(tmp_path / "harness.cpp"),
                    "-o", str(binary)], check=True)
    cases = _write_cases(tmp_path)
    subprocess.run([str(binary), *[arg for case in cases for arg in _args(*case[:4])]], check=True)
    _check_outputs(cases)


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no Java compiler")
def test_java_preprocessing_is_bit_identical(tmp_path):
    (tmp_path / "Harness.java").write_text(JAVA_HARNESS)
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(EXAMPLES / "android" / "LsnetPreprocess.java"),
                    str(tmp_path / "Harness.java")], check=True)
    cases = _write_cases(tmp_path)
    subprocess.run(["java", "-cp", str(classes), "Harness", *[arg for case in cases for arg in _args(*case[:4])]],
                   check=True)
    _check_outputs(cases)


#: every file under examples/ and how the tests check it; a new example must be added here (and to the table
#: of examples/README.md): ``test_every_example_is_checked_and_listed`` fails until it is
CHECKS = {
    "python/classify.py": "runs on a real artifact, in-process and as a script",
    "python/onnxruntime_only.py": "runs on a real artifact, same tensors and scores as Predictor",
    "cpp/lsnet_preprocess.hpp": "compiled with g++, bit-identical to Python",
    "android/LsnetPreprocess.java": "compiled with javac, bit-identical to Python",
    "android/LsnetClassifier.kt": "its metadata reads checked against a real .pte (no Android SDK here)",
    "android/LiteRTClassifier.kt": "its metadata reads checked against a real .tflite (no Android SDK here)",
    "swift/LSNetClassifier.swift": "its metadata reads checked against a real .mlpackage (Core ML needs macOS)",
    "cpp/lsnet_tensorrt.cpp": "its metadata reads checked against the sidecar codec (no TensorRT here)",
}
#: the fields an app needs to preprocess and label (examples/README.md's table); every snippet reads them
RECIPE_FIELDS = ("input_size", "mean", "std", "crop_pct", "labels")


def test_every_example_is_checked_and_listed():
    files = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*") if p.is_file() and p.name != "README.md")
    assert files == sorted(CHECKS), "examples without a check (or checks without a file): update CHECKS"
    listing = (EXAMPLES / "README.md").read_text()
    assert [f for f in files if f"`{f}`" not in listing] == [], "examples/README.md does not list every example"


def test_classify_example_runs_as_a_script(tiny_onnx, photos):
    done = subprocess.run([sys.executable, str(EXAMPLES / "python" / "classify.py"), str(tiny_onnx), str(photos[2])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{photos[2]}: class_"), done.stdout
    usage = subprocess.run([sys.executable, str(EXAMPLES / "python" / "classify.py")], capture_output=True, text=True,
                           timeout=300)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: classify.py"), usage.stderr


def _fields_read(text: str) -> set[str]:
    """The metadata fields a snippet reads: ``getString("x")``, ``optString("x"``, ``has("x")``, ``field("x")``,
    ``contains("x")``, ``meta["x"]``, ``meta.get("x"``."""
    return set(re.findall(r'(?:getString|optString|has|field|contains|meta\.get)\("(\w+)"', text)) | set(
        re.findall(r'meta\["(\w+)"\]', text))


def _check_fields(snippet: str, metadata: dict[str, str], unlabelled: bool = False) -> None:
    """The snippet reads every recipe field, and each field it reads is in the raw map ``metadata`` as a JSON
    document (``unlabelled``: an artifact exported without labels, which the snippets treat as optional)."""
    read = _fields_read((EXAMPLES / snippet).read_text()) - {"metadata"}
    assert set(RECIPE_FIELDS) <= read, f"{snippet} does not read {set(RECIPE_FIELDS) - read}"
    if unlabelled:
        assert "labels" not in metadata
        read.discard("labels")
    missing = sorted(read - set(metadata))
    assert not missing, f"{snippet} reads {missing}, which the artifact does not carry"
    for field in read:
        json.loads(metadata[field])  # each value is a JSON document in a string (decoded twice by the apps)


def _named_in(snippet: str, pattern: str) -> str:
    found = re.findall(pattern, (EXAMPLES / snippet).read_text())
    assert found, f"{snippet}: no match for {pattern}"
    return found[0]


@pytest.fixture(scope="module")
def labelled_artifact(tiny_model, tmp_path_factory):
    """``make(format)``: the tiny model exported by lsnet-export's path to ``format``, with labels."""
    from lsnet_deploy.exporters import ExportOptions, export_model, get_exporter

    folder = tmp_path_factory.mktemp("example_artifacts")

    def make(fmt: str) -> Path:
        path = folder / f"tiny{get_exporter(fmt).suffix}"
        if not path.exists():
            export_model(tiny_model, fmt, path, ExportOptions(labels=LABELS, validate=False))
        return path

    return make


def test_android_executorch_snippet_reads_what_a_pte_carries(tiny_pte):
    runtime = pytest.importorskip("executorch.runtime", reason="executorch is not installed")
    snippet = "android/LsnetClassifier.kt"
    method = _named_in(snippet, r'module\.execute\("(\w+)"\)')
    program = runtime.Runtime.get().load_program(str(tiny_pte))
    assert method in program.method_names
    (text,) = program.load_method(method).execute([])
    _check_fields(snippet, json.loads(text), unlabelled=True)  # the shared tiny.pte has no labels


@pytest.mark.slow
def test_android_litert_snippet_reads_what_a_tflite_carries(labelled_artifact):
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="ai-edge-litert is not installed")
    snippet = "android/LiteRTClassifier.kt"
    entry = _named_in(snippet, r'entry\.name\(\) != "(\w+)"')
    buffer = labelled_artifact("litert").read_bytes()
    model = schema.Model.GetRootAs(buffer, 0)  # the flatbuffer schema the Kotlin snippet reads too
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    assert entry in entries, sorted(entries)
    data = model.Buffers(entries[entry]).DataAsNumpy().tobytes()
    _check_fields(snippet, json.loads(data))


@pytest.mark.slow
def test_swift_snippet_reads_what_an_mlpackage_carries(labelled_artifact):
    coremltools = pytest.importorskip("coremltools", reason="coremltools is not installed")
    snippet = "swift/LSNetClassifier.swift"
    assert "metadata[.creatorDefinedKey]" in (EXAMPLES / snippet).read_text()
    model = coremltools.models.MLModel(str(labelled_artifact("coreml")), skip_model_load=True)
    _check_fields(snippet, dict(model.user_defined_metadata))  # what .creatorDefinedKey returns on Apple


def _raw_onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_tensorrt_snippet_reads_the_sidecar_the_exporter_writes(tiny_onnx):
    # No TensorRT here: the engine's sidecar is checked through the codec the exporter writes it with
    # (``{"metadata": {...}}`` in ``<engine>.json``) and the metadata every export builds.
    from lsnet_deploy.metadata_codec import SIDECAR_SUFFIX, as_metadata_map

    snippet = "cpp/lsnet_tensorrt.cpp"
    assert _named_in(snippet, r'engine_path \+ "([^"]+)"') == SIDECAR_SUFFIX
    wrapper = _named_in(snippet, r'\.at\("(\w+)"\)')
    metadata = _raw_onnx_metadata(tiny_onnx)
    assert as_metadata_map({wrapper: metadata, "format": "tensorrt"}) == metadata
    _check_fields(snippet, metadata)


def test_onnxruntime_only_example_reads_what_an_onnx_carries(tiny_onnx):
    _check_fields("python/onnxruntime_only.py", _raw_onnx_metadata(tiny_onnx))
