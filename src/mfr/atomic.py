"""Outputs that appear whole or not at all.

Every stage writes into a hidden staging directory beside its destination and renames it into place
only when everything (including verification) succeeded, so a failed or interrupted run leaves
nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mfr.errors import OutputDirError
from mfr.private import create_private


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse an existing non-empty output directory unless ``force``; refuse a file in its place."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputDirError(f"output directory {out} exists and is not empty; pass --force to replace it")


@contextmanager
def staged_output_dir(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory that replaces ``out`` only if the block succeeds."""
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    os.chmod(stage, 0o755)
    if out.exists():
        retired = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, retired)
        os.rename(stage, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(stage, out)


@contextmanager
def atomic_file(path: Path, suffix: str = ".tmp", private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    ``suffix`` keeps the extension for writers that choose the format by it (matplotlib, OpenCV).
    ``private``: the file holds faces, templates or sightings: the temporary file is created 0600 before
    the block writes it (writers keep an existing file's mode), so the file is never readable by others
    (``mfr.private``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}")
    try:
        if private:
            create_private(tmp)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any, private: bool = False) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (``private``: 0600, see ``atomic_file``)."""
    with atomic_file(path, private=private) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_bytes_atomic(path: Path, data: bytes, private: bool = False) -> None:
    with atomic_file(path, private=private) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
