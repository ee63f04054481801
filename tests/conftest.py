"""Shared fixtures. Packages are exported once per session; tests that need torch skip without it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch (pip install 'mfr[export]')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``tensorrt`` need TensorRT and a GPU, tests marked ``gpu`` a GPU: skipped elsewhere,
    with the reason in the summary (``-ra``), so a run says plainly what it did not check."""
    from mfr.runtime.machine import gpu_info, tensorrt_version

    has_gpu = gpu_info() is not None
    has_tensorrt = tensorrt_version() is not None
    for item in items:
        if "tensorrt" in item.keywords and not (has_tensorrt and has_gpu):
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and an NVIDIA GPU (not on this machine)"))
        elif "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU (not on this machine)"))


def int8_cosine_bar() -> float:
    """The mean INT8-vs-FP32 embedding cosine the quickly calibrated test package must reach on this CPU.

    Close to what the README reports for the full calibration: 0.9945 on a CPU without VNNI (ONNX
    Runtime's u8s8 kernels saturate there), 0.998 with AVX-512 VNNI. The test package, calibrated on 64
    faces, measured 0.9943 without VNNI."""
    from mfr.runtime.machine import instruction_set

    return 0.996 if instruction_set() in ("AVX-512 VNNI", "AVX-VNNI") else 0.99


@pytest.fixture(scope="session")
def mobilefacenet_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path_factory.mktemp("packages") / "mobilefacenet"
    OnnxPackageExporter(model="mobilefacenet", out=out)(log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def thresholded_package(mobilefacenet_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with identification thresholds measured quickly (200 faces: FARs down to about 1e-4)."""
    import shutil

    from click.testing import CliRunner

    from mfr.cli.main import cli

    target = tmp_path_factory.mktemp("thresholds") / "mfn"
    shutil.copytree(mobilefacenet_package, target)
    result = CliRunner().invoke(cli, ["thresholds", "--package", str(target), "--images", "200", "--write", "--json"])
    assert result.exit_code == 0, result.output
    return target


@pytest.fixture(scope="session")
def retinaface_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path_factory.mktemp("packages") / "retinaface"
    OnnxPackageExporter(model="retinaface-mnet025", out=out, parity_samples=4)(log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def calibrated(mobilefacenet_package: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A quickly calibrated MobileFaceNet package (64 faces, no LFW-driven fallback) and its record."""
    from click.testing import CliRunner

    from mfr.cli.export_cli import cli

    out = tmp_path_factory.mktemp("calibrated") / "mfn-int8"
    result = CliRunner().invoke(cli, ["calibrate", "--package", str(mobilefacenet_package), "--out", str(out),
                                      "--num-images", "64", "--no-lfw-check", "--fallback-budget", "4", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output[result.output.index("{"):])
