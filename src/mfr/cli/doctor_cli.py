"""``mfr doctor``: versions, what is missing, and every engine path proved on this machine."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from mfr.cli.common import ReportOutput, log, report_options
from mfr.registry import DEFAULT_RECOGNITION_MODEL as RECOGNITION_MODEL


def doctor_package(package: Path | None, cache_dir: Path, log: Callable[[str], None]) -> Path | None:
    """The recognition package to check: the one given, or (where torch is installed) the default
    recognizer exported and quickly calibrated (64 faces, no LFW check) into the cache once; None on a
    torch-free box."""
    if package is not None:
        return package
    cached = cache_dir / "packages" / f"{RECOGNITION_MODEL}-doctor"
    if (cached / "manifest.json").is_file():
        return cached
    if importlib.util.find_spec("torch") is None:
        return None
    from mfr.calibration.package import PackageCalibrator
    from mfr.export.package import OnnxPackageExporter

    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / RECOGNITION_MODEL
        log(f"exporting {RECOGNITION_MODEL} and calibrating it quickly (64 faces) once into {cached}")
        OnnxPackageExporter(model=RECOGNITION_MODEL, out=fp32, parity_samples=4)(log=log)
        PackageCalibrator(package=fp32, out=cached, num_images=64, check_lfw=False, fallback_budget=4,
                          force=True)(log=log)
    return cached


@click.command("doctor")
@click.option("--package", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Recognition package to build engines from; calibrated (mfr-export calibrate) for INT8 [default: "
                   "the default recognizer (face-reid-0095), exported and quickly calibrated into the cache where "
                   "torch is installed].")
@click.option("--detector-package", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="RetinaFace package [default: exported into the cache where torch is installed].")
@click.option("--work", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the engines built here [default: a temporary directory, removed afterwards].")
@report_options
def doctor_command(package: Path | None, detector_package: Path | None, work: Path | None,
                   output: ReportOutput) -> None:
    """Check this machine for mfr: versions and what is missing, then build FP32/FP16/INT8 engines of the
    recognition model and FP32/FP16 engines of RetinaFace with every backend here (each compared with
    ONNX Runtime on real faces or photos, and timed), and run the CUDA preprocessing kernel against the
    CPU path. Run it on a GPU server or a Jetson after installing; without a GPU it says what it could not
    check and exits 0. Exits 1 if a check that ran failed.
    """
    from mfr.benchmarks.doctor import markdown_table, run_doctor
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import detector_package as find_detector_package
    from mfr.errors import MfrError
    from mfr.runtime.detectors import DETECTORS

    cache = default_cache_dir()
    package = doctor_package(package, cache, log)
    try:
        detector_package = Path(str(find_detector_package("retinaface", DETECTORS.entry("retinaface"),
                                                          detector_package, cache, log)))
    except MfrError as exc:  # a torch-free box without a detector package: reported as not checked
        log(str(exc))
        detector_package = None
    with tempfile.TemporaryDirectory() as scratch:
        found = run_doctor(package, detector_package, work or Path(scratch), log)
    output.text(markdown_table(found))
    output.data(found.to_dict())
    if found.failed:
        raise click.ClickException("a check failed (see the table above)")
