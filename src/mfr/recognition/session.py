"""One watch run, wired: sources, the stages they share, the event bus, the gallery replica, stopping.

``mfr watch`` parses its options into the parts (a detector, an embedder, the decision rule, the event
sinks) and hands them to a ``WatchSession``; ``mfr bench watch`` and the tests build the same session over
a clip. The session opens every source with its own ``Watcher`` (tracker, identities, events) sharing one
detector, embedder and mask classifier; with several sources each watcher times its own stages and the
session's clock times the shared ones (embedding, mask state, capture to event). A gallery replica, when
there is one, hands a fresh decision rule to every watcher between ticks (``run_watch``'s ``reload``).
``request_stop`` (from a signal handler) finishes the frame in hand; closing ends every track, writes
their events and stops the replica.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mfr.errors import GalleryError, GalleryUnavailable
from mfr.paths import default_gallery_location
from mfr.recognition.decision import Identifier
from mfr.recognition.events import EventFactory, EventSink, Retention, SnapshotStore
from mfr.recognition.latency import StageClock
from mfr.recognition.mask_state import MaskClassifier
from mfr.recognition.replica import ReplicaWorker, sync_once
from mfr.recognition.sources import Frame, FrameSource, LiveOptions, open_source
from mfr.recognition.watch import EventBus, Pipeline, Watcher, WatchOptions, run_watch, status_emitter
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder

Log = Callable[[str], None]


class WatchSession:
    """One watch run: ``open_sources`` (or ``add``), ``run``, then ``close`` (a context manager) and
    ``summary``."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, identifier: Identifier, options: WatchOptions,
                 sinks: list[EventSink], classifier: MaskClassifier | None = None,
                 snapshots: SnapshotStore | None = None, replica: ReplicaWorker | None = None,
                 log: Log = lambda _: None, pipeline: Pipeline | None = None) -> None:
        self.detector, self.embedder, self.identifier, self.options = detector, embedder, identifier, options
        self.pipeline = pipeline
        self.classifier, self.snapshots, self.replica, self.log = classifier, snapshots, replica, log
        self.clock = StageClock()  # events and, with several sources, the shared embed and mask stages
        self.bus = EventBus(sinks, self.clock)
        self.sources: list[FrameSource] = []
        self.watchers: list[Watcher] = []
        self.stop = threading.Event()

    def __enter__(self) -> WatchSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def open_sources(self, texts: list[str], live: LiveOptions | None = None, realtime: bool = False) -> None:
        """Open every source (a file, a camera index, an RTSP/HTTP address) with a watcher of its own."""
        for text in texts:
            factory = EventFactory(text)
            source = open_source(text, live or LiveOptions(), status_emitter(self.bus, factory, self.log),
                                 realtime=realtime)
            factory.source = source.name
            self.add(source, factory, own_clock=len(texts) > 1)

    def add(self, source: FrameSource, factory: EventFactory, own_clock: bool = False) -> Watcher:
        """A source already open, with the events ``factory`` makes; its watcher."""
        self.sources.append(source)
        watcher = Watcher(self.detector, self.embedder, self.identifier, factory, self.options,
                          StageClock() if own_clock else self.clock, self.classifier, self.snapshots)
        self.watchers.append(watcher)
        return watcher

    def request_stop(self) -> None:
        """Finish the frame in hand and return from ``run`` (safe from a signal handler)."""
        self.stop.set()
        for source in self.sources:
            source.request_stop()

    def run(self, on_frame: Callable[[Frame, Watcher], None] | None = None, max_frames: int | None = None) -> None:
        """Every source through its watcher until they end, ``request_stop`` or ``max_frames``."""
        run_watch(self.sources, self.watchers, self.bus, self.stop, on_frame, max_frames,
                  reload=self.replica.take_prepared if self.replica is not None else None,
                  shared_clock=self.clock if len(self.sources) > 1 else None, pipeline=self.pipeline)

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.bus.close()
        if self.replica is not None:
            self.replica.stop()

    def summary(self) -> dict[str, Any]:
        """The run's figures (after ``close``): per source and in all, events by kind, latency, the replica."""
        per_source = [{"source": source.name, "source_stats": source.stats(), **watcher.stats()}
                      for source, watcher in zip(self.sources, self.watchers, strict=True)]
        summary = {**totals(per_source), "events": self.bus.counts, "stopped_by_signal": self.stop.is_set()}
        if len(per_source) > 1:
            summary["sources"] = per_source
            summary["latency"] = self.clock.summary()  # the shared stages: embed, mask, capture_to_event
        if self.replica is not None:
            summary["gallery"] = replica_summary(self.replica)
        return summary


