"""The enrolment gallery: people, their face templates, negatives and events, behind one interface.

``Gallery`` holds every query, written once in the SQL that SQLite and PostgreSQL share (``?``
placeholders, ``ON CONFLICT DO NOTHING``, ``RETURNING``); a backend adds how to connect, its schema and
migrations, and transactions:

- ``SqliteGallery`` (``gallery_sqlite.py``), the embedded default: one file on the device;
- ``PostgresGallery`` (``gallery_postgres.py``), a ``postgresql://`` URL: one gallery shared by a fleet,
  templates also in a pgvector column with an HNSW index.

``open_gallery(location)`` picks the backend from the location. Every change is one transaction, so a
reader never sees half a person and a crash loses nothing committed; every change to people, templates
or negatives also raises the gallery's ``revision``, the counter a replica (``replica.py``) polls to
know when to pull. Schemas are versioned in a ``schema_migrations`` table and migrated forward on open
(a gallery of a newer schema is refused, never touched).

Every template stores the aligned crop it was computed from (PNG), so ``reembed`` can recompute the
gallery for another model; and the model fingerprint (``FaceEmbedder.fingerprint``): a gallery holds
embeddings of one model only, and opening it with another is an error naming both.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from mfr.errors import GalleryError
from mfr.paths import is_gallery_url
from mfr.recognition.erasure import Erasure, erase_sightings, name_digest, sightings
from mfr.recognition.events import utc_now

SCHEMA_VERSION = 3
_END_OF_TIME = "9999"  # later than every event time (they compare as text)


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


class Cursor(Protocol):
    """What a backend's ``execute`` returns (sqlite3 and psycopg cursors both are one)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The statement runner the shared queries use: ``?`` placeholders, whatever the backend (an
    ``sqlite3.Connection`` is one as it is)."""

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...


@dataclass(frozen=True)
class GallerySnapshot:
    """The people, templates and negatives of a gallery at one revision, without crops: what a replica
    pulls, with the erasures it has not applied yet. Rows keep the central ids, so events and replicas
    name people alike."""

    revision: int
    fingerprint: str | None
    model: str | None
    people: list[tuple[int, str, str, str]]  # id, name, created, metadata JSON
    templates: list[tuple[Any, ...]]  # id, person_id, embedding, masked, synthetic, quality, source_sha256, created
    negatives: list[tuple[Any, ...]]  # id, person_id, embedding, source_sha256, created
    erasures: list[tuple[Any, ...]] = field(default_factory=list)  # id, name_sha256, person_id, before, removal, erased


@dataclass(frozen=True)
class ErasureResult:
    """What ``Gallery.erase`` did."""

    name: str
    person: Person | None  # as enrolled before the erasure (None: not enrolled)
    removed: bool  # the person's enrolment (templates, crops, negatives) went
    previously: str | None  # when this name was erased before (a retry, or sightings delivered since)
    events: int  # sightings deleted from the events table
    files: int  # snapshot files deleted (with those an interrupted erasure left)
    scrub: str  # what was done so the deleted bytes leave the storage, or why not


class Gallery(ABC):
    """An open gallery. Use ``open_gallery`` (or ``Gallery.open``); close it (or use ``with``).

    Subclasses connect, create and migrate their schema, and run transactions; every query is here."""

    location: str  # what the user named: a file path or a URL without its password

    @classmethod
    def open(cls, location: str | Path, create: bool = False) -> Gallery:
        """The gallery at ``location`` (a file, or ``postgresql://...``); ``create`` makes a new one."""
        return open_gallery(location, create)

    @property
    def path(self) -> str:
        """The location, for messages and for other connections to the same gallery."""
        return self.location

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Connection]:
        """One change: committed whole, or rolled back whole (also when the process is killed)."""

    def read_transaction(self) -> AbstractContextManager[Connection]:
        """Several reads that must see one state of the gallery (a replica's pull)."""
        return self.transaction()

    @property
    @abstractmethod
    def db(self) -> Connection:
        """The connection for single statements outside a transaction."""

    def integrity(self) -> str:
        """``ok``, or what is damaged (SQLite checks its file; PostgreSQL that every template's vector column
        equals its stored embedding)."""
        return "ok"

    # --- backend hooks -----------------------------------------------------------------------------

    def _vector_column(self) -> str | None:
        """The extra column templates keep their embedding in for the backend's vector index (or None)."""
        return None

    def _vector_value(self, embedding: np.ndarray) -> Any:
        raise NotImplementedError

    def _prepare_vectors(self, db: Connection, dim: int) -> None:
        """Make the vector column and its index hold ``dim``-dimensional embeddings (when it has them)."""
        return None

    # --- the model ---------------------------------------------------------------------------------

    def _meta(self, key: str, db: Connection | None = None) -> str | None:
        row = (db or self.db).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, db: Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   (key, value))

    @property
    def fingerprint(self) -> str | None:
        """The model fingerprint of every embedding stored (None for a gallery without templates yet)."""
        return self._meta("fingerprint")

    @property
    def model(self) -> str | None:
        """The model the embeddings came from, as described when they were made."""
        return self._meta("model")

    @property
    def revision(self) -> int:
        """Raised by every change to people, templates or negatives (not by events)."""
        return int(self._meta("revision") or 0)

    @property
    def replica_of(self) -> str | None:
        """The central gallery this one is a read-only replica of (None: not a replica)."""
        return self._meta("replica_of")

    def check_model(self, fingerprint: str, model: str, fix: str) -> None:
        """Refuse embeddings of another model than the gallery's, naming both and the command ``fix``."""
        mine = self.fingerprint
        if mine is not None and mine != fingerprint:
            raise GalleryError(f"{self.location} holds embeddings of another model:\n  gallery: {self.model} "
                               f"[{mine}]\n  now:     {model} [{fingerprint}]\nre-embed the gallery for this "
                               f"model with:\n  {fix}")

    def _set_model(self, db: Connection, fingerprint: str, model: str, dim: int | None) -> None:
        self._set_meta(db, "fingerprint", fingerprint)
        self._set_meta(db, "model", model)
        if dim is not None:
            self._prepare_vectors(db, dim)

    def _changed(self, db: Connection) -> None:
        """Raise the revision, inside the change's transaction (it also orders concurrent changes)."""
        db.execute("INSERT INTO meta(key, value) VALUES ('revision', '1') ON CONFLICT(key) DO UPDATE "
                   "SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")

    def _writable(self) -> None:
        source = self.replica_of
        if source is not None:
            raise GalleryError(f"{self.location} is a read-only replica of {source}: change the central gallery, "
                               f"then `mfr gallery sync`")

    # --- people ------------------------------------------------------------------------------------

    _PERSON = ("SELECT p.id, p.name, p.created, p.metadata, "
               "(SELECT count(*) FROM templates t WHERE t.person_id = p.id), "
               "(SELECT count(*) FROM templates t WHERE t.person_id = p.id AND t.masked = 1), "
               "(SELECT count(*) FROM negatives n WHERE n.person_id = p.id) FROM people p")

    def people(self) -> list[Person]:
        rows = self.db.execute(self._PERSON + " ORDER BY p.name").fetchall()
        return [Person(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def person(self, name: str) -> Person:
        person = self.find_person(name)
        if person is None:
            raise GalleryError(f"{self.location}: no person named {name!r}")
        return person

    def find_person(self, name: str, db: Connection | None = None) -> Person | None:
        """``name`` as enrolled, or None (``db``: inside that transaction)."""
        r = (db or self.db).execute(self._PERSON + " WHERE p.name = ?", (name,)).fetchone()
        return None if r is None else Person(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6])

    def size(self) -> tuple[int, int]:
        """(people, templates), counted without reading them."""
        row = self.db.execute("SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM templates)").fetchone()
        return int(row[0]), int(row[1])

    def _exists(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None

    def _person_id(self, db: Connection, name: str, created: str, metadata: dict[str, Any]) -> tuple[int, bool]:
        """The id of ``name``, inserted if new (safe when another writer inserts the same name at once)."""
        row = db.execute("INSERT INTO people(name, created, metadata) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING "
                         "RETURNING id", (name, created, json.dumps(metadata))).fetchone()
        if row is not None:
            return int(row[0]), True
        return int(db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]), False

    def _insert_template(self, db: Connection, person_id: int, embedding: bytes, fingerprint: str | None,
                         masked: int, synthetic: int, quality: float, source_sha256: str, crop_png: bytes,
                         created: str, vector: np.ndarray) -> bool:
        columns = ["person_id", "embedding", "fingerprint", "masked", "synthetic", "quality", "source_sha256",
                   "crop_png", "created"]
        values: list[Any] = [person_id, embedding, fingerprint, masked, synthetic, quality, source_sha256, crop_png,
                             created]
        extra = self._vector_column()
        if extra is not None:
            columns.append(extra)
            values.append(self._vector_value(vector))
        cursor = db.execute(f"INSERT INTO templates({', '.join(columns)}) VALUES ({', '.join('?' * len(values))}) "
                            "ON CONFLICT DO NOTHING", values)
        return bool(cursor.rowcount)

    def add_templates(self, name: str, templates: list[NewTemplate], fingerprint: str, model: str,
                      metadata: dict[str, Any] | None = None) -> AddResult:
        """Add ``templates`` to ``name`` (created if new), in one transaction. A template of a photo the
        person already has (same sha256 and mask state) is skipped, so re-enrolling a photo is a no-op."""
        if not name.strip():
            raise GalleryError("a person's name must not be empty")
        self._writable()
        self.check_model(fingerprint, model, "mfr gallery reembed --gallery ... --package <this model>")
        added = already = 0
        with self.transaction() as db:
            self._changed(db)
            self._set_model(db, fingerprint, model, len(templates[0].embedding) if templates else None)
            person_id, _ = self._person_id(db, name, _now(), metadata or {})
            for template in templates:
                vector = np.asarray(template.embedding, np.float32)
                if self._insert_template(db, person_id, _blob(vector), fingerprint, int(template.masked),
                                         int(template.synthetic), float(template.quality), template.source_sha256,
                                         encode_png(template.crop), _now(), vector):
                    added += 1
                else:
                    already += 1
        return AddResult(self.person(name), added, already)

    def erase(self, name: str, before: str | None = None, events_only: bool = False,
              vacuum: bool = True) -> ErasureResult:
        """Erase ``name``: their enrolment (templates, crops, negatives), unless ``events_only`` or
        ``before``, and their sightings (``erasure.py``: every event of a track that named them, older than
        ``before``, an event time; default: all) in one transaction that also records the erasure for
        replicas; then the snapshot files of those sightings, and the storage's free space (``vacuum``:
        ``scrub``).

        A retry after a crash, or the same command again, finishes what is left (files) and succeeds; a
        name that is not enrolled, has no sightings here and was never erased is an error."""
        self._writable()
        digest, now = name_digest(name), utc_now()
        with self.transaction() as db:
            person = self.find_person(name, db)
            previously = db.execute("SELECT max(erased) FROM erasures WHERE name_sha256 = ?", (digest,)).fetchone()[0]
            erasure = Erasure(digest, min(before, now) if before else now, person.id if person else None)
            events = erase_sightings(db, erasure)
            if person is None and not events and previously is None:
                raise GalleryError(f"{self.location}: no person named {name!r}, and no sightings of that name")
            removal = person is not None and not events_only and before is None
            if removal:
                db.execute("DELETE FROM people WHERE name = ?", (name,))
            db.execute("INSERT INTO erasures(name_sha256, person_id, before, removal, erased) VALUES (?, ?, ?, ?, ?)",
                       (digest, erasure.person_id, erasure.before, int(removal), now))
            self._changed(db)
        files = self.finish_pending_files()
        return ErasureResult(name, person, removal, previously, events, files,
                             self.scrub() if vacuum else "not scrubbed (asked not to)")

    def finish_pending_files(self) -> int:
        """Delete the snapshot files that committed erasures queued (``erasure.py``); how many existed."""
        paths = [str(r[0]) for r in self.db.execute("SELECT path FROM pending_files ORDER BY path").fetchall()]
        deleted = 0
        for path in paths:
            try:
                Path(path).unlink()
                deleted += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise GalleryError(f"{path}: cannot delete this erased snapshot ({exc.strerror}); fix that and "
                                   f"run the command again") from None
        if paths:
            with self.transaction() as db:
                for path in paths:
                    db.execute("DELETE FROM pending_files WHERE path = ?", (path,))
        return deleted

    def scrub(self) -> str:
        """Make the storage let go of deleted rows' bytes (backends: SQLite overwrites them as it deletes and
        empties its write-ahead log; PostgreSQL rewrites the tables); what was done, for the user."""
        return "nothing to scrub"

    def _without_erased(self, db: Connection, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``events`` less the sightings of erased people: older than their erasure, or naming someone
        removed who is not enrolled again (a device that has not yet reloaded its gallery)."""
        digests = {name_digest(e[key]) for e in events for key in ("name", "previous_name")
                   if isinstance(e.get(key), str)}
        if not digests:
            return events
        rows = db.execute(f"SELECT name_sha256, before, removal FROM erasures WHERE name_sha256 IN "
                          f"({', '.join('?' * len(digests))})", tuple(sorted(digests))).fetchall()
        erased: set[int] = set()
        for digest, before, removal in rows:
            erased |= {id(e) for e in sightings(events, Erasure(digest, before))}
            named = next((e["name"] for e in events if isinstance(e.get("name"), str)
                          and name_digest(e["name"]) == digest), None)
            if removal and named is not None and db.execute("SELECT 1 FROM people WHERE name = ?",
                                                            (named,)).fetchone() is None:
                erased |= {id(e) for e in sightings(events, Erasure(digest, _END_OF_TIME))}
        return [e for e in events if id(e) not in erased]

    def rename(self, old: str, new: str) -> Person:
        self._writable()
        person = self.person(old)
        if not new.strip():
            raise GalleryError("a person's name must not be empty")
        if self._exists(new):
            raise GalleryError(f"{self.location}: {new!r} is already enrolled; remove or rename that person first")
        with self.transaction() as db:
            self._changed(db)
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person.id))
        return self.person(new)

    def add_negative(self, name: str, embedding: np.ndarray, crop: np.ndarray, source_sha256: str,
                     fingerprint: str, model: str) -> bool:
        """Record that this face is not ``name``; False if that photo was already recorded."""
        self._writable()
        person = self.person(name)
        self.check_model(fingerprint, model, "mfr gallery reembed --gallery ... --package <this model>")
        with self.transaction() as db:
            self._changed(db)
            self._set_model(db, fingerprint, model, len(embedding))
            cursor = db.execute(
                "INSERT INTO negatives(person_id, embedding, fingerprint, source_sha256, crop_png, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (person.id, _blob(embedding), fingerprint, source_sha256, encode_png(crop), _now()))
            return bool(cursor.rowcount)

    # --- reading for search ------------------------------------------------------------------------

    def template_matrix(self) -> TemplateMatrix:
        rows = self.db.execute("SELECT person_id, embedding, masked FROM templates ORDER BY id").fetchall()
        names = {int(r[0]): str(r[1]) for r in self.db.execute("SELECT id, name FROM people").fetchall()}
        if not rows:
            return TemplateMatrix(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), names)
        return TemplateMatrix(np.stack([np.frombuffer(r[1], np.float32) for r in rows]),
                              np.array([r[0] for r in rows], np.int64), np.array([bool(r[2]) for r in rows]), names)

    def negative_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (K, D), person ids (K,)) of every negative."""
        rows = self.db.execute("SELECT person_id, embedding FROM negatives ORDER BY id").fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.stack([np.frombuffer(r[1], np.float32) for r in rows]), np.array([r[0] for r in rows], np.int64)

    # --- re-embedding ------------------------------------------------------------------------------

    def stored_crops(self, table: str) -> list[tuple[int, np.ndarray]]:
        """(row id, aligned crop) of every template (``table="templates"``) or negative."""
        if table not in ("templates", "negatives"):
            raise ValueError(table)
        self._writable()  # a replica keeps no crops
        rows = self.db.execute(f"SELECT id, crop_png FROM {table} ORDER BY id").fetchall()
        return [(row[0], decode_png(bytes(row[1]))) for row in rows]

    def replace_embeddings(self, templates: dict[int, np.ndarray], negatives: dict[int, np.ndarray],
                           fingerprint: str, model: str) -> None:
        """Swap every embedding for one of another model, in one transaction: all or none."""
        self._writable()
        dim = len(next(iter(templates.values()))) if templates else None
        with self.transaction() as db:
            counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("templates", "negatives")}
            if counts != {"templates": len(templates), "negatives": len(negatives)}:
                raise GalleryError(f"{self.location} changed while it was re-embedded; run reembed again")
            self._changed(db)
            self._set_model(db, fingerprint, model, dim)
            extra = self._vector_column()
            for row_id, e in templates.items():
                if extra is None:
                    db.execute("UPDATE templates SET embedding = ?, fingerprint = ? WHERE id = ?",
                               (_blob(e), fingerprint, row_id))
                else:
                    db.execute(f"UPDATE templates SET embedding = ?, fingerprint = ?, {extra} = ? WHERE id = ?",
                               (_blob(e), fingerprint, self._vector_value(np.asarray(e, np.float32)), row_id))
            for row_id, e in negatives.items():
                db.execute("UPDATE negatives SET embedding = ?, fingerprint = ? WHERE id = ?",
                           (_blob(e), fingerprint, row_id))

    # --- export / import ---------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything needed to rebuild the gallery elsewhere, as plain data (see ``portable``)."""
        self._writable()

        def rows(query: str, person_id: int) -> list[dict[str, Any]]:
            cursor = self.db.execute(query, (person_id,))
            names = [c[0] for c in cursor.description]
            return [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in zip(names, row, strict=True)}
                    for row in cursor.fetchall()]

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
        self._writable()
        fingerprint, model = data["fingerprint"], data["model"]
        if fingerprint is not None:
            self.check_model(fingerprint, model, "import into a gallery of the same model, then reembed")
        new_people = new_templates = 0
        with self.transaction() as db:
            self._changed(db)
            first = next((t for p in data["people"] for t in p["templates"]), None)
            if fingerprint is not None:
                self._set_model(db, fingerprint, model,
                                None if first is None else len(np.frombuffer(first["embedding"], np.float32)))
            for person in data["people"]:
                person_id, new = self._person_id(db, person["name"], person["created"], person["metadata"])
                new_people += new
                for t in person["templates"]:
                    new_templates += self._insert_template(
                        db, person_id, t["embedding"], fingerprint, t["masked"], t["synthetic"], t["quality"],
                        t["source_sha256"], t["crop_png"], t["created"], np.frombuffer(t["embedding"], np.float32))
                for n in person["negatives"]:
                    db.execute("INSERT INTO negatives(person_id, embedding, fingerprint, source_sha256, "
                               "crop_png, created) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               (person_id, n["embedding"], fingerprint, n["source_sha256"], n["crop_png"],
                                n["created"]))
        return new_people, new_templates

    # --- replicas ----------------------------------------------------------------------------------

    def snapshot(self, erasures_after: int = 0) -> GallerySnapshot:
        """People, templates and negatives at one revision (one read transaction), without crops, with the
        erasures recorded after id ``erasures_after``."""
        with self.read_transaction() as db:
            revision = int(self._meta("revision", db) or 0)
            people = [tuple(r) for r in db.execute("SELECT id, name, created, metadata FROM people ORDER BY id")]
            templates = [(r[0], r[1], bytes(r[2]), *r[3:]) for r in db.execute(
                "SELECT id, person_id, embedding, masked, synthetic, quality, source_sha256, created FROM templates "
                "ORDER BY id").fetchall()]
            negatives = [(r[0], r[1], bytes(r[2]), *r[3:]) for r in db.execute(
                "SELECT id, person_id, embedding, source_sha256, created FROM negatives ORDER BY id").fetchall()]
            fingerprint, model = self._meta("fingerprint", db), self._meta("model", db)
            erasures = [tuple(r) for r in db.execute(
                "SELECT id, name_sha256, person_id, before, removal, erased FROM erasures WHERE id > ? ORDER BY id",
                (erasures_after,)).fetchall()]
        return GallerySnapshot(revision, fingerprint, model, people, templates, negatives, erasures)

    def last_erasure(self) -> int:
        """The id of the newest erasure recorded here (a replica's: the newest it applied)."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM erasures").fetchone()[0])

    def replace_with(self, snapshot: GallerySnapshot, central: str) -> None:
        """Make this gallery a replica of ``central`` holding ``snapshot``, in one transaction: events stay,
        except the sightings the snapshot's erasures erase (delivered or not; their snapshot files are
        queued in ``pending_files``).

        People are updated in place rather than replaced, so the events keep the person ids they were
        stored against (an erasure finds them by id even after a rename)."""
        with self.transaction() as db:
            now = utc_now()
            for row_id, digest, person_id, before, removal, erased_at in snapshot.erasures:
                # a removal reaches a device late: what it recorded until now is the person's too
                erasure = Erasure(digest, max(before, now) if removal else before, person_id)
                erase_sightings(db, erasure)
                db.execute("INSERT INTO erasures(id, name_sha256, person_id, before, removal, erased) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (row_id, digest, person_id, erasure.before, removal, erased_at))
            for table in ("templates", "negatives"):
                db.execute(f"DELETE FROM {table}")
            keep = {int(row[0]) for row in snapshot.people}
            for (person_id,) in db.execute("SELECT id FROM people").fetchall():
                if int(person_id) not in keep:
                    db.execute("DELETE FROM people WHERE id = ?", (person_id,))
            # names may have moved between people: clear them all first (the column is unique)
            db.execute("UPDATE people SET name = ? || CAST(id AS TEXT)", ("\x1fmoving ",))
            for row in snapshot.people:
                db.execute("INSERT INTO people(id, name, created, metadata) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO "
                           "UPDATE SET name = excluded.name, created = excluded.created, metadata = excluded.metadata",
                           row)
            for t in snapshot.templates:
                db.execute("INSERT INTO templates(id, person_id, embedding, fingerprint, masked, synthetic, quality, "
                           "source_sha256, crop_png, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (t[0], t[1], t[2], snapshot.fingerprint, *t[3:7], b"", t[7]))
            for n in snapshot.negatives:
                db.execute("INSERT INTO negatives(id, person_id, embedding, fingerprint, source_sha256, crop_png, "
                           "created) VALUES (?, ?, ?, ?, ?, ?, ?)", (n[0], n[1], n[2], snapshot.fingerprint, n[3],
                                                                    b"", n[4]))
            for key, value in (("fingerprint", snapshot.fingerprint), ("model", snapshot.model)):
                if value is None:
                    db.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    self._set_meta(db, key, value)
            self._set_meta(db, "revision", str(snapshot.revision))
            self._set_meta(db, "replica_of", central)

    # --- events ------------------------------------------------------------------------------------

    def add_events(self, events: list[dict[str, Any]], delivered: bool = True) -> int:
        """Store events (``recognition.events``) in one transaction; an event id already stored is skipped,
        so writing the same events again adds nothing, and sightings of an erased person are dropped
        (``_without_erased``). Returns how many were new. ``delivered=False`` queues them for a central
        gallery (a replica's outbox, ``undelivered_events``)."""
        added = 0
        with self.transaction() as db:
            for e in self._without_erased(db, events):
                added += db.execute(
                    "INSERT INTO events (event_id, time, source, kind, person_id, name, score, payload, delivered) "
                    "VALUES (?, ?, ?, ?, (SELECT id FROM people WHERE name = ?), ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (e["event_id"], e["time"], e["source"], e["kind"], e.get("name"), e.get("name"), e.get("score"),
                     json.dumps(e), 1 if delivered else 0)).rowcount
        return added

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored events, oldest first (optionally of one kind)."""
        query = "SELECT payload FROM events" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [json.loads(row[0]) for row in self.db.execute(query, (kind,) if kind else ()).fetchall()]

    def undelivered_events(self, limit: int = 500) -> list[dict[str, Any]]:
        """The oldest events not yet delivered to the central gallery."""
        rows = self.db.execute("SELECT payload FROM events WHERE delivered = 0 ORDER BY id LIMIT ?",
                               (limit,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def mark_delivered(self, event_ids: list[str]) -> None:
        with self.transaction() as db:
            for event_id in event_ids:
                db.execute("UPDATE events SET delivered = 1 WHERE event_id = ?", (event_id,))

    def prune_events(self, before: str) -> int:
        """Delete the events older than ``before`` (an event time, ``events.utc_now``'s format) in one
        transaction, except those still to be delivered to a central gallery (a replica's outbox keeps them
        until they are); the number deleted."""
        with self.transaction() as db:
            return int(db.execute("DELETE FROM events WHERE time < ? AND delivered = 1", (before,)).rowcount)

    def count_undelivered(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM events WHERE delivered = 0").fetchone()[0])


def open_gallery(location: str | Path, create: bool = False) -> Gallery:
    """The gallery at ``location``: ``postgresql://`` (or ``postgres://``) URLs open the PostgreSQL
    backend, anything else is an SQLite file."""
    text = str(location)
    if is_gallery_url(text):
        from mfr.recognition.gallery_postgres import PostgresGallery

        return PostgresGallery.connect(text, create)
    from mfr.recognition.gallery_sqlite import SqliteGallery

    return SqliteGallery.open_file(Path(location), create)

def _blob(embedding: np.ndarray) -> bytes:
    return np.ascontiguousarray(embedding, dtype=np.float32).tobytes()
