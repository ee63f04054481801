"""TensorRT's text calibration cache, for implicit-INT8 builds on TensorRT 8.x/10.x (JetPack).

Format: a header line ``TRT-<version>-EntropyCalibration2``, then one ``tensor: <hex>`` line per tensor,
where <hex> is the big-endian IEEE-754 float32 bit pattern of the scale (amax / 127). TensorRT matches
the names against the network's tensor names, which the ONNX parser takes from the ONNX tensor names.
"""

from __future__ import annotations

import struct
from pathlib import Path

from mfr.errors import DataError

HEADER_VERSION = "8601"  # TensorRT 8.6.1; newer TensorRT reads caches from older versions' headers
ALGORITHM = "EntropyCalibration2"


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


def write_calibration_cache(ranges: dict[str, tuple[float, float]], out: Path) -> None:
    lines = [f"TRT-{HEADER_VERSION}-{ALGORITHM}"]
    for name, (low, high) in ranges.items():
        lines.append(f"{name}: {scale_to_hex(max(-low, high, 1e-8) / 127.0)}")
    out.write_text("\n".join(lines) + "\n")


def read_calibration_cache(path: Path) -> dict[str, float]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise DataError(f"{path}: not a TensorRT calibration cache (first line {lines[:1]})")
    scales = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        if not sep:
            raise DataError(f"{path}:{number}: expected 'tensor: hex'")
        scales[name.strip()] = hex_to_scale(value.strip())
    return scales
