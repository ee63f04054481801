"""An edge device's local copy of a central gallery, and the outbox its events wait in.

A device recognises from a replica, an ordinary SQLite gallery marked ``replica_of`` the central one
(PostgreSQL for a fleet, or another file), so it keeps working when the network or the server is down:

- **pull on change**: the central gallery's ``revision`` (raised by every enrolment, removal, rename or
  negative) is polled; when it differs from the replica's, a consistent snapshot (one read transaction,
  without the crops) replaces the replica's people, templates and negatives in one local transaction.
  Whole pulls rather than deltas keep it simple and always right; a pull of 100k templates is one query.
- **erasures**: the snapshot carries the erasures the replica has not applied (``erasure.py``); the same
  transaction deletes their sightings here, delivered or undelivered, and queues their snapshot files,
  deleted after it commits. Pull runs before delivery, so an erased person's queued events never reach
  the central gallery.
- **outbox**: events are first stored in the replica, marked undelivered (``GallerySink(queue=True)``);
  ``deliver`` copies them to the central gallery in batches and marks them delivered after the server
  committed. Event ids are unique there (``ON CONFLICT DO NOTHING``), so a batch sent again after a lost
  acknowledgement or a crash between the two commits is stored once.

``ReplicaWorker`` does both in a background thread with its own connections, so a server that is down
or slow never stops the watch loop; it reports state changes and sets ``changed`` after a pull.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfr.errors import GalleryError, GalleryUnavailable
from mfr.recognition.gallery import Gallery, open_gallery


@dataclass(frozen=True)
class SyncResult:
    central: str
    revision: int  # the replica's revision after the sync (the central one's when it was reached)
    pulled: bool  # the replica changed
    people: int
    templates: int
    delivered: int  # events delivered in this sync
    queued: int  # events still waiting in the outbox
    erasures: int = 0  # central erasures applied here in this sync


def pull(replica: Gallery, central: Gallery) -> bool:
    """Bring ``replica`` to ``central``'s revision, applying the erasures it has not (their snapshot files
    deleted after the commit); False when it already was."""
    source = replica.replica_of
    if source is None and replica.size()[0]:
        raise GalleryError(f"{replica.location} is a gallery of its own, not a replica: name a new file "
                           f"for the replica of {central.location}")
    if source is not None and source != central.location:
        raise GalleryError(f"{replica.location} is a replica of {source}, not of {central.location}")
    if source is not None and replica.revision == central.revision:
        return False
    snapshot = central.snapshot(erasures_after=replica.last_erasure())
    replica.replace_with(snapshot, central.location)
    replica.finish_pending_files()
    if snapshot.erasures:  # the erased templates' old pages may be in the write-ahead log
        replica.scrub()
    return True


def deliver(replica: Gallery, central: Gallery, batch: int = 500) -> int:
    """Copy the replica's undelivered events to ``central``; how many were delivered."""
    total = 0
    while True:
        events = replica.undelivered_events(batch)
        if not events:
            return total
        central.add_events(events)
        replica.mark_delivered([e["event_id"] for e in events])
        total += len(events)


def sync_once(replica_path: Path, central_location: str) -> SyncResult:
    """Pull and deliver once (``mfr gallery sync``); the replica file is created if new."""
    with open_gallery(central_location) as central, open_gallery(replica_path, create=True) as replica:
        applied = replica.last_erasure()
        pulled = pull(replica, central)
        delivered = deliver(replica, central)
        people, templates = replica.size()
        erasures = int(replica.db.execute("SELECT count(*) FROM erasures WHERE id > ?", (applied,)).fetchone()[0])
        return SyncResult(central.location, replica.revision, pulled, people, templates, delivered,
                          replica.count_undelivered(), erasures)


class ReplicaWorker(threading.Thread):
    """Keeps a replica current and its outbox delivered while the watch loop runs."""

    def __init__(self, replica_path: Path, central_location: str, interval: float = 5.0,
                 log: Callable[[str], None] = lambda _: None, prepare: Callable[[], Any] | None = None) -> None:
        """``prepare`` runs here after each pull (building the decision rule over the new replica, which for
        a large gallery includes its index); ``take_prepared`` hands the result to the watch loop."""
        super().__init__(name="mfr-replica", daemon=True)
        self.replica_path, self.central_location = replica_path, central_location
        self.interval, self.log, self.prepare = interval, log, prepare
        self.changed = threading.Event()  # set after a pull (and its preparation)
        self._prepared: Any = None
        self._lock = threading.Lock()
        self.online: bool | None = None
        self.delivered = self.pulls = self.outages = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def take_prepared(self) -> Any:
        """What ``prepare`` made after the latest pull, once (None: no pull since the last call). Raises the
        worker's own failure (a broken replica file), so the watch loop never runs on silently."""
        if self.error is not None:
            raise self.error
        if not self.changed.is_set():
            return None
        with self._lock:
            prepared, self._prepared = self._prepared, None
            self.changed.clear()
        return prepared

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after one last delivery attempt (at most ``timeout`` seconds)."""
        self._stopping.set()
        self.join(timeout)

    def run(self) -> None:
        replica = open_gallery(self.replica_path)
        central: Gallery | None = None
        try:
            while True:
                central = self._step(replica, central)
                if self._stopping.wait(self.interval):
                    central = self._step(replica, central)  # deliver what the last frames produced
                    break
        except BaseException as exc:  # a broken replica file: the watch loop reports it
            self.error = exc
        finally:
            if central is not None:
                central.close()
            replica.close()

    def _step(self, replica: Gallery, central: Gallery | None) -> Gallery | None:
        try:
            if central is None:
                central = open_gallery(self.central_location)
            if pull(replica, central):
                self.pulls += 1
                self.log(f"gallery: pulled revision {replica.revision} from {central.location}")
                prepared = self.prepare() if self.prepare is not None else None
                with self._lock:
                    self._prepared = prepared
                self.changed.set()
            self.delivered += deliver(replica, central)
            self._set_online(True, "")
            return central
        except GalleryUnavailable as exc:
            if central is not None:
                central.close()
            self._set_online(False, str(exc))
            return None

    def _set_online(self, online: bool, detail: str) -> None:
        if online == self.online:
            return
        if not online:
            self.outages += 1
        self.online = online
        self.log(f"gallery: {'reachable' if online else 'unreachable, working from the replica'}"
                 + (f" ({detail})" if detail else ""))
