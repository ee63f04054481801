"""``mfr eval --dataset detection``: how well a face detector package finds faces, at a precision.

Two references, both reported:
- **Truth** on generated clips (``mfr.data.clips``, the judging seeds, never those calibration draws from):
  recall of the faces at IoU 0.5 and false positives per frame, with the detector as ``mfr watch`` runs it
  (frames fitted to ``detect_size``, its video score floor). Faces mostly hidden (less than
  ``MIN_VISIBLE`` of the box visible, behind the pillar, another face or the frame edge) are not counted:
  a detection of one is neither a hit nor a false positive. Clips carry boxes only: a pasted photo's own
  landmarks are not known exactly, so landmarks are not judged against truth.
- **The FP32 model** of the same package, on real photos (MFR2, the demo photos) and the clips' frames:
  the FP32 faces (score >= 0.5) the other precision misses, the faces it adds, and its landmark error
  against FP32's (NME, % of the inter-ocular distance), with the photo settings of the detector. For
  scale, the FP32 row shows the same for FP32 itself on the photos with +-1 grey level of noise added.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.calibration.detection_agreement import Agreement
from mfr.data.clips import ClipConfig, clip_frames, make_clip
from mfr.paths import dataset_dir, report_path
from mfr.progress import Progress, no_progress
from mfr.runtime.detection import Face
from mfr.runtime.image_io import IMAGE_SUFFIXES, read_image_bgr
from mfr.runtime.machine import fingerprint
from mfr.runtime.package_detector import PackageDetector

MIN_VISIBLE = 0.5
PHOTO_SETS = ("mfr2", "demo")
DEFAULT_SEEDS = (0, 1, 2)


@dataclass
class PrecisionResult:
    precision: str
    detector: str  # exactly which model ran (file hash, settings)
    clips: dict[str, Any]  # Agreement vs truth
    detect_ms_p50: float  # per clip frame (resize, normalise, run, decode, suppress)
    versus_fp32: dict[str, dict[str, Any]] = field(default_factory=dict)  # photo set -> Agreement vs FP32
    # FP32 itself on the same images with +-1 grey level of noise added (the scale of the NME above: how far
    # the FP32 landmarks move under the smallest perturbation); reported with the fp32 row
    noise_floor: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class DetectionReport:
    model: str
    package: str
    clips: str  # what the clips were
    photos: dict[str, str]
    results: list[PrecisionResult] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": [asdict(r) for r in self.results]}


def judging_clips(cache_dir: Path, seeds: tuple[int, ...], log: Any = print) -> list[Path]:
    """The default clip of each seed (generated once into ``cache_dir``/clips)."""
    paths = []
    for seed in seeds:
        path = cache_dir / "clips" / f"seed-{seed}"
        if not (path / "truth.json").is_file():
            log(f"generating the clip of seed {seed}")
            make_clip(path, ClipConfig(seed=seed))
        paths.append(path)
    return paths


def photo_paths(name: str) -> list[Path]:
    root = dataset_dir(name)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _truth_faces(faces: list[dict[str, Any]]) -> tuple[list[Face], list[np.ndarray]]:
    counted = [f for f in faces if f["visible"] >= MIN_VISIBLE]
    ignored = [np.array(f["box"], float) for f in faces if f["visible"] < MIN_VISIBLE]
    return [Face(np.array(f["box"], float), 1.0, np.zeros((5, 2))) for f in counted], ignored


def evaluate_on_clips(detector: PackageDetector, clips: list[Path], every: int,
                      progress: Progress = no_progress) -> tuple[Agreement, float]:
    """Agreement with the clips' truth (every ``every``-th frame) and the median detection time in ms."""
    agreement, times = Agreement(), []
    for clip in progress(clips, len(clips), "clips"):
        for image, faces in zip(*clip_frames(clip, every), strict=True):
            counted, ignored = _truth_faces(faces)
            start = time.perf_counter()
            found = detector.detect(image)
            times.append(1000 * (time.perf_counter() - start))
            agreement.add(counted, found, with_landmarks=False, ignore=ignored)
    return agreement, float(np.median(times)) if times else 0.0


