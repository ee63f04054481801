"""On-disk cache for expensive, deterministic results (embeddings), keyed by content hashes.

Lives in ``$MFR_CACHE_DIR`` or ``~/.cache/mfr``. A key must cover everything the result depends on
(model file hash, precision, data, preprocessing variant); entries are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from mfr.private import create_private, private_dir

CACHE_ENV = "MFR_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mfr")


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class ArrayCache:
    def __init__(self, directory: Path | None, namespace: str) -> None:
        self.directory = None if directory is None else Path(directory) / namespace

    def get(self, key: str) -> np.ndarray | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.npy"
        try:
            return np.load(path, allow_pickle=False) if path.is_file() else None
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed, never trusted

    def put(self, key: str, value: np.ndarray) -> None:
        if self.directory is None:
            return
        private_dir(self.directory)  # embeddings of faces: the folder 0700, each file 0600
        tmp = create_private(self.directory / f".{key}.{uuid.uuid4().hex[:8]}.npy")
        np.save(tmp, value, allow_pickle=False)
        os.replace(tmp, self.directory / f"{key}.npy")
