"""The embedded gallery backend: one SQLite file on the device (stdlib ``sqlite3``).

A camera box needs a store that survives a killed process: WAL journal, ``synchronous=FULL``, foreign
keys on, and every change one ``BEGIN IMMEDIATE`` transaction. The file carries ``PRAGMA application_id``
(an mfr gallery, not any SQLite file); its schema version is in ``schema_migrations`` and, for readers
of schema 1, in ``PRAGMA user_version``. Older schemas are migrated forward on open, in one transaction;
a newer or unknown one is refused, never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mfr.errors import GalleryError
from mfr.private import create_dirs, create_private
from mfr.recognition.gallery import SCHEMA_VERSION, Connection, Gallery, _now

APPLICATION_ID = 0x6D667267  # "mfrg"
_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    masked INTEGER NOT NULL CHECK (masked IN (0, 1)),
    synthetic INTEGER NOT NULL CHECK (synthetic IN (0, 1)),
    quality REAL NOT NULL,
    source_sha256 TEXT NOT NULL,
    crop_png BLOB NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (person_id, source_sha256, masked)
);
CREATE INDEX templates_person ON templates(person_id);
CREATE TABLE negatives (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    crop_png BLOB NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (person_id, source_sha256)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
    name TEXT,
    score REAL,
    payload TEXT NOT NULL DEFAULT '{}'
);
"""
# Erasures (``erasure.py``): what a replica pulls and applies, and snapshot files still to delete
ERASURE_TABLES = """
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    name_sha256 TEXT NOT NULL,
    person_id BIGINT,
    before TEXT NOT NULL,
    removal INTEGER NOT NULL CHECK (removal IN (0, 1)),
    erased TEXT NOT NULL
);
CREATE INDEX erasures_name ON erasures(name_sha256);
CREATE TABLE pending_files (path TEXT PRIMARY KEY);
"""
# Each migration takes the schema from the version before it to its own; version 1 is the first schema.
MIGRATIONS: dict[int, str] = {
    1: _SCHEMA_1,
    2: """
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL);
ALTER TABLE events ADD COLUMN delivered INTEGER NOT NULL DEFAULT 1 CHECK (delivered IN (0, 1));
CREATE INDEX events_undelivered ON events(delivered) WHERE delivered = 0;
INSERT INTO meta(key, value) VALUES ('revision', '1') ON CONFLICT(key) DO NOTHING;
""",
    3: ERASURE_TABLES,
}


class SqliteGallery(Gallery):
    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.file = path
        self.location = str(path)
        self._db = connection

    @classmethod
    def open_file(cls, path: Path, create: bool = False) -> SqliteGallery:
        """Open the gallery file ``path``; ``create`` makes a new one where no file exists."""
        path = Path(path).expanduser()
        exists = path.exists()
        if not exists and not create:
            raise GalleryError(f"no gallery at {path}; enrol someone first: mfr gallery enroll --gallery {path} ...")
        if exists and not path.is_file():
            raise GalleryError(f"{path} is not a file")
        if not exists:  # created 0600: SQLite gives its -wal and -shm files the database's mode
            create_dirs(path.parent)
            create_private(path)
        try:
            db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise GalleryError(f"{path}: cannot open ({exc})") from None
        gallery = cls(path, db)
        try:
            gallery._prepare(new=not exists)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise GalleryError(f"{path} is not a readable gallery: {exc} (a damaged file, or not SQLite)") from None
        except GalleryError:
            db.close()
            raise
        return gallery

    @property
    def db(self) -> Connection:
        return self._db

    def _prepare(self, new: bool) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left in free pages
        if new:
            with self.transaction():
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        application = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if application != APPLICATION_ID:
            raise GalleryError(f"{self.location} is an SQLite file but not an mfr gallery "
                               f"(application id {application:#x})")
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.location} was written by a newer mfr (gallery schema {version}); this mfr "
                               f"reads schema {SCHEMA_VERSION}: upgrade mfr")
        if version < 1 and not new:
            raise GalleryError(f"{self.location} has an unknown gallery schema {version} "
                               f"(this mfr reads {SCHEMA_VERSION})")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        if version < SCHEMA_VERSION:
            self._migrate(version)
        db.execute("SELECT count(*) FROM people").fetchone()  # a damaged file fails here, not mid-command

    def _migrate(self, version: int) -> None:
        """Apply every migration after ``version`` in one transaction (all of them, or none)."""
        with self.transaction() as db:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                if target >= 2:
                    db.execute("INSERT INTO schema_migrations(version, applied) VALUES (?, ?)", (target, _now()))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (before copying the file elsewhere)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def scrub(self) -> str:
        """Deleted rows were overwritten as they went (``secure_delete``); their old pages may still be in
        the write-ahead log, which a truncating checkpoint empties unless another process is reading."""
        busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            return ("deleted rows overwritten; the write-ahead log could not be emptied while another process "
                    "reads the gallery (it is, at that process's next checkpoint)")
        return "deleted rows overwritten and the write-ahead log emptied"
