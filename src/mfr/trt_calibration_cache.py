"""TensorRT's text calibration cache: written by ``mfr-export calibrate`` into the package, replayed by
``build-engine`` for implicit-INT8 builds on TensorRT 8.x/10.x (JetPack 5 and 6).

Format, as TensorRT writes it: a header line ``TRT-<version code>-<algorithm>``, then one
``tensor: <hex>`` line per tensor, where <hex> is the big-endian IEEE-754 float32 bit pattern of the
scale (amax / 127), without leading zeros (a zero scale is written ``0``). The version code is
TensorRT's ``NV_TENSORRT_VERSION``: major*1000 + minor*100 + patch up to 8.x (8.6.1 -> 8601), major*10000
+ minor*100 + patch from 10 on (10.3.0 -> 100300). TensorRT ignores a cache whose header names another
version and then asks the calibrator for batches, so ``build-engine`` rewrites the header for the
installed TensorRT (``for_tensorrt``). TensorRT matches the tensor names against the network's, which
its ONNX parser takes from the ONNX tensor names.
"""

from __future__ import annotations

import struct
from pathlib import Path

from mfr.errors import DataError

ALGORITHM = "EntropyCalibration2"
WRITTEN_FOR = "8.6.1"  # the header calibrate writes; build-engine replaces it with the installed version's


def version_code(tensorrt_version: str) -> str:
    """TensorRT's NV_TENSORRT_VERSION for a version string such as "10.3.0.30" -> "100300"."""
    try:
        major, minor, patch = (int(part) for part in (tensorrt_version.split(".") + ["0", "0"])[:3])
    except ValueError:
        raise DataError(f"not a TensorRT version: {tensorrt_version!r}") from None
    return str(major * (10000 if major >= 10 else 1000) + minor * 100 + patch)


def header(tensorrt_version: str, algorithm: str = ALGORITHM) -> str:
    return f"TRT-{version_code(tensorrt_version)}-{algorithm}"


def scale_to_hex(scale: float) -> str:
    return format(struct.unpack(">I", struct.pack(">f", scale))[0], "x")


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", struct.pack(">I", int(text, 16)))[0])


def write_calibration_cache(ranges: dict[str, tuple[float, float]], out: Path,
                            tensorrt_version: str = WRITTEN_FOR) -> None:
    lines = [header(tensorrt_version)]
    for name, (low, high) in ranges.items():
        lines.append(f"{name}: {scale_to_hex(max(-low, high, 1e-8) / 127.0)}")
    out.write_text("\n".join(lines) + "\n")


def split_cache(path: Path) -> tuple[str, dict[str, float]]:
    """(header line, tensor -> scale) of a calibration cache, with the line of any malformed entry."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the calibration cache ({exc})") from None
    if not lines or not lines[0].startswith("TRT-") or lines[0].count("-") < 2:
        raise DataError(f"{path}: not a TensorRT calibration cache (first line {lines[:1]}, expected "
                        f"'TRT-<version>-<algorithm>')")
    scales = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            scales[name.strip()] = hex_to_scale(value.strip())
        except (ValueError, struct.error):
            raise DataError(f"{path}:{number}: expected 'tensor: <hex float32>', got {line!r}") from None
    return lines[0], scales


def read_calibration_cache(path: Path) -> dict[str, float]:
    return split_cache(path)[1]


def for_tensorrt(path: Path, tensorrt_version: str) -> bytes:
    """The cache at ``path`` with the header the installed TensorRT writes, for the calibrator to hand it."""
    first, scales = split_cache(path)
    lines = [header(tensorrt_version, first.split("-", 2)[2])]
    lines += [f"{name}: {scale_to_hex(scale)}" for name, scale in scales.items()]
    return ("\n".join(lines) + "\n").encode()
