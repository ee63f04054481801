"""A gallery as one portable, versioned JSON file (``mfr gallery export`` / ``import``).

JSON rather than a copy of the SQLite file: readable and diffable, independent of the SQLite version,
and checked on import (format, version, fields) before anything is written. Embeddings and crops are
base64; the model fingerprint travels along, so an import into a gallery of another model is refused.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mfr.atomic import atomic_file
from mfr.errors import DataError, GalleryError
from mfr.recognition.gallery import Gallery, decode_png
from mfr.runtime.image_header import read_header

FORMAT = "mfr-gallery"
VERSION = 1
_BINARY = ("embedding", "crop_png")
CROP_PIXELS = 1024 * 1024  # an aligned face crop is 112 x 112; anything near this is not one


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if k in _BINARY else v for k, v in row.items()}


# the fields of a template and a negative, with the type each is checked as (``_decode``)
_TEMPLATE: dict[str, type] = {"embedding": bytes, "masked": bool, "synthetic": bool, "quality": float,
                              "source_sha256": str, "crop_png": bytes, "created": str}
_NEGATIVE: dict[str, type] = {"embedding": bytes, "source_sha256": str, "crop_png": bytes, "created": str}


def _decode(row: Any, fields: dict[str, type], what: str) -> dict[str, Any]:
    """One template or negative of an export, each field of the type the gallery stores, or ``ValueError``
    saying which field of ``what`` is wrong (a file crafted to mislead is refused before any write)."""
    if not isinstance(row, dict):
        raise ValueError(f"{what} is not an object")
    out: dict[str, Any] = {}
    for key, kind in fields.items():
        if key not in row:
            raise ValueError(f"{what} has no {key!r}")
        value = row[key]
        if kind is bytes:
            if not isinstance(value, str):
                raise ValueError(f"{what}: {key!r} is not base64 text")
            out[key] = base64.b64decode(value, validate=True)
        elif kind is bool:
            if value not in (0, 1) or isinstance(value, float):
                raise ValueError(f"{what}: {key!r} is {value!r}, not 0 or 1")
            out[key] = int(value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{what}: {key!r} is {value!r}, not a finite number")
            out[key] = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"{what}: {key!r} is {value!r}, not text")
        else:
            out[key] = value
    vector = np.frombuffer(out["embedding"], np.float32) if len(out["embedding"]) % 4 == 0 else np.zeros(0)
    if not len(vector) or not np.all(np.isfinite(vector)) or abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        raise ValueError(f"{what}: the embedding is not a unit-length vector of float32")
    header = read_header(out["crop_png"], f"{what}: the crop")
    if header.format != "PNG" or header.pixels > CROP_PIXELS:
        raise ValueError(f"{what}: the crop is not a face crop PNG ({header.format}, {header.width} x {header.height})")
    try:  # its size is bounded above: decoding it is cheap, and a damaged one would break reembed later
        decode_png(out["crop_png"])
    except GalleryError:
        raise ValueError(f"{what}: the crop is a damaged PNG") from None
    return out


def export_gallery(gallery: Gallery, path: Path) -> int:
    """Write the gallery to ``path`` (atomically); the number of people written."""
    data = gallery.dump()
    for person in data["people"]:
        person["templates"] = [_encode(t) for t in person["templates"]]
        person["negatives"] = [_encode(n) for n in person["negatives"]]
    with atomic_file(Path(path), private=True) as tmp:  # templates and crops: biometric data, 0600
        tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION, **data}))
    return len(data["people"])


def _check_people(data: dict[str, Any]) -> None:
    """Decode and check every person of an export in place (``_decode``); embeddings of one length."""
    for key in ("fingerprint", "model"):
        if key not in data:
            raise ValueError(f"no {key!r}")
        if data[key] is not None and not isinstance(data[key], str):
            raise ValueError(f"{key!r} is not text")
    if not isinstance(data.get("people"), list):
        raise ValueError("'people' is not a list")
    lengths = set()
    for i, person in enumerate(data["people"]):
        if not isinstance(person, dict) or not isinstance(person.get("name"), str) or not person["name"].strip():
            raise ValueError(f"person {i} has no name")
        what = f"person {person['name']!r}"
        if not isinstance(person.get("created"), str) or not isinstance(person.get("metadata"), dict):
            raise ValueError(f"{what}: 'created' must be text and 'metadata' an object")
        for key, fields in (("templates", _TEMPLATE), ("negatives", _NEGATIVE)):
            if not isinstance(person.get(key), list):
                raise ValueError(f"{what}: {key!r} is not a list")
            person[key] = [_decode(row, fields, f"{what}, {key[:-1]} {j}") for j, row in enumerate(person[key])]
            lengths |= {len(row["embedding"]) for row in person[key]}
    if len(lengths) > 1:
        raise ValueError(f"embeddings of different lengths ({sorted(n // 4 for n in lengths)} dimensions)")
    if lengths and (data["fingerprint"] is None or data["model"] is None):
        raise ValueError("embeddings without the 'fingerprint' and 'model' they came from")


def read_export(path: Path) -> dict[str, Any]:
    """The gallery data of an export file, checked; errors name the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GalleryError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GalleryError(f"{path} is not a gallery export ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GalleryError(f"{path} is not an mfr gallery export (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise GalleryError(f"{path} was exported by a newer mfr (export version {version!r}); this mfr reads "
                           f"version {VERSION}: upgrade mfr")
    try:
        _check_people(data)
    except (KeyError, TypeError, ValueError, DataError) as exc:
        raise GalleryError(f"{path}: malformed gallery export ({exc})") from None
    return data
