"""Reading images into the one layout the runtime works in: uint8, 3-channel BGR (OpenCV's order).

Grayscale, RGBA and 16-bit files are converted rather than rejected; unreadable files raise a
``DataError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mfr.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # what a folder of face images is read for


def to_bgr8(image: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert a decoded image (gray, BGR, BGRA; 8 or 16 bit) to uint8 BGR."""
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{source}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise DataError(f"{source}: unsupported image shape {image.shape}")


def read_image_bgr(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 BGR, or raise ``DataError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    return to_bgr8(image, str(path))
