"""The examples an app developer copies: the Python ones run, the C++ and Java preprocessing compile and
match the Python preprocessing bit for bit, the platform snippets read the same metadata fields."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lsnet_deploy import Predictor
from lsnet_deploy.preprocess import Preprocessing, load_rgb, preprocess_one

from .conftest import synthetic_photo

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


@pytest.mark.parametrize("snippet", ["swift/LSNetClassifier.swift", "android/LsnetClassifier.kt",
                                     "cpp/lsnet_tensorrt.cpp", "python/onnxruntime_only.py"])
def test_platform_snippets_read_the_metadata_fields(snippet):
    text = (EXAMPLES / snippet).read_text()
    for field in ("input_size", "mean", "std", "crop_pct", "labels"):
        assert f'"{field}"' in text, f"{snippet} does not read {field}"
