"""What ``mfr watch`` tells the world: versioned events, and the places they go.

Every event is one JSON object with ``schema`` (``EVENT_SCHEMA``; a consumer checks it), a unique
``event_id`` (run id + sequence number: a retry or a replay never makes a second event of one id),
``time`` (UTC, ISO 8601), ``source``, ``kind`` and fields per kind:

- ``track_started``: track, box;
- ``identified``: track, name (null: unknown), score, margin, threshold, reason, observations, masked,
  seconds_since_first_seen;
- ``identity_changed``: the same fields, plus previous_name;
- ``track_ended``: track, name, dwell_seconds, observations, best_crop (path of the snapshot, or null);
- ``source_status``: state (connected, disconnected, reconnecting, ended; recognition_paused and
  recognition_resumed while a model server cannot be reached), detail;
- ``stats``: frames, frames/s, per-stage latency so far (every ``--stats-every`` seconds).

Sinks: JSON Lines (stdout or a file, flushed per event: a killed process loses at most the event being
written), the gallery's events table (one transaction per frame's events; ``INSERT OR IGNORE`` on the
event id), and MQTT (``mqtt.py``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import cv2
import numpy as np

from mfr.atomic import atomic_file
from mfr.errors import DataError
from mfr.private import create_dirs, private_dir, private_opener

EVENT_SCHEMA = "mfr.watch.event/1"
EVENT_KINDS = ("track_started", "identified", "identity_changed", "track_ended", "source_status", "stats")


def utc_now(at: float | None = None) -> str:
    """An event time: UTC, ISO 8601 with milliseconds (``at``: seconds since the epoch; default now). The
    fixed format orders as text, which is how retention compares times in either gallery backend."""
    now = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass(frozen=True)
class Retention:
    """How long sightings are kept: events (in the gallery's events table) and snapshot files older than
    these many days are deleted while mfr watch runs, checked at most every ``every_s`` seconds (and when
    it starts and stops); None keeps them. Events a replica has not yet delivered are kept until it has."""

    events_days: float | None = None
    snapshots_days: float | None = None
    every_s: float = 60.0

    def cutoff(self, days: float) -> float:
        return time.time() - days * 86400.0


class Pruner:
    """Applies a ``Retention`` from the watch loop's thread: ``maybe`` prunes when ``every_s`` has passed."""

    def __init__(self, retention: Retention, gallery: Any = None, snapshots: SnapshotStore | None = None) -> None:
        self.retention, self.gallery, self.snapshots = retention, gallery, snapshots
        self._last: float | None = None
        self.pruned = {"events": 0, "snapshots": 0}

    def maybe(self) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.retention.every_s:
            return
        self._last = now
        self.prune()

    def prune(self) -> None:
        retention = self.retention
        if retention.events_days is not None and self.gallery is not None:
            self.pruned["events"] += self.gallery.prune_events(utc_now(retention.cutoff(retention.events_days)))
        if retention.snapshots_days is not None and self.snapshots is not None:
            self.pruned["snapshots"] += self.snapshots.prune_older_than(retention.cutoff(retention.snapshots_days))


@dataclass
class EventFactory:
    """Makes the events of one run: ids that are unique across runs and ordered within one (thread-safe:
    the source's thread makes status events)."""

    source: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _sequence: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def make(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        return {"schema": EVENT_SCHEMA, "event_id": f"{self.run_id}-{sequence:08d}", "time": utc_now(),
                "source": self.source, "kind": kind, **fields}


class EventSink(Protocol):
    def write(self, events: list[dict[str, Any]]) -> None:
        ...

    def close(self) -> None:
        ...


class JsonLinesSink:
    """Events as JSON Lines on a stream or appended to a file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            self._stream: IO[str] = sys.stdout
        else:
            try:
                create_dirs(path.parent)
                self._stream = open(path, "a", encoding="utf-8", opener=private_opener)  # noqa: SIM115
            except OSError as exc:
                raise DataError(f"{path}: cannot write events ({exc.strerror})") from None

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self.path is not None:
            self._stream.close()


class GallerySink:
    """Events into a gallery's events table (its own connection: the watch loop's is read-only).

    ``queue=True`` marks them undelivered: a replica's outbox, which ``replica.ReplicaWorker`` delivers to
    the central gallery when it can be reached. With a ``Retention``, events (and snapshot files) past it
    are deleted as events are written, at most every ``every_s`` seconds, and at the start and the end."""

    def __init__(self, location: str | Path, queue: bool = False, retention: Retention | None = None,
                 snapshots: SnapshotStore | None = None) -> None:
        from mfr.recognition.gallery import open_gallery

        self.gallery = open_gallery(location)
        self.queue = queue
        self.pruner = Pruner(retention, self.gallery, snapshots) if retention is not None else None
        if self.pruner is not None:
            self.pruner.maybe()

    def write(self, events: list[dict[str, Any]]) -> None:
        if events:
            self.gallery.add_events(events, delivered=not self.queue)
        if self.pruner is not None:
            self.pruner.maybe()

    def close(self) -> None:
        if self.pruner is not None:
            self.pruner.prune()
        self.gallery.close()


class SnapshotStore:
    """Best-face crops of ended tracks as JPEG files, keeping the newest ``keep``; the folder 0700, each
    file 0600 (``mfr.private``). Events name them by absolute path, so an erasure run from another folder
    finds them."""

    def __init__(self, folder: Path, keep: int = 1000) -> None:
        self.folder, self.keep = folder.absolute(), keep
        private_dir(folder)

    def prune_older_than(self, cutoff: float) -> int:
        """Delete the snapshots last written before ``cutoff`` (seconds since the epoch); how many."""
        old = [p for p in self.folder.glob("*.jpg") if p.stat().st_mtime < cutoff]
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def save(self, name: str, crop: np.ndarray) -> Path:
        path = self.folder / f"{name}.jpg"
        with atomic_file(path, suffix=".jpg", private=True) as tmp:
            if not cv2.imwrite(str(tmp), crop):
                raise DataError(f"{path}: cannot write the snapshot")
        files = sorted(self.folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)
        return path
