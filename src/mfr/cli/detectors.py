"""Choosing a face detector for a command: RetinaFace from a package, or the shipped YuNet.

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

DETECTORS = ("retinaface", "yunet")
RETINAFACE_MODEL = "retinaface-mnet025"


def retinaface_package(package: Path | str | None, cache_dir: Path, log: Callable[[str], None]) -> Path | str:
    if package is not None:
        return package
    cached = cache_dir / "packages" / RETINAFACE_MODEL
    if (cached / MANIFEST_NAME).is_file():
        return cached
    if importlib.util.find_spec("torch") is None:
        raise MfrError(f"no RetinaFace package: run `mfr-export onnx --model {RETINAFACE_MODEL} --out DIR` on a "
                       "machine with torch and pass --detector-package DIR, or use --detector yunet")
    from mfr.export.package import OnnxPackageExporter

    log(f"exporting the RetinaFace detector once into {cached}")
    OnnxPackageExporter(model=RETINAFACE_MODEL, out=cached, parity_samples=4, force=True)(log=log)
    return cached


def make_detector(name: str, package: Path | str | None, cache_dir: Path,
                  log: Callable[[str], None]) -> tuple[FaceDetector, str]:
    """The detector and a name recording exactly which one (for cache keys and reports)."""
    if name == "yunet":
        from mfr.runtime.yunet import DEFAULT_MODEL, YuNetDetector

        return YuNetDetector(), f"yunet ({DEFAULT_MODEL})"
    if name == "retinaface":
        from mfr.runtime.retinaface import RetinaFaceDetector

        path = retinaface_package(package, cache_dir, log)
        detector = RetinaFaceDetector(path)
        return detector, f"retinaface ({detector.manifest.sha256['onnx'][:12]})"
    raise MfrError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")


def make_video_detector(name: str, package: Path | str | None, detect_size: int, cache_dir: Path,
                        log: Callable[[str], None]) -> tuple[FaceDetector, str]:
    """The detector for video (``mfr watch``, its benchmarks): frames resized to ``detect_size`` and a low
    score floor, because the tracker's second association stage uses the weak faces."""
    if name == "yunet":
        from mfr.runtime.yunet import DEFAULT_MODEL, YuNetDetector

        return YuNetDetector(score_threshold=0.3, max_side=detect_size), f"yunet ({DEFAULT_MODEL}, {detect_size} px)"
    if name == "retinaface":
        from mfr.runtime.retinaface import RetinaFaceDetector

        detector = RetinaFaceDetector(retinaface_package(package, cache_dir, log), score_threshold=0.3,
                                      max_side=detect_size, min_side=min(320, detect_size))
        return detector, f"retinaface ({detector.manifest.sha256['onnx'][:12]}, {detect_size} px)"
    raise MfrError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
