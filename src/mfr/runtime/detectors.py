"""The face detectors a command can choose (``--detector``): one registry line per detector.

Every detector runs a model package through ``PackageDetector`` (the engine interface, so FP32, INT8, a
TensorRT engine or a served model alike); an entry says where its package comes from (shipped inside mfr,
or exported from a registry model: the CLI finds or exports it) and its settings for photos (enrolment,
identification, evaluation) and for video (``mfr watch`` and its benchmarks: frames resized to
``detect_size`` and a low score floor, because the tracker's second association stage uses the weak faces).
``make`` returns the detector with a name that records exactly which model it runs (for cache keys and
reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfr.atomic import sha256_file
from mfr.errors import MfrError
from mfr.paths import bundled_weights
from mfr.plugins import Registry
from mfr.runtime.package_detector import PackageDetector

Package = Path | str | None


@dataclass(frozen=True)
class DetectorSettings:
    score_threshold: float
    nms_threshold: float
    min_side: int = 0  # smaller images are upscaled to this longest side (landmarks of small faces)


@dataclass(frozen=True)
class DetectorEntry:
    photos: DetectorSettings
    video: DetectorSettings  # min_side is capped at the video's detect size
    decoder: str  # the decoder type of its packages (manifest ``decoder.type``)
    package_model: str | None = None  # the registry model whose exported package it runs
    shipped: str | None = None  # or the package shipped in mfr's weights folder of this name

    def default_package(self) -> Path | None:
        return None if self.shipped is None else bundled_weights(self.shipped)

    def make(self, name: str, package: Package, precision: str | None = None, detect_size: int | None = None,
             threads: int = 0) -> tuple[PackageDetector, str]:
        """The detector for photos (``detect_size`` None: up to 640 px) or video, and its name; ``threads``:
        CPU threads of one detection (0: every core)."""
        location = package if package is not None else self.default_package()
        if location is None:
            raise MfrError(f"the {name} detector runs an exported package; none was given")
        settings = self.photos if detect_size is None else self.video
        max_side = 640 if detect_size is None else detect_size
        detector = PackageDetector(location, precision, settings.score_threshold, settings.nms_threshold, max_side,
                                   min(settings.min_side, max_side), threads)
        held = (detector.manifest.decoder or {}).get("type")
        if held != self.decoder:  # another family's package would run with this one's thresholds
            raise MfrError(f"{location} holds a {held} detector; --detector {name} runs {self.decoder} packages "
                           f"(choose --detector {held})")
        engine = detector.engine
        shipped_fp32 = package is None and self.shipped is not None and engine.precision == "fp32"
        label = (engine.model_file.name if shipped_fp32 and engine.model_file is not None
                 else str(engine.remote) if engine.model_file is None else sha256_file(engine.model_file)[:12])
        parts = [label] + ([engine.precision] if engine.precision != "fp32" else []) + \
            ([f"{detect_size} px"] if detect_size is not None else [])
        return detector, f"{name} ({', '.join(parts)})"


DETECTORS: Registry[DetectorEntry] = Registry("face detector")
DETECTORS.register("retinaface", DetectorEntry(DetectorSettings(0.5, 0.4, min_side=320),
                                               DetectorSettings(0.3, 0.4, min_side=320), "retinaface",
                                               package_model="retinaface-mnet025"))
DETECTORS.register("yunet", DetectorEntry(DetectorSettings(0.6, 0.3), DetectorSettings(0.3, 0.3), "yunet",
                                          shipped="yunet"))


def entry_for_decoder(decoder: dict[str, Any] | None) -> DetectorEntry:
    """The detector whose packages carry this decoder (for a package given without a --detector)."""
    kind = (decoder or {}).get("type")
    found = next((entry for entry in DETECTORS.values() if entry.decoder == kind), None)
    if found is None:
        raise MfrError(f"no registered detector decodes {kind!r} packages ({', '.join(DETECTORS)} do)")
    return found


def shipped_yunet(**settings: float) -> PackageDetector:
    """YuNet from the package shipped inside mfr: its photo settings, overridden by ``settings``
    (``PackageDetector``'s keywords)."""
    defaults = DETECTORS["yunet"].photos
    chosen = {"score_threshold": defaults.score_threshold, "nms_threshold": defaults.nms_threshold, **settings}
    return PackageDetector(bundled_weights("yunet"), **chosen)  # type: ignore[arg-type]
