"""Files that hold faces, templates or sightings are readable by their owner only, whatever the umask.

Faces and their templates are biometric data: a gallery, its SQLite journal files, snapshots of faces,
event logs, gallery exports, recordings and caches of embeddings are created with mode 0600, and the
folders mfr makes for them with 0700. SQLite creates a database's ``-wal`` and ``-shm`` files with the
database file's own mode, so a gallery created 0600 keeps its journal private too. A file is created with
its final mode (``os.open`` with 0600, then ``fchmod``, as the umask may strip bits but never adds them),
so there is no moment at which others could open it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def create_dirs(path: Path) -> Path:
    """``path`` as a folder: the folders missing on the way created 0700 (those that exist, the user's, are
    left as they are)."""
    path = Path(path)
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    return path


def private_dir(path: Path) -> Path:
    """A folder of mfr's own for private data (snapshots, cached embeddings): created as ``create_dirs``
    does, and made 0700 if it existed (its listing names people's sightings too)."""
    create_dirs(path)
    os.chmod(path, DIR_MODE)
    return Path(path)


def create_private(path: Path) -> Path:
    """``path`` created empty (or left as it is, if it exists) and made 0600 before anything is written."""
    os.close(private_opener(str(path), os.O_WRONLY | os.O_CREAT))
    return Path(path)


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for ``open()``: the file is created 0600 and made so if it existed with another mode."""
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def readable_by_others(path: Path) -> bool:
    """Whether someone other than the owner may read (or, for a folder, list) ``path``."""
    return bool(Path(path).stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))


def exposed(paths: list[Path]) -> list[str]:
    """Each of ``paths`` (files and folders; a folder with everything in it) that someone other than its
    owner can read, as "PATH (mode 0644)"; a gallery file's -wal and -shm files with it."""
    found = []
    for path in paths:
        path = Path(path)
        candidates = [path, *sorted(path.rglob("*"))] if path.is_dir() else [
            path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))]
        for candidate in candidates:
            if candidate.exists() and readable_by_others(candidate):
                found.append(f"{candidate} (mode {oct(candidate.stat().st_mode & 0o777)[2:].zfill(4)})")
    return found
