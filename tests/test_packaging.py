"""The built wheel maps models/ and exporters/ into lsnet_deploy.* and imports outside the repo."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from lsnet_deploy import Predictor
from lsnet_deploy.exporters import ExportOptions, export_model
from lsnet_deploy.models import load_model

from .conftest import CIFAR_TEST, CONFORMANCE, REPO


def test_wheel_installs_the_mapped_packages(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("lsnet_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lsnet_deploy/models/lsnet.py" in names and "lsnet_deploy/exporters/pipeline.py" in names
    assert not any(n.startswith(("models/", "exporters/")) for n in names)  # no generic top-level packages

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import lsnet_deploy, lsnet_deploy.models as m, lsnet_deploy.exporters as e, sys;"
            "print(m.__file__); print(e.__file__); print(sorted(e.available_formats()));"
            "print(any(k.split('.')[0] in ('onnx', 'onnxruntime', 'coremltools', 'tensorrt', 'executorch')"
            " for k in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    assert out[0].startswith(str(site)) and out[1].startswith(str(site))
    assert "onnx" in out[2]
    assert out[3] == "False", "importing lsnet_deploy must not import heavy optional libraries"


@pytest.mark.slow
def test_torch_free_install_predicts_with_an_onnx(tmp_path):
    """``pip install "lsnet-deploy[runtime]"`` into a fresh venv brings no torch and still predicts with an
    ``.onnx`` exactly as the full install does; a command that needs torch names the extra in one line."""
    onnx_path = tmp_path / "tiny.onnx"
    export_model(load_model(CONFORMANCE / "tiny.pth", img_size=128), "onnx", onnx_path, ExportOptions())
    picture = next((CIFAR_TEST / "cat").iterdir())
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("lsnet_deploy-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[runtime]"],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    has_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert has_torch.returncode != 0, "the runtime install pulled torch"

    run = subprocess.run([str(venv / "bin" / "lsnet-predict"), str(onnx_path), str(picture), "--json", "-k", "3"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    torch_free = json.loads(run.stdout.splitlines()[0])["predictions"]
    with Predictor(onnx_path) as predictor:
        (full,) = predictor.predict([picture], topk=3)
    assert [p["index"] for p in torch_free] == list(full.indices)
    np.testing.assert_allclose([p["score"] for p in torch_free], full.scores, rtol=0, atol=1e-5)

    export = subprocess.run([str(venv / "bin" / "lsnet-export"), "-f", "onnx", "-o", str(tmp_path / "x.onnx")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert export.returncode == 1 and export.stderr.count("\n") == 1, export.stderr
    assert 'pip install "lsnet-deploy[torch]"' in export.stderr
    assert not (tmp_path / "x.onnx").exists()
