"""Choosing a face detector for a command (``mfr.runtime.detectors``), and the package one needs.

A detector runs the package given (``--detector-package``: a package, a calibrated package, an engine
directory or a served model), else its default: YuNet's ships inside mfr; RetinaFace's is exported once
into the cache from the shipped weights where torch is installed (on a torch-free box the error says which
command to run). ``--detector-precision int8`` runs a calibrated package's INT8 model.
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
    """The package the detector runs: the one given, else its default (None: the package shipped with mfr),
    else one exported earlier into the cache, else (with torch) exported there now."""
    model = entry.package_model
    if package is not None or model is None:
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


def make_detector(name: str, package: Path | str | None, cache_dir: Path, log: Callable[[str], None],
                  precision: str | None = None) -> tuple[FaceDetector, str]:
    """The detector for photos and a name recording exactly which one (for cache keys and reports)."""
    entry = DETECTORS.entry(name)
    return entry.make(name, detector_package(name, entry, package, cache_dir, log), precision)


def make_video_detector(name: str, package: Path | str | None, detect_size: int, cache_dir: Path,
                        log: Callable[[str], None], precision: str | None = None,
                        threads: int = 0) -> tuple[FaceDetector, str]:
    """The detector for video (``mfr watch``, its benchmarks), frames resized to ``detect_size``; ``threads``:
    CPU threads of one detection (0: every core; 1 in the pipelined loop, whose workers are the parallelism)."""
    entry = DETECTORS.entry(name)
    return entry.make(name, detector_package(name, entry, package, cache_dir, log), precision, detect_size, threads)
