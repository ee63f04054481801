"""Similarity transforms from 5 facial landmarks to a model's alignment template.

Least-squares similarity (rotation, uniform scale, translation) after Umeyama (1991), the estimator
insightface uses through scikit-image; written out here so the runtime needs only numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return umeyama_many(src[None], dst)[0]


def umeyama_many(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``umeyama`` of N point sets (N, K, 2) onto one (K, 2) target at once: (N, 2, 3) matrices.

    One array computation instead of a Python loop per face: a frame's faces (or a GPU batch of 256) are
    fitted in about a tenth of the time. ``umeyama`` and ``estimate_similarity`` call it too, so a face gets
    the same matrix bit for bit whether it is aligned alone or in a batch, on the CPU path or the GPU's.
    """
    count, points = src.shape[:2]
    dst = np.broadcast_to(dst, src.shape)
    src_mean, dst_mean = src.mean(axis=1), dst.mean(axis=1)
    src_c, dst_c = src - src_mean[:, None], dst - dst_mean[:, None]
    covariance = np.matmul(dst_c.transpose(0, 2, 1), src_c) / points
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones((count, 2))
    sign[np.linalg.det(u) * np.linalg.det(vt) < 0, 1] = -1.0
    rotation = np.matmul(u * sign[:, None, :], vt)
    src_var = (src_c**2).sum(axis=(1, 2)) / points
    if (src_var <= 0).any():
        raise ValueError("umeyama: source points are all identical")
    scale = (singular * sign).sum(axis=1) / src_var
    matrix = np.empty((count, 2, 3))
    matrix[:, :, :2] = scale[:, None, None] * rotation
    matrix[:, :, 2] = dst_mean - np.matmul(matrix[:, :, :2], src_mean[:, :, None])[:, :, 0]
    return matrix


def invert_affine_many(matrices: np.ndarray) -> np.ndarray:
    """(N, 2, 3) affine matrices inverted as OpenCV's ``invertAffineTransform`` does (in float64, the same
    operations in the same order; compared bit for bit in the tests), for N at once: (N, 6) rows of the
    inverse. A singular matrix gives zeros, as in OpenCV."""
    m = np.asarray(matrices, dtype=np.float64)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    inv_det = np.divide(1.0, det, out=np.zeros_like(det), where=det != 0)
    a11, a22 = m[:, 1, 1] * inv_det, m[:, 0, 0] * inv_det
    a12, a21 = -m[:, 0, 1] * inv_det, -m[:, 1, 0] * inv_det
    b1 = -a11 * m[:, 0, 2] - a12 * m[:, 1, 2]
    b2 = -a21 * m[:, 0, 2] - a22 * m[:, 1, 2]
    return np.stack([a11, a12, b1, a21, a22, b2], axis=1)


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
    return estimate_similarities([np.asarray(landmarks, dtype=np.float64)], spec)[0]


def estimate_similarities(landmarks: Sequence[np.ndarray] | np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``estimate_similarity`` of every face at once: N sets of 5 landmarks -> (N, 2, 3) matrices."""
    if spec.template is None:
        raise SpecError("this model's preprocessing spec has no alignment template")
    count = len(landmarks)
    if count == 0:
        return np.zeros((0, 2, 3))
    try:
        points = np.asarray(landmarks, dtype=np.float64).reshape(count, -1, 2)
    except ValueError:  # faces with different numbers of values
        points = np.zeros((count, 0, 2))
    if points.shape[1:] != (len(spec.template), 2) or not np.isfinite(points).all():
        shapes = sorted({str(np.shape(face)) for face in landmarks})
        raise ValueError(f"expected {len(spec.template)} finite (x, y) landmarks per face, got {', '.join(shapes)}")
    return umeyama_many(points, np.asarray(spec.template, dtype=np.float64))
