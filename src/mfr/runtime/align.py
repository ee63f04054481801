"""Similarity transforms from 5 facial landmarks to a model's alignment template.

Least-squares similarity (rotation, uniform scale, translation) after Umeyama (1991), the estimator
insightface uses through scikit-image; written out here so the runtime needs only numpy.
"""

from __future__ import annotations

import numpy as np

from mfr.errors import SpecError
from mfr.spec import ARCFACE_TEMPLATE_112, PreprocessSpec


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix ``M`` minimising ``sum |M @ [src, 1] - dst|^2``.

    ``src`` and ``dst`` are (K, 2) point sets, K >= 2. Reflections are excluded, so a mirrored face is
    rotated, not flipped.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama needs two (K, 2) point sets with K >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 0:
        raise ValueError("umeyama: source points are all identical")
    scale = float((singular * sign).sum() / src_var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


# Pre-aligned face crops come in insightface's convention: 112x112, aligned to the ArcFace template (LFW-112x112,
# MS1M, CASIA-WebFace). Any model's crop is warped from them by its own template.
ALIGNED_CROP_SIZE = (112, 112)


def aligned_crop_landmarks(height: int, width: int) -> np.ndarray:
    """The 5 landmarks of a crop that is already aligned to the ArcFace template (as LFW-112x112 is),
    scaled to the crop's size."""
    return np.array(ARCFACE_TEMPLATE_112) * [width / 112, height / 112]


def is_aligned_crop(image: np.ndarray) -> bool:
    """Whether ``image`` is taken for a pre-aligned crop (its landmarks the template's), not a photo."""
    return tuple(image.shape[:2]) == ALIGNED_CROP_SIZE


def estimate_similarity(landmarks: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The 2x3 matrix mapping frame coordinates to the model's crop, from 5 landmarks (x, y)."""
    if spec.template is None:
        raise SpecError("this model's preprocessing spec has no alignment template")
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if points.shape != (len(spec.template), 2) or not np.isfinite(points).all():
        raise ValueError(
            f"expected {len(spec.template)} finite (x, y) landmarks, got array of shape {np.shape(landmarks)}"
        )
    return umeyama(points, np.asarray(spec.template, dtype=np.float64))
