"""Erasing a person's sightings: which events and snapshot files belong to them, wherever they are kept.

A person is erased centrally (``Gallery.erase``); devices learn of it from an erasure record that the
central gallery keeps and replicas pull (``replica.pull``), and apply the same rule to their own events,
delivered or not, and to their snapshot files. The rule, for events given as dicts:

- an event *names* the person when its ``name`` (or, for ``identity_changed``, its ``previous_name``) is
  theirs, or when a gallery stored it against their person id (which a rename keeps);
- every event of a track that named the person at some point goes with it (``track_started``, the
  unknown ``identified`` before the name, ``track_ended`` and its snapshot): a track is one sighting;
- with a ``before`` time only events older than it go.

Erasure records hold the SHA-256 of the name, not the name: a replica needs to recognise the name in
its events, not to keep it. Snapshot files are deleted only after the database change is committed, from
a ``pending_files`` table written in the same transaction, so a process killed between the two finishes
on the next run; a path is deleted only when its file name is the one ``mfr watch`` gives the track's
snapshot (``<run>-track<N>.jpg``), so an event crafted to name another file deletes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mfr.atomic import atomic_file
from mfr.errors import DataError


class _Statements(Protocol):
    def execute(self, sql: str, parameters: Any = (), /) -> Any: ...


def name_digest(name: str) -> str:
    """What an erasure record keeps of a name."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Erasure:
    """Erase the sightings of the person whose name has ``digest`` (and whose id in the central gallery is
    ``person_id``, when they were enrolled), older than ``before`` (an event time, ``events.utc_now``'s
    format); ``before`` is the erasure's own time when none was given."""

    digest: str
    before: str
    person_id: int | None = None


def run_id(event: dict[str, Any]) -> str:
    """The run an event came from (its id is ``<run>-<sequence>``)."""
    return str(event.get("event_id", "")).rsplit("-", 1)[0]


def _track(event: dict[str, Any]) -> tuple[str, str, Any] | None:
    if event.get("track") is None:
        return None
    return run_id(event), str(event.get("source")), event["track"]


def _names(event: dict[str, Any], digest: str) -> bool:
    return any(isinstance(event.get(key), str) and name_digest(event[key]) == digest
               for key in ("name", "previous_name"))


def sightings(events: Iterable[dict[str, Any]], erasure: Erasure,
              stored_as_theirs: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The events of ``events`` that ``erasure`` erases (the rule in the module's docstring);
    ``stored_as_theirs``: ids of events a gallery holds against the person's id."""
    events = [e for e in events if str(e.get("time", "")) < erasure.before]
    named = [e for e in events if _names(e, erasure.digest) or e.get("event_id") in stored_as_theirs]
    tracks = {_track(e) for e in named} - {None}
    chosen = {id(e) for e in named}
    return [e for e in events if id(e) in chosen or _track(e) in tracks]


def snapshot_file(event: dict[str, Any]) -> str | None:
    """The snapshot an erased ``track_ended`` event names, if its file name is the one mfr watch gives it."""
    path = event.get("best_crop")
    if event.get("kind") != "track_ended" or not isinstance(path, str) or not path:
        return None
    return path if Path(path).name == f"{run_id(event)}-track{event.get('track')}.jpg" else None


def erase_sightings(db: _Statements, erasure: Erasure) -> int:
    """Delete ``erasure``'s events from a gallery's events table inside the caller's transaction and queue
    their snapshot files in ``pending_files``; how many events went.

    Only candidate rows are read: events naming someone with this digest (names are few; ``identity_changed``
    events are read whole for their previous name), then every event of their runs (an index range on the
    event id), to which ``sightings`` applies."""
    names = [n for (n,) in db.execute("SELECT DISTINCT name FROM events WHERE name IS NOT NULL").fetchall()
             if name_digest(n) == erasure.digest]
    runs = {run_id({"event_id": r[0]}) for name in names
            for r in db.execute("SELECT event_id FROM events WHERE name = ? AND time < ?",
                                (name, erasure.before)).fetchall()}
    theirs = frozenset() if erasure.person_id is None else frozenset(
        str(r[0]) for r in db.execute("SELECT event_id FROM events WHERE person_id = ? AND time < ?",
                                      (erasure.person_id, erasure.before)).fetchall())
    runs |= {run_id({"event_id": event_id}) for event_id in theirs}
    for event_id, payload in db.execute("SELECT event_id, payload FROM events WHERE kind = 'identity_changed' "
                                        "AND time < ?", (erasure.before,)).fetchall():
        if _names(json.loads(payload), erasure.digest):
            runs.add(run_id({"event_id": event_id}))
    deleted = 0
    for run in sorted(runs):
        # every id of the run lies in [run + "-", run + "."): "." follows "-" in every collation used here
        rows = db.execute("SELECT id, payload FROM events WHERE event_id >= ? AND event_id < ?",
                          (run + "-", run + ".")).fetchall()
        by_id = {int(row[0]): json.loads(row[1]) for row in rows}
        erased = {id(e) for e in sightings(by_id.values(), erasure, theirs)}
        for row_id, event in by_id.items():
            if id(event) not in erased:
                continue
            deleted += db.execute("DELETE FROM events WHERE id = ?", (row_id,)).rowcount
            path = snapshot_file(event)
            if path is not None:
                db.execute("INSERT INTO pending_files(path) VALUES (?) ON CONFLICT DO NOTHING", (path,))
    return deleted


def erase_from_log(path: Path, erasure: Erasure) -> int:
    """Rewrite a JSON Lines event log without ``erasure``'s events (atomically; the file stays private);
    how many lines went. Lines that are not events are kept as they are. Run it when no ``mfr watch``
    appends to the file: a writer that has it open goes on writing to the old file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the event log ({exc})") from None
    parsed: list[dict[str, Any] | None] = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        parsed.append(value if isinstance(value, dict) else None)
    erased = {id(e) for e in sightings([e for e in parsed if e is not None], erasure)}
    kept = [line for line, event in zip(lines, parsed, strict=True) if event is None or id(event) not in erased]
    if len(kept) == len(lines):
        return 0
    with atomic_file(path, suffix=".jsonl", private=True) as tmp:
        tmp.write_text("".join(kept), encoding="utf-8")
    return len(lines) - len(kept)
