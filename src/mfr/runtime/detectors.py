"""The face detectors a command can choose (``--detector``): one registry line per detector.

Each entry builds its detector for photos (enrolment, identification, evaluation: the detector's own
defaults) and for video (``mfr watch`` and its benchmarks: frames resized to ``detect_size`` and a low
score floor, because the tracker's second association stage uses the weak faces), and says which exported
package it needs, if any (RetinaFace: the CLI finds or exports one; YuNet ships inside the package).
A detector takes its package's path (None where it needs none) and returns the detector with a name that
records exactly which one it is (for cache keys and reports).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mfr.plugins import Registry
from mfr.runtime.detection import FaceDetector

Package = Path | str | None


@dataclass(frozen=True)
class DetectorEntry:
    photos: Callable[[Package], tuple[FaceDetector, str]]
    video: Callable[[Package, int], tuple[FaceDetector, str]]
    package_model: str | None = None  # the registry model whose exported package it runs (None: ships with mfr)


def _yunet_photos(_: Package) -> tuple[FaceDetector, str]:
    from mfr.runtime.yunet import DEFAULT_MODEL, YuNetDetector

    return YuNetDetector(), f"yunet ({DEFAULT_MODEL})"


def _yunet_video(_: Package, detect_size: int) -> tuple[FaceDetector, str]:
    from mfr.runtime.yunet import DEFAULT_MODEL, YuNetDetector

    return YuNetDetector(score_threshold=0.3, max_side=detect_size), f"yunet ({DEFAULT_MODEL}, {detect_size} px)"


def _retinaface_photos(package: Package) -> tuple[FaceDetector, str]:
    from mfr.runtime.retinaface import RetinaFaceDetector

    assert package is not None, "RetinaFace runs an exported package"
    detector = RetinaFaceDetector(package)
    return detector, f"retinaface ({detector.manifest.sha256['onnx'][:12]})"


def _retinaface_video(package: Package, detect_size: int) -> tuple[FaceDetector, str]:
    from mfr.runtime.retinaface import RetinaFaceDetector

    assert package is not None, "RetinaFace runs an exported package"
    detector = RetinaFaceDetector(package, score_threshold=0.3, max_side=detect_size, min_side=min(320, detect_size))
    return detector, f"retinaface ({detector.manifest.sha256['onnx'][:12]}, {detect_size} px)"


DETECTORS: Registry[DetectorEntry] = Registry("face detector")
DETECTORS.register("retinaface", DetectorEntry(_retinaface_photos, _retinaface_video, "retinaface-mnet025"))
DETECTORS.register("yunet", DetectorEntry(_yunet_photos, _yunet_video))
