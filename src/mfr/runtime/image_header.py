"""An image's format and size from its header, before anything is decoded.

A decoder allocates what the header declares: a 30 kB PNG can declare 50,000 x 50,000 pixels (7.5 GB as
BGR). Reading the declared size first lets the reader refuse it cheaply (``image_io.read_image_bgr``,
``--max-pixels``). OpenCV has no header-only call, and the runtime must run with only numpy and OpenCV
installed, so the four formats mfr reads photos in (JPEG, PNG, BMP, WebP) are parsed here, from their
specifications; anything else is not an image mfr reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mfr.errors import DataError

FORMATS = ("JPEG", "PNG", "BMP", "WebP")
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes, source: str) -> ImageHeader:
    """The format and declared size of an encoded image, or ``DataError`` naming ``source`` and why."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        header = _png(data)
    elif data[:2] == b"\xff\xd8":
        header = _jpeg(data)
    elif data[:2] == b"BM":
        header = _bmp(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        header = _webp(data)
    else:
        raise DataError(f"{source}: not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image")
    if header is None:
        raise DataError(f"{source}: a damaged image (its header is cut short or malformed)")
    if header.width <= 0 or header.height <= 0:
        raise DataError(f"{source}: a {header.format} image that declares {header.width} x {header.height} pixels")
    return header


def _png(data: bytes) -> ImageHeader | None:
    if len(data) < 24 or data[12:16] != b"IHDR" or not _png_chunks_fit(data):
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("PNG", width, height)


def _png_chunks_fit(data: bytes) -> bool:
    """Every chunk up to IEND lies within the file. A chunk length past the end (one damaged byte makes a
    50 kB file declare a 3.9 GB chunk) kept OpenCV 5.0's PNG reader busy for seconds before it gave up."""
    at = 8
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if length > 2**31 - 1 or at + 12 + length > len(data):
            return False
        if kind == b"IEND":
            return True
        at += 12 + length
    return False


def _jpeg(data: bytes) -> ImageHeader | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if length < 2:
            return None
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return ImageHeader("JPEG", width, height)
        at += 2 + length
    return None


def _bmp(data: bytes) -> ImageHeader | None:
    if len(data) < 26:
        return None
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
        return ImageHeader("BMP", width, height)
    width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", width, abs(height))  # a negative height: rows stored top-down


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None
