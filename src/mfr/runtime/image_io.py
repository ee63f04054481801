"""Reading images into the one layout the runtime works in: uint8, 3-channel BGR (OpenCV's order).

Grayscale, RGBA and 16-bit files are converted rather than rejected; unreadable files raise a
``DataError`` naming the file. The declared size is checked against ``max_pixels`` before decoding
(``image_header``), so a small file that declares a huge image is refused without allocating it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mfr.errors import DataError
from mfr.runtime.image_header import read_header

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # what a folder of face images is read for
# The largest image decoded by default (``--max-pixels``): 40 megapixels, a 7,700 x 5,200 photo, at most
# 320 MB decoded (4 channels of 16 bits) before conversion
MAX_PIXELS = 40_000_000


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


def read_image_bgr(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 BGR, or raise ``DataError`` naming the file: not found, not a JPEG,
    PNG, BMP or WebP image, declaring more than ``max_pixels`` pixels (refused before decoding), or
    damaged beyond what the decoder reads."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image_bgr(data, str(path), max_pixels)


def decode_image_bgr(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (the bytes of a file named ``source``) as uint8 BGR (``read_image_bgr``)."""
    header = read_header(data, source)
    if header.pixels > max_pixels:
        raise DataError(f"{source}: a {header.format} image of {header.width} x {header.height} pixels, more than "
                        f"the {max_pixels:,} allowed (--max-pixels)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{source}: a damaged {header.format} image")
    return to_bgr8(image, source)
