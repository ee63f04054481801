"""Calibration faces: real, aligned and preprocessed by the package's own spec.

Default: LFW images of people who appear in no pair of ``pairs.txt`` (so calibration never sees an
evaluation face), a configurable share of them with synthetic masks. ``--calib-dir`` takes the user's
own faces: 112x112-style crops matching the spec's size are taken as aligned, anything else is
detected and aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.data.lfw import lfw_images_outside_pairs, lfw_root
from mfr.errors import DataError
from mfr.paths import report_path
from mfr.runtime.align import ALIGNED_CROP_SIZE, aligned_crop_landmarks, estimate_similarity, is_aligned_crop
from mfr.runtime.detection import FaceDetector, largest_face
from mfr.runtime.image_io import IMAGE_SUFFIXES, read_image_bgr
from mfr.runtime.preprocess import normalize, warp_face
from mfr.spec import PreprocessSpec

MIN_IMAGES = 64


@dataclass(frozen=True)
class CalibrationSet:
    inputs: np.ndarray  # (N, 3, H, W) float32, preprocessed by the spec
    paths: list[str]
    masked: int
    source: str


def _spread(paths: list[Path], count: int, seed: int) -> list[Path]:
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order[:count]]


def load_calibration_set(spec: PreprocessSpec, num_images: int, masked_share: float, seed: int = 0,
                         calib_dir: Path | None = None, detector: FaceDetector | None = None,
                         skip: int = 0) -> CalibrationSet:
    """``num_images`` preprocessed faces; ``skip`` leaves out the first ``skip`` of the shuffled pool
    (held-out faces for sensitivity analysis are drawn after the calibration faces)."""
    if num_images < MIN_IMAGES:
        raise DataError(f"calibration needs at least {MIN_IMAGES} images, {num_images} requested")
    if calib_dir is not None:
        pool = sorted(p for p in Path(calib_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        source = str(calib_dir)
    else:
        pool = lfw_images_outside_pairs()
        source = f"LFW people in no evaluation pair ({report_path(lfw_root())})"
    if len(pool) < skip + num_images:
        raise DataError(f"{source}: {len(pool)} images found, calibration needs {skip + num_images} "
                        f"(at least {MIN_IMAGES})")
    chosen = _spread(pool, skip + num_images, seed)[skip:]
    masks = MaskGenerator(seed=seed) if masked_share > 0 else None
    n_masked = int(round(masked_share * len(chosen)))
    crops = []
    for i, path in enumerate(chosen):
        image = read_image_bgr(path)
        points = _landmarks(path, image, spec, detector)
        if masks is not None and i < n_masked:
            image = masks.apply(image, points, key=f"calibration/{path.name}")
        crops.append(warp_face(image, estimate_similarity(points, spec), spec))
    return CalibrationSet(normalize(np.stack(crops), spec), [str(p) for p in chosen], n_masked, source)


def _landmarks(path: Path, image: np.ndarray, spec: PreprocessSpec, detector: FaceDetector | None) -> np.ndarray:
    if spec.input_size is None or spec.template is None:
        raise DataError("calibration faces need a recognition spec with an input size and a template")
    height, width = image.shape[:2]
    if is_aligned_crop(image):  # an aligned crop, as in LFW-112x112
        return aligned_crop_landmarks(height, width)
    if detector is None:
        raise DataError(f"{path}: {width}x{height} is not an aligned crop ({ALIGNED_CROP_SIZE[1]}x"
                        f"{ALIGNED_CROP_SIZE[0]}, ArcFace template), and no detector was given to align it")
    face = largest_face(detector.detect(image))
    if face is None:
        raise DataError(f"{path}: no face found in this calibration image")
    return face.landmarks