def versus_reference(reference: PackageDetector, detector: PackageDetector, images: list[np.ndarray],
                     others: list[np.ndarray] | None = None) -> Agreement:
    """``detector``'s faces on ``others`` (default: the same images) against ``reference``'s faces (score >=
    0.5) on ``images``, image by image."""
    agreement = Agreement()
    for image, other in zip(images, images if others is None else others, strict=True):
        agreement.add([f for f in reference.detect(image) if f.score >= 0.5], detector.detect(other))
    return agreement


def evaluate_detector(package: Path | str, precisions: list[str], cache_dir: Path,
                      seeds: tuple[int, ...] = DEFAULT_SEEDS, detect_size: int = 640, every: int = 2, log: Any = print,
                      progress: Progress = no_progress) -> DetectionReport:
    """Every precision of one detector package on the judging clips, and against its FP32 model on photos."""
    from mfr.runtime.detectors import entry_for_decoder

    fp32 = PackageDetector(package)
    entry = entry_for_decoder(fp32.manifest.decoder)
    clips = judging_clips(cache_dir, seeds, log)
    photos = {name: photo_paths(name) for name in PHOTO_SETS}
    report = DetectionReport(
        model=fp32.manifest.model, package=str(package),
        clips=f"generated 720p clips, seeds {', '.join(map(str, seeds))}, every {every}. frame; faces at least "
              f"{MIN_VISIBLE:.0%} visible counted",
        photos={name: f"{len(paths)} photos of {report_path(dataset_dir(name))}" for name, paths in photos.items()})
    photo_reference = entry.make("reference", package, "fp32")[0]
    images = {name: [read_image_bgr(p) for p in paths] for name, paths in photos.items()}
    for precision in precisions:
        video, name = entry.make(fp32.manifest.model, package, precision, detect_size)
        log(f"{name}: judging on the clips")
        agreement, detect_ms = evaluate_on_clips(video, clips, every, progress)
        result = PrecisionResult(precision, name, agreement.to_dict(), round(detect_ms, 2))
        if precision == "fp32":
            rng = np.random.default_rng(0)
            for set_name, pictures in images.items():
                noisy = [np.clip(p.astype(np.int16) + rng.integers(-1, 2, p.shape), 0, 255).astype(np.uint8)
                         for p in pictures]
                result.noise_floor[set_name] = versus_reference(photo_reference, photo_reference, pictures,
                                                                noisy).to_dict()
        else:
            photo_detector = entry.make(fp32.manifest.model, package, precision)[0]
            for set_name, pictures in images.items():
                result.versus_fp32[set_name] = versus_reference(photo_reference, photo_detector, pictures).to_dict()
            clip_images = [frame for clip in clips for frame in clip_frames(clip, every * 4)[0]]
            result.versus_fp32["clips"] = versus_reference(photo_reference, photo_detector, clip_images).to_dict()
        report.results.append(result)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The table of a report's JSON (``DetectionReport.to_dict``)."""
    lines = [f"{report['model']}; clips: {report['clips']}", "",
             "| precision | clips: recall @ IoU 0.5 | false positives / frame | detect p50 ms | vs FP32 on | FP32 "
             "faces missed | faces added | landmark NME |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for result in report["results"]:
        clips = result["clips"]
        head = (f"| {result['precision']} | {100 * clips['recall']:.2f} % ({clips['matched']}/"
                f"{clips['reference_faces']}) | {clips['extra_per_frame']:.3f} | {result['detect_ms_p50']} ")
        rows = result["versus_fp32"] or {f"{name}, +-1 grey level": a for name, a in result["noise_floor"].items()}
        if not rows:
            lines.append(head + "| - | - | - | - |")
        for set_name, agreement in rows.items():
            nme = agreement["landmark_nme_pct"]
            lines.append(head + f"| {set_name} ({agreement['reference_faces']} faces) | "
                                f"{100 * (1 - agreement['recall']):.2f} pp | {agreement['extra']} | "
                                f"{'-' if nme is None else f'{nme:.2f} %'} |")
            head = "| | | | "
    return "\n".join(lines)
