"""Shared fixtures. Packages are exported once per session; tests that need torch skip without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch (pip install 'mfr[export]')")


@pytest.fixture(scope="session")
def mobilefacenet_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path_factory.mktemp("packages") / "mobilefacenet"
    OnnxPackageExporter(model="mobilefacenet", out=out)(log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def retinaface_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path_factory.mktemp("packages") / "retinaface"
    OnnxPackageExporter(model="retinaface-mnet025", out=out, parity_samples=4)(log=lambda _: None)
    return out
