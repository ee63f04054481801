"""A plain (non-editable) ``pip install .`` gives working imports, console scripts and shipped weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tensorrt_api.stubs import prepare_stubs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    return target


def _run(target: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_installed_package_imports_every_stage_from_site_packages(installed, tmp_path):
    code = (
        "import mfr, mfr.export, mfr.calibration, mfr.runtime, mfr.recognition.gallery, mfr.benchmarks, mfr.cli.main\n"
        "import mfr.cli.export_cli\n"
        "from mfr.registry import MODELS\n"
        "for m in (mfr, mfr.export, mfr.runtime):\n"
        "    print(m.__file__)\n"
        "for name in ('mobilefacenet', 'retinaface-mnet025'):\n"
        "    w = MODELS[name].default_weights\n"
        "    print(w, w.is_file(), (w.parent / 'LICENSE').is_file())\n"
    )
    result = _run(installed, code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in lines[:3]:
        assert line.startswith(str(installed)), line  # not the source checkout
    for line in lines[3:]:
        assert line.startswith(str(installed)) and line.endswith("True True"), line
    assert (installed / "mfr" / "weights" / "yunet" / "yunet_n_dynamic.onnx").is_file()
    assert (installed / "mfr" / "weights" / "mask-classifier" / "mask_classifier.npz").is_file()
    assert (installed / "mfr" / "runtime" / "cuda" / "warp_normalize.cu").is_file()  # compiled at first use


def test_installed_console_scripts_exist(installed, tmp_path):
    for script in ("mfr", "mfr-export"):
        assert (installed / "bin" / script).is_file()
    result = _run(installed, "from mfr.cli.main import cli; cli(['models'])", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mobilefacenet" in result.stdout and "retinaface-mnet025" in result.stdout


def test_the_source_tree_type_checks(tmp_path):
    """mypy on the source tree as it is (src/mfr: the folders are the import paths), no install needed.

    TensorRT's stubs are on the path, so every TensorRT call is checked against TensorRT 10.13's API
    (tests/test_tensorrt_static.py shows that a wrong call would fail this)."""
    pytest.importorskip("mypy")
    stubs = prepare_stubs(tmp_path / "stubs")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "-p", "mfr"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": f"{ROOT / 'src'}{os.pathsep}{stubs}"}, capture_output=True,
        text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_gpu_extras_pin_cuda_python_and_nvrtc_to_one_cuda_major():
    """cuda-python and NVRTC must be of the CUDA major the TensorRT build uses: each GPU extra names one."""
    import re

    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu = {name: deps for name, deps in extras.items() if re.fullmatch(r"(cuda|trt-cu)1[23]", name)}
    assert set(gpu) == {"cuda12", "cuda13", "trt-cu12", "trt-cu13"}
    for name, deps in gpu.items():
        major = int(name[-2:])
        cuda_python = next(d for d in deps if d.startswith("cuda-python"))
        assert f">={major}" in cuda_python and f"<{major + 1}" in cuda_python, (name, cuda_python)
        nvrtc = next(d for d in deps if d.startswith("nvidia-cuda-nvrtc"))
        # the NVRTC wheel is named by its major up to CUDA 12 (-cu12) and versioned by it from CUDA 13 on
        assert nvrtc.startswith(f"nvidia-cuda-nvrtc-cu{major}") if major == 12 else f">={major}" in nvrtc, nvrtc
        tensorrt = [d for d in deps if d.startswith("tensorrt")]
        assert tensorrt == [] or tensorrt[0].startswith(f"tensorrt-cu{major}"), (name, tensorrt)
