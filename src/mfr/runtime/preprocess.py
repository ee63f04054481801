"""CPU preprocessing, driven only by a model's ``PreprocessSpec``: align, colour, normalise, NCHW.

This is the reference path: the CUDA kernel (``cuda/warp_normalize.cu``) must match it, and export's
parity check and calibration feed models through it, so every stage sees the same tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mfr.runtime.align import aligned_crop_landmarks, estimate_similarities, estimate_similarity
from mfr.spec import ColorOrder, PreprocessSpec


def warp_face(image: np.ndarray, matrix: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Warp ``image`` by the frame->crop ``matrix`` into a crop of the spec's size (bilinear, black border)."""
    if spec.input_size is None:
        raise ValueError("warp_face needs a spec with a fixed input_size")
    height, width = spec.input_size
    return cv2.warpAffine(
        image, np.asarray(matrix, dtype=np.float64), (width, height),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )


def crop_from_aligned(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A crop aligned to the ArcFace template (``mfr.runtime.align.ALIGNED_CROP_SIZE``, as LFW-112x112) as
    ``spec``'s model takes it: itself where that is the model's own crop, else warped to the model's template."""
    height, width = image.shape[:2]
    landmarks = aligned_crop_landmarks(height, width)
    if spec.template is not None and spec.input_size == (height, width) and np.allclose(landmarks, spec.template):
        return image
    return warp_face(image, estimate_similarity(landmarks, spec), spec)


def align_faces(image: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Aligned uint8 crops (N, H, W, 3), same colour order as ``image``, one per 5-landmark set."""
    crops = [warp_face(image, matrix, spec) for matrix in estimate_similarities(landmarks, spec)]
    if not crops:
        height, width = spec.input_size or (0, 0)
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack(crops)


def normalize(images: np.ndarray | Sequence[np.ndarray], spec: PreprocessSpec,
              input_order: ColorOrder = "BGR") -> np.ndarray:
    """uint8 images (N, H, W, 3) in ``input_order`` -> float32 (N, 3, H, W) as the model expects.

    With a fixed ``input_size`` every image must already have that size (align or resize first);
    a mismatch is an error, never a silent resize.
    """
    batch = np.stack(images) if not isinstance(images, np.ndarray) else images
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {batch.dtype} {batch.shape}")
    if spec.input_size is not None and tuple(batch.shape[1:3]) != tuple(spec.input_size):
        raise ValueError(f"images are {batch.shape[1]}x{batch.shape[2]}, the model expects "
                         f"{spec.input_size[0]}x{spec.input_size[1]} (height x width)")
    if input_order != spec.color_order:
        batch = batch[..., ::-1]
    std = np.asarray(spec.std, np.float32)
    gain = np.float32(spec.scale) / std
    offset = -np.asarray(spec.mean, np.float32) / std
    out = batch.astype(np.float32) * gain + offset
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def denormalize(inputs: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """float32 (N, 3, H, W) in the model's input space -> uint8 BGR (N, H, W, 3): ``normalize`` undone (for
    images a model draws, e.g. a restored face)."""
    std = np.asarray(spec.std, np.float32)
    mean = np.asarray(spec.mean, np.float32)
    pixels = (inputs.transpose(0, 2, 3, 1) * std + mean) / np.float32(spec.scale)
    if spec.color_order == "RGB":
        pixels = pixels[..., ::-1]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
