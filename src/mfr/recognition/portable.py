"""A gallery as one portable, versioned JSON file (``mfr gallery export`` / ``import``).

JSON rather than a copy of the SQLite file: readable and diffable, independent of the SQLite version,
and checked on import (format, version, fields) before anything is written. Embeddings and crops are
base64; the model fingerprint travels along, so an import into a gallery of another model is refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from mfr.atomic import atomic_file
from mfr.errors import GalleryError
from mfr.recognition.gallery import Gallery

FORMAT = "mfr-gallery"
VERSION = 1
_BINARY = ("embedding", "crop_png")


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if k in _BINARY else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64decode(v) if k in _BINARY else v for k, v in row.items()}


def export_gallery(gallery: Gallery, path: Path) -> int:
    """Write the gallery to ``path`` (atomically); the number of people written."""
    data = gallery.dump()
    for person in data["people"]:
        person["templates"] = [_encode(t) for t in person["templates"]]
        person["negatives"] = [_encode(n) for n in person["negatives"]]
    with atomic_file(Path(path), private=True) as tmp:  # templates and crops: biometric data, 0600
        tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION, **data}))
    return len(data["people"])


def read_export(path: Path) -> dict[str, Any]:
    """The gallery data of an export file, checked; errors name the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GalleryError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GalleryError(f"{path} is not a gallery export ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GalleryError(f"{path} is not an mfr gallery export (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise GalleryError(f"{path} was exported by a newer mfr (export version {version!r}); this mfr reads "
                           f"version {VERSION}: upgrade mfr")
    try:
        for person in data["people"]:
            person["templates"] = [_decode(t) for t in person["templates"]]
            person["negatives"] = [_decode(n) for n in person["negatives"]]
            str(person["name"])
        data["fingerprint"], data["model"]  # noqa: B018 - required fields
    except (KeyError, TypeError, ValueError) as exc:
        raise GalleryError(f"{path}: malformed gallery export ({exc!r})") from None
    return data
