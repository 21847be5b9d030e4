"""The built wheel maps models/ and exporters/ into lsnet_deploy.* and imports outside the repo."""

import os
import subprocess
import sys
import zipfile

from .conftest import REPO


def test_wheel_installs_the_mapped_packages(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("lsnet_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lsnet_deploy/models/lsnet.py" in names and "lsnet_deploy/exporters/base.py" in names
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
