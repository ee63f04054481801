"""Where shipped weights and the (unshipped) face datasets are found.

Weights ship inside the package (``mfr/weights``). Face datasets have research-use terms and stay
out of the repository: they are found through ``MFR_DATA_DIR``, else ``../shared/data`` next to the
current directory or next to the source checkout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from mfr.errors import DataError

DATA_ENV = "MFR_DATA_DIR"
GALLERY_ENV = "MFR_GALLERY"


def bundled_weights(*parts: str) -> Path:
    """Path of a file shipped in ``mfr/weights``."""
    return Path(str(resources.files("mfr").joinpath("weights", *parts)))


def data_root() -> Path:
    """The face-data root: ``$MFR_DATA_DIR`` if set, else the first ``../shared/data`` that exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"{DATA_ENV}={env} is not a directory")
        return root
    candidates = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise DataError(f"face data not found (tried {tried}); set {DATA_ENV} to the folder holding lfw-112x112/")


def dataset_dir(name: str) -> Path:
    """A dataset folder under the data root, with an error naming the path if it is missing."""
    path = data_root() / name
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist (data root from ${DATA_ENV} or ../shared/data)")
    return path


def report_path(path: Path | str) -> str:
    """``path`` as a report records it: relative to the face-data root when it lies under it
    ("mfr2/AdrianDunbar/AdrianDunbar_0001.png"), so that a committed report names the image and not where
    one machine keeps its data; any other path as given."""
    try:
        root = data_root().resolve()
    except DataError:
        return str(path)
    resolved = Path(path).resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def is_gallery_url(location: str) -> bool:
    """A gallery on a server (PostgreSQL) rather than a file."""
    return location.startswith(("postgresql://", "postgres://"))


def default_gallery_location() -> str:
    """``$MFR_GALLERY`` as given (a file or a ``postgresql://`` URL), else the default gallery file."""
    env = os.environ.get(GALLERY_ENV)
    if env and is_gallery_url(env):
        return env
    return str(default_gallery_path())


def default_gallery_path() -> Path:
    """Where the gallery lives when no ``--gallery`` is given: ``$MFR_GALLERY``, else the user data dir
    (``$XDG_DATA_HOME/mfr/gallery.db``, by default ``~/.local/share/mfr/gallery.db``)."""
    env = os.environ.get(GALLERY_ENV)
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "mfr" / "gallery.db"
