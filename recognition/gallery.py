"""The enrolment gallery: people, their face templates, negatives and events, in one SQLite file.

SQLite (stdlib ``sqlite3``) because a camera box needs an embedded store that survives a killed process:
WAL journal, ``synchronous=FULL``, foreign keys on, and every change one ``BEGIN IMMEDIATE`` transaction,
so a reader never sees half a person and a crash loses nothing committed. The file carries
``PRAGMA application_id`` (an mfr gallery, not any SQLite file) and ``PRAGMA user_version`` (the schema);
a file of a newer or unknown schema is refused, never migrated blindly.

Every template stores the aligned crop it was computed from (PNG), so ``reembed`` can recompute the
gallery for another model; and the model fingerprint (``FaceEmbedder.fingerprint``): a gallery holds
embeddings of one model only, and opening it with another is an error naming both.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mfr.errors import GalleryError

APPLICATION_ID = 0x6D667267  # "mfrg"
SCHEMA_VERSION = 1
_SCHEMA = """
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def encode_png(crop: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", crop)
    if not ok:
        raise GalleryError("could not encode a face crop as PNG")
    return data.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    crop = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if crop is None:
        raise GalleryError("a stored face crop is not a readable PNG")
    return crop


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    created: str
    metadata: dict[str, Any]
    templates: int
    masked_templates: int
    negatives: int


@dataclass(frozen=True)
class NewTemplate:
    """A template to store: the embedding and everything needed to recompute or audit it."""

    embedding: np.ndarray  # (D,) unit length
    crop: np.ndarray  # the aligned uint8 BGR crop it was computed from
    source_sha256: str  # of the photo it came from
    masked: bool  # the face wears a mask (real or synthetic)
    synthetic: bool = False  # the mask was drawn by the synthetic generator
    quality: float = 1.0


@dataclass
class TemplateMatrix:
    """Every template of the gallery as arrays, for search (rows follow ``person_ids``)."""

    embeddings: np.ndarray  # (T, D) float32, unit rows
    person_ids: np.ndarray  # (T,) int64
    masked: np.ndarray  # (T,) bool
    names: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddResult:
    person: Person
    added: int
    already: int  # templates of the same photo (and mask state) that were there before: a no-op


class Gallery:
    """An open gallery file. Use ``Gallery.open``; close it (or use ``with``)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, create: bool = False) -> Gallery:
        """Open the gallery at ``path``; ``create`` makes a new one where no file exists."""
        path = Path(path).expanduser()
        exists = path.exists()
        if not exists and not create:
            raise GalleryError(f"no gallery at {path}; enrol someone first: mfr gallery enroll --gallery {path} ...")
        if exists and not path.is_file():
            raise GalleryError(f"{path} is not a file")
        if not exists:
            path.parent.mkdir(parents=True, exist_ok=True)
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

    def _prepare(self, new: bool) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys = ON")
        if new:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        application = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if application != APPLICATION_ID:
            raise GalleryError(f"{self.path} is an SQLite file but not an mfr gallery "
                               f"(application id {application:#x})")
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path} was written by a newer mfr (gallery schema {version}); this mfr reads "
                               f"schema {SCHEMA_VERSION}: upgrade mfr")
        if version != SCHEMA_VERSION:
            raise GalleryError(f"{self.path} has an unknown gallery schema {version} (this mfr reads {SCHEMA_VERSION})")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("SELECT count(*) FROM people").fetchone()  # a damaged file fails here, not mid-command

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One change: committed whole, or rolled back whole (also when the process is killed)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- the model -------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def fingerprint(self) -> str | None:
        """The model fingerprint of every embedding stored (None for a gallery without templates yet)."""
        return self._meta("fingerprint")

    @property
    def model(self) -> str | None:
        """The model the embeddings came from, as described when they were made."""
        return self._meta("model")

    def check_model(self, fingerprint: str, model: str, fix: str) -> None:
        """Refuse embeddings of another model than the gallery's, naming both and the command ``fix``."""
        mine = self.fingerprint
        if mine is not None and mine != fingerprint:
            raise GalleryError(f"{self.path} holds embeddings of another model:\n  gallery: {self.model} "
                               f"[{mine}]\n  now:     {model} [{fingerprint}]\nre-embed the gallery for this "
                               f"model with:\n  {fix}")

    def _set_model(self, db: sqlite3.Connection, fingerprint: str, model: str) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES ('fingerprint', ?), ('model', ?) ON CONFLICT(key) DO "
                   "UPDATE SET value = excluded.value", (fingerprint, model))

    # --- people ----------------------------------------------------------------------------------

    def people(self) -> list[Person]:
        rows = self._db.execute(
            "SELECT p.id, p.name, p.created, p.metadata, "
            "(SELECT count(*) FROM templates t WHERE t.person_id = p.id), "
            "(SELECT count(*) FROM templates t WHERE t.person_id = p.id AND t.masked), "
            "(SELECT count(*) FROM negatives n WHERE n.person_id = p.id) "
            "FROM people p ORDER BY p.name").fetchall()
        return [Person(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def person(self, name: str) -> Person:
        found = [p for p in self.people() if p.name == name]
        if not found:
            raise GalleryError(f"{self.path}: no person named {name!r}")
        return found[0]

    def add_templates(self, name: str, templates: list[NewTemplate], fingerprint: str, model: str,
                      metadata: dict[str, Any] | None = None) -> AddResult:
        """Add ``templates`` to ``name`` (created if new), in one transaction. A template of a photo the
        person already has (same sha256 and mask state) is skipped, so re-enrolling a photo is a no-op."""
        if not name.strip():
            raise GalleryError("a person's name must not be empty")
        self.check_model(fingerprint, model, "mfr gallery reembed --gallery ... --package <this model>")
        added = already = 0
        with self.transaction() as db:
            self._set_model(db, fingerprint, model)
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                person_id = db.execute("INSERT INTO people(name, created, metadata) VALUES (?, ?, ?)",
                                       (name, _now(), json.dumps(metadata or {}))).lastrowid
            else:
                person_id = row[0]
            for template in templates:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO templates(person_id, embedding, fingerprint, masked, synthetic, quality, "
                    "source_sha256, crop_png, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (person_id, _blob(template.embedding), fingerprint, int(template.masked), int(template.synthetic),
                     float(template.quality), template.source_sha256, encode_png(template.crop), _now()))
                if cursor.rowcount:
                    added += 1
                else:
                    already += 1
        return AddResult(self.person(name), added, already)

    def remove(self, name: str) -> Person:
        person = self.person(name)
        with self.transaction() as db:
            db.execute("DELETE FROM people WHERE id = ?", (person.id,))
        return person

    def rename(self, old: str, new: str) -> Person:
        person = self.person(old)
        if not new.strip():
            raise GalleryError("a person's name must not be empty")
        if any(p.name == new for p in self.people()):
            raise GalleryError(f"{self.path}: {new!r} is already enrolled; remove or rename that person first")
        with self.transaction() as db:
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person.id))
        return self.person(new)

    def add_negative(self, name: str, embedding: np.ndarray, crop: np.ndarray, source_sha256: str,
                     fingerprint: str, model: str) -> bool:
        """Record that this face is not ``name``; False if that photo was already recorded."""
        person = self.person(name)
        self.check_model(fingerprint, model, "mfr gallery reembed --gallery ... --package <this model>")
        with self.transaction() as db:
            self._set_model(db, fingerprint, model)
            cursor = db.execute(
                "INSERT OR IGNORE INTO negatives(person_id, embedding, fingerprint, source_sha256, crop_png, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (person.id, _blob(embedding), fingerprint, source_sha256, encode_png(crop), _now()))
            return bool(cursor.rowcount)

    # --- reading for search ------------------------------------------------------------------------

    def template_matrix(self) -> TemplateMatrix:
        rows = self._db.execute("SELECT person_id, embedding, masked FROM templates ORDER BY id").fetchall()
        names = {p.id: p.name for p in self.people()}
        if not rows:
            return TemplateMatrix(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), names)
        return TemplateMatrix(np.stack([np.frombuffer(r[1], np.float32) for r in rows]),
                              np.array([r[0] for r in rows], np.int64), np.array([bool(r[2]) for r in rows]), names)

    def negative_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (K, D), person ids (K,)) of every negative."""
        rows = self._db.execute("SELECT person_id, embedding FROM negatives ORDER BY id").fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.stack([np.frombuffer(r[1], np.float32) for r in rows]), np.array([r[0] for r in rows], np.int64)

    # --- re-embedding ------------------------------------------------------------------------------

    def stored_crops(self, table: str) -> list[tuple[int, np.ndarray]]:
        """(row id, aligned crop) of every template (``table="templates"``) or negative."""
        if table not in ("templates", "negatives"):
            raise ValueError(table)
        rows = self._db.execute(f"SELECT id, crop_png FROM {table} ORDER BY id").fetchall()
        return [(row[0], decode_png(row[1])) for row in rows]

    def replace_embeddings(self, templates: dict[int, np.ndarray], negatives: dict[int, np.ndarray],
                           fingerprint: str, model: str) -> None:
        """Swap every embedding for one of another model, in one transaction: all or none."""
        with self.transaction() as db:
            counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("templates", "negatives")}
            if counts != {"templates": len(templates), "negatives": len(negatives)}:
                raise GalleryError(f"{self.path} changed while it was re-embedded; run reembed again")
            for table, rows in (("templates", templates), ("negatives", negatives)):
                db.executemany(f"UPDATE {table} SET embedding = ?, fingerprint = ? WHERE id = ?",
                               [(_blob(e), fingerprint, row_id) for row_id, e in rows.items()])
            self._set_model(db, fingerprint, model)

    # --- export / import ------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything needed to rebuild the gallery elsewhere, as plain data (see ``portable``)."""
        def rows(query: str, person_id: int) -> list[dict[str, Any]]:
            cursor = self._db.execute(query, (person_id,))
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        people = []
        for person in self.people():
            people.append({
                "name": person.name, "created": person.created, "metadata": person.metadata,
                "templates": rows("SELECT embedding, masked, synthetic, quality, source_sha256, crop_png, created "
                                  "FROM templates WHERE person_id = ? ORDER BY id", person.id),
                "negatives": rows("SELECT embedding, source_sha256, crop_png, created FROM negatives "
                                  "WHERE person_id = ? ORDER BY id", person.id),
            })
        return {"fingerprint": self.fingerprint, "model": self.model, "people": people}

    def load(self, data: dict[str, Any]) -> tuple[int, int]:
        """Merge a ``dump`` into this gallery in one transaction; (people added, templates added)."""
        fingerprint, model = data["fingerprint"], data["model"]
        if fingerprint is not None:
            self.check_model(fingerprint, model, "import into a gallery of the same model, then reembed")
        new_people = new_templates = 0
        with self.transaction() as db:
            if fingerprint is not None:
                self._set_model(db, fingerprint, model)
            for person in data["people"]:
                row = db.execute("SELECT id FROM people WHERE name = ?", (person["name"],)).fetchone()
                if row is None:
                    person_id = db.execute("INSERT INTO people(name, created, metadata) VALUES (?, ?, ?)",
                                           (person["name"], person["created"], json.dumps(person["metadata"]))
                                           ).lastrowid
                    new_people += 1
                else:
                    person_id = row[0]
                for t in person["templates"]:
                    new_templates += db.execute(
                        "INSERT OR IGNORE INTO templates(person_id, embedding, fingerprint, masked, synthetic, "
                        "quality, source_sha256, crop_png, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (person_id, t["embedding"], fingerprint, t["masked"], t["synthetic"], t["quality"],
                         t["source_sha256"], t["crop_png"], t["created"])).rowcount
                for n in person["negatives"]:
                    db.execute("INSERT OR IGNORE INTO negatives(person_id, embedding, fingerprint, source_sha256, "
                               "crop_png, created) VALUES (?, ?, ?, ?, ?, ?)",
                               (person_id, n["embedding"], fingerprint, n["source_sha256"], n["crop_png"],
                                n["created"]))
        return new_people, new_templates

    def add_events(self, events: list[dict[str, Any]]) -> int:
        """Store events (``recognition.events``) in one transaction; an event id already stored is skipped,
        so writing the same events again adds nothing. Returns how many were new."""
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events (event_id, time, source, kind, person_id, name, score, payload) "
                "VALUES (?, ?, ?, ?, (SELECT id FROM people WHERE name = ?), ?, ?, ?)",
                [(e["event_id"], e["time"], e["source"], e["kind"], e.get("name"), e.get("name"), e.get("score"),
                  json.dumps(e)) for e in events])
            return db.total_changes - before

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored events, oldest first (optionally of one kind)."""
        query = "SELECT payload FROM events" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [json.loads(row[0]) for row in self._db.execute(query, (kind,) if kind else ())]

    def integrity(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def _blob(embedding: np.ndarray) -> bytes:
    return np.ascontiguousarray(embedding, dtype=np.float32).tobytes()