def event_sinks(events_path: Path | None, gallery_file: str | None, queue: bool, mqtt_broker: str | None,
                mqtt_prefix: str = "mfr", retention: Retention | None = None,
                snapshots: SnapshotStore | None = None) -> list[EventSink]:
    """Where a run's events go: JSON Lines (a file, or stdout without one), the gallery's events table (None:
    not stored; ``queue``: a replica's outbox, delivered to the central gallery; ``retention``: what it
    prunes, with the ``snapshots``), and an MQTT broker."""
    from mfr.recognition.events import GallerySink, JsonLinesSink

    sinks: list[EventSink] = [JsonLinesSink(events_path)]
    if gallery_file is not None:
        sinks.append(GallerySink(gallery_file, queue=queue, retention=retention, snapshots=snapshots))
    if mqtt_broker:
        from mfr.recognition.mqtt import MqttSink

        sinks.append(MqttSink(mqtt_broker, mqtt_prefix))
    return sinks


def totals(per_source: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures: one source's own, or the sums over several (rates and shares recomputed)."""
    if len(per_source) == 1:
        return dict(per_source[0])
    summed = ("frames", "frames_detected", "frames_per_second", "tracks", "face_frames", "faces_embedded",
              "faces_below_quality")
    result: dict[str, Any] = {key: sum(s[key] for s in per_source) for key in summed}
    result["frames_per_second"] = round(result["frames_per_second"], 2)
    result["embedded_share"] = (round(result["faces_embedded"] / result["face_frames"], 4) if result["face_frames"]
                                else 0.0)
    result["source"] = ", ".join(s["source"] for s in per_source)
    stats: dict[str, int] = {}
    for s in per_source:
        for key, value in s["source_stats"].items():
            stats[key] = stats.get(key, 0) + value
    result["source_stats"] = stats
    return result


def start_replica(replica_path: Path, central: str | None, sync_every: float, prepare: Callable[[], Any],
                  log: Log) -> ReplicaWorker:
    """Sync the replica once (working offline from the last copy when the server is unreachable), then keep
    it in sync in the background, where ``prepare`` also builds each pull's decision rule (an index over a
    large gallery takes seconds: never in the watch loop)."""
    central = central or default_gallery_location()
    try:
        result = sync_once(replica_path, central)
        log(f"gallery: replica {replica_path} at revision {result.revision} of {result.central} "
            f"({result.people} people)")
    except GalleryUnavailable as exc:
        if not replica_path.exists():
            raise GalleryError(f"{exc}; and there is no replica at {replica_path} to work from yet") from None
        log(f"gallery: {exc}; working offline from the replica {replica_path}")
    worker = ReplicaWorker(replica_path, central, sync_every, log, prepare)
    worker.start()
    return worker


def replica_summary(worker: ReplicaWorker) -> dict[str, Any]:
    from mfr.recognition.gallery import open_gallery

    with open_gallery(worker.replica_path) as replica:
        queued, revision = replica.count_undelivered(), replica.revision
    return {"replica": str(worker.replica_path), "revision": revision, "pulls": worker.pulls,
            "delivered": worker.delivered, "queued": queued, "outages": worker.outages,
            "reachable_at_end": worker.online}
