"""Choosing a face detector for a command (``mfr.runtime.detectors``), and the package one needs.

RetinaFace needs an exported package. If none is given, one exported earlier into the cache is used,
or (where torch is installed) exported there once from the shipped weights; on a torch-free box the
error says which command to run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from mfr.errors import MfrError
from mfr.manifest import MANIFEST_NAME
from mfr.runtime.detection import FaceDetector
from mfr.runtime.detectors import DETECTORS, DetectorEntry


def detector_package(name: str, entry: DetectorEntry, package: Path | str | None, cache_dir: Path,
                     log: Callable[[str], None]) -> Path | str | None:
    """The package the detector runs: the one given, else one exported earlier into the cache, else (with
    torch) exported there now from the shipped weights. None for a detector that needs no package."""
    model = entry.package_model
    if model is None:
        return None
    if package is not None:
        return package
    cached = cache_dir / "packages" / model
    if (cached / MANIFEST_NAME).is_file():
        return cached
    if importlib.util.find_spec("torch") is None:
        raise MfrError(f"no {name} package: run `mfr-export onnx --model {model} --out DIR` on a machine with "
                       f"torch and pass --detector-package DIR, or choose another --detector")
    from mfr.export.package import OnnxPackageExporter

    log(f"exporting the {name} detector once into {cached}")
    OnnxPackageExporter(model=model, out=cached, parity_samples=4, force=True)(log=log)
    return cached


def make_detector(name: str, package: Path | str | None, cache_dir: Path,
                  log: Callable[[str], None]) -> tuple[FaceDetector, str]:
    """The detector for photos and a name recording exactly which one (for cache keys and reports)."""
    entry = DETECTORS.entry(name)
    return entry.photos(detector_package(name, entry, package, cache_dir, log))


def make_video_detector(name: str, package: Path | str | None, detect_size: int, cache_dir: Path,
                        log: Callable[[str], None]) -> tuple[FaceDetector, str]:
    """The detector for video (``mfr watch``, its benchmarks), frames resized to ``detect_size``."""
    entry = DETECTORS.entry(name)
    return entry.video(detector_package(name, entry, package, cache_dir, log), detect_size)
