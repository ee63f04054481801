"""Shared fixtures. Packages are exported once per session; tests that need torch skip without it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
from pathlib import Path

import pytest

from mfr.data.clips import ClipConfig

HAS_TORCH = importlib.util.find_spec("torch") is not None
# MobileFaceNet's shipped weights, as recorded with their provenance in ../shared/SOURCES.md
SHIPPED_MOBILEFACENET_SHA256 = "90a00ba1d8b0b688af3deb731ed53dca582e6106805d1bc3cfdef55f570493f4"
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


SMALL_CLIP = ClipConfig(width=1280, height=720, fps=15, known_lfw=3, known_mfr2=1, strangers=4, appearances=2,
                        concurrency=3, seconds_per_track=3.0, seed=0)


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a test's own server, or a port known to be closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short synthetic clip of real faces with its ground truth (``mfr.data.clips``)."""
    from mfr.data.clips import make_clip

    out = tmp_path_factory.mktemp("clip")
    make_clip(out, SMALL_CLIP)
    return out


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A real PostgreSQL with pgvector (``tests/servers/postgres.py``), for the session."""
    from tests.servers.postgres import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres") / "data")
    server.start()
    yield server
    server.stop()


def first_and_last(rows: list[dict], term: str = "loss", stage: str | None = None) -> tuple[float, float]:
    """Mean ``term`` over the first and over the last two training-log steps that logged it (of ``stage``, or of
    all): how the trainers' tests see whether a loss fell."""
    values = [r[term] for r in rows if stage in (None, r.get("stage")) and term in r and r[term] == r[term]]  # no NaN
    return sum(values[:2]) / 2, sum(values[-2:]) / 2


def int8_cosine_bar() -> float:
    """The mean INT8-vs-FP32 embedding cosine the quickly calibrated test package must reach on this CPU.

    Close to what the README reports for the full calibration: 0.9945 on a CPU without VNNI (ONNX
    Runtime's u8s8 kernels saturate there), 0.998 with AVX-512 VNNI. The test package, calibrated on 64
    faces, measured 0.9943 without VNNI."""
    from mfr.runtime.machine import instruction_set

    return 0.996 if instruction_set() in ("AVX-512 VNNI", "AVX-VNNI") else 0.99


def exported_package(tmp_path_factory: pytest.TempPathFactory, model: str) -> Path:
    """A shipped model exported once per session (skipped where torch is absent)."""
    pytest.importorskip("torch")
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path_factory.mktemp("packages") / model
    OnnxPackageExporter(model=model, out=out)(log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def mobilefacenet_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_package(tmp_path_factory, "mobilefacenet")


@pytest.fixture(scope="session")
def face_reid_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_package(tmp_path_factory, "face-reid-0095")


@pytest.fixture(scope="session")
def thresholded_package(mobilefacenet_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with identification thresholds measured quickly (200 faces: FARs down to about 1e-4)."""
    import shutil

    from click.testing import CliRunner

    from mfr.cli.main import cli

    target = tmp_path_factory.mktemp("thresholds") / "mfn"
    shutil.copytree(mobilefacenet_package, target)
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(target), "--images", "200", "--write", "--json"])
    assert result.exit_code == 0, result.output
    return target


@pytest.fixture(scope="session")
def cohort_package(mobilefacenet_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with thresholds and the cohort of normalised scores measured on 300 faces (enough
    to show a 1 % stranger rate with 90 % confidence; 200 are not)."""
    import shutil

    from click.testing import CliRunner

    from mfr.cli.main import cli

    target = tmp_path_factory.mktemp("cohort") / "mfn"
    shutil.copytree(mobilefacenet_package, target)
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(target), "--images", "300", "--write"])
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
    result = CliRunner().invoke(cli, ["calibrate", "--model", str(mobilefacenet_package), "--out", str(out),
                                      "--num-images", "64", "--no-lfw-check", "--fallback-budget", "4", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 faces each of 6 LFW people from the training split (never in the held-out folds)."""
    from mfr.training.data import lfw_demo_split

    split = lfw_demo_split()
    root = tmp_path_factory.mktemp("tiny") / "faces"
    people = [p for p in split.people if len(list((split.paths[0].parents[1] / p).glob("*.jpg"))) >= 3][:6]
    for person in people:
        (root / person).mkdir(parents=True)
        for image in sorted((split.paths[0].parents[1] / person).glob("*.jpg"))[:3]:
            shutil.copy(image, root / person / image.name)
    return root
