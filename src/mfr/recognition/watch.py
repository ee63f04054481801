"""The camera loop: frames -> faces -> tracks -> identities -> events, with every stage timed.

``Watcher.process`` handles one frame: detection (every ``detect_every`` frames; motion prediction in
between), tracking, then for the tracks whose face was detected in this frame the quality gate, and for
those the ``EmbedSchedule`` picks, one batched embedding of all their faces (aligned once on the CPU, as
the quality gate needs the crop; on a TensorRT engine the CUDA kernel normalises them), their mask state,
and each track's decision. Several sources each have their own ``Watcher`` (tracker, identities, events);
``tick`` takes one frame of each, runs ``Watcher.begin`` (detection to the quality gate) for all, embeds
every source's chosen faces in one call, and lets each ``Watcher.conclude``. ``run_watch`` drives the
sources (``multiplex.SourceMux``) through it and hands the events to the sinks. Nothing of the model
stages is re-implemented here: detectors, alignment, the embedder and the gallery's decision rule are the
runtime's and the recognition stage's own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfr.errors import EngineUnavailable
from mfr.recognition.decision import Identifier
from mfr.recognition.events import EventFactory, EventSink, SnapshotStore
from mfr.recognition.latency import StageClock
from mfr.recognition.mask_state import MaskClassifier, classifier_crops
from mfr.recognition.multiplex import SourceMux
from mfr.recognition.quality import QualityGate
from mfr.recognition.sources import Frame, FrameSource, SourceStatus
from mfr.recognition.track_identity import DecisionConfig, EmbedSchedule, TrackIdentity
from mfr.recognition.tracker import FaceTracker, Track, TrackerConfig, TrackUpdate, overlap_matrix
from mfr.runtime.detection import Face, FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.preprocess import align_faces


@dataclass(frozen=True)
class WatchOptions:
    detect_every: int = 1
    tracker: TrackerConfig = TrackerConfig()
    schedule: EmbedSchedule = EmbedSchedule()
    decision: DecisionConfig = DecisionConfig()
    gate: QualityGate = QualityGate()
    mask_mode: str = "auto"  # auto (classifier), yes (all masked), no
    flip: bool = True  # flip-sum embeddings, as enrolment and the thresholds use (GPU and CPU paths alike)
    stats_every: float = 60.0  # seconds between stats events (0: none)


@dataclass
class WatchCounts:
    frames: int = 0
    frames_detected: int = 0
    face_frames: int = 0  # sum over frames of the tracks present
    faces_embedded: int = 0
    faces_below_quality: int = 0
    tracks: int = 0
    events: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackView:
    """A track as the annotation draws it."""

    track_id: int
    box: np.ndarray
    name: str | None  # the name shown: None while unknown, undecided or re-verified
    decided: bool  # an answer is shown (not undecided, contested or being re-verified)
    score: float | None
    masked: bool | None


@dataclass(frozen=True)
class Detection:
    """The faces of one frame and how long finding them took."""

    faces: list[Face]
    milliseconds: float


INLINE = object()  # Watcher.begin: plan and detect in place (no detection handed in)


@dataclass(frozen=True)
class Pipeline:
    """The pipelined loop: frames are detected by ``detect_workers`` threads ahead of tracking and
    recognition, at most ``depth`` ticks waiting behind the one in hand; when that is full the loop waits,
    and a live source (or a file read in real time) drops the frames it has no room for, counted."""

    detect_workers: int = 2
    depth: int = 2


@dataclass
class ChosenFaces:
    """The faces of one frame picked for embedding, with what their decisions need."""

    watcher: Watcher
    frame: Frame
    tracks: list[Track]
    crops: np.ndarray  # (N, H, W, 3) aligned
    qualities: list[float]
    mask_crops: np.ndarray  # what the mask classifier reads (the same crops where the model's have its geometry)


def embed_chosen(batches: list[ChosenFaces], clock: StageClock) -> list[tuple[np.ndarray, np.ndarray]]:
    """(embeddings, mask probabilities) of every batch, in one embedder call and one mask-classifier call
    for all of them. The faces were aligned once, for the quality gate; the embedder normalises those crops
    (on a TensorRT engine the CUDA kernel does, with their mirror images in the same batch), so one source
    or several, GPU or CPU, a face gets the same kind of embedding as at enrolment."""
    first = batches[0].watcher
    embedder, options = first.embedder, first.options
    crops = np.concatenate([b.crops for b in batches])
    with clock.stage("embed"):
        embeddings = embedder.embed_crops(crops, flip=options.flip)
    with clock.stage("mask"):
        if options.mask_mode == "auto" and first.mask_classifier is not None:
            masked = first.mask_classifier.probability(np.concatenate([b.mask_crops for b in batches]))
        else:
            masked = np.full(len(crops), 1.0 if options.mask_mode == "yes" else 0.0, np.float32)
    out, start = [], 0
    for batch in batches:
        end = start + len(batch.tracks)
        out.append((embeddings[start:end], masked[start:end]))
        start = end
    return out


def tick(frames: list[tuple[Watcher, Frame]], clock: StageClock | None = None,
         detections: list[Detection | None] | None = None) -> list[list[dict[str, Any]]]:
    """One frame from each of several sources (each with its own watcher: tracker, identities, events),
    their chosen faces embedded together; the events of each frame, in the order given. The watchers
    share one embedder, mask classifier and options (the first watcher's are used). The shared embed and
    mask stages are timed on ``clock`` (default: the first watcher's). ``detections``: each frame's faces
    found ahead (the pipelined loop; None for a frame its watcher does not detect on), else each watcher
    detects as it goes."""
    planned = detections if detections is not None else [INLINE] * len(frames)
    begun = [watcher.begin(frame, found) for (watcher, frame), found in zip(frames, planned, strict=True)]
    chosen = [c for _, c in begun if c is not None]
    failure = None
    try:
        embedded = iter(embed_chosen(chosen, clock or frames[0][0].clock) if chosen else [])
    except EngineUnavailable as exc:  # a model server down or restarting: tracking goes on, naming waits
        embedded, failure = iter([]), str(exc)
    out = []
    for (watcher, frame), (events, faces) in zip(frames, begun, strict=True):
        if faces is not None and failure is not None:
            events = events + watcher.recognition_paused(failure)
        elif faces is not None:  # the chosen faces come back in the order they were chosen
            events = events + watcher.recognition_resumed() + watcher.conclude(faces, *next(embedded))
        out.append(events + watcher.stats_event(frame))
    return out


class Watcher:
    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, identifier: Identifier,
                 events: EventFactory, options: WatchOptions = WatchOptions(), clock: StageClock | None = None,
                 mask_classifier: MaskClassifier | None = None, snapshots: SnapshotStore | None = None) -> None:
        if options.detect_every < 1:
            raise ValueError("detect_every must be at least 1")
        self.detector, self.embedder, self.identifier = detector, embedder, identifier
        self.events, self.options = events, options
        self.clock = clock or StageClock()
        self.mask_classifier = mask_classifier
        self.snapshots = snapshots
        self.tracker = FaceTracker(options.tracker)
        self.identities: dict[int, TrackIdentity] = {}
        self.counts = WatchCounts()
        self.spec = embedder.manifest.spec
        self._last_stats: float | None = None
        self._planned = 0  # frames whose detection was planned (plan_detection)
        self.started = time.monotonic()
        self.paused = False  # the embedder's server could not be reached at the last try

    # --- one frame ---------------------------------------------------------------------------------

    def process(self, frame: Frame) -> list[dict[str, Any]]:
        """Everything one frame causes, as events."""
        return tick([(self, frame)])[0]

    def plan_detection(self) -> bool:
        """Whether the next frame is one to detect on (every ``detect_every``-th; asked once per frame, in
        order, by whoever runs the detection: this watcher, or the pipelined loop ahead of it)."""
        now = self._planned % self.options.detect_every == 0
        self._planned += 1
        return now

    def detect(self, frame: Frame) -> Detection:
        """The faces of one frame and the time it took (thread-safe: the detector's engine is)."""
        start = time.perf_counter()
        faces = self.detector.detect(frame.image)
        return Detection(faces, 1000 * (time.perf_counter() - start))

    def begin(self, frame: Frame, detection: Detection | None | object = INLINE
              ) -> tuple[list[dict[str, Any]], ChosenFaces | None]:
        """Detection, tracking and the quality gate for one frame: its track events, and the faces the
        schedule wants embedded (None: none); ``conclude`` decides on them once they are embedded.
        ``detection``: the frame's faces found ahead (None: not a frame to detect on); by default this
        watcher plans and detects itself."""
        if detection is INLINE:
            detection = self.detect(frame) if self.plan_detection() else None
        clock, counts = self.clock, self.counts
        clock.add("capture", frame.capture_ms)
        clock.add("decode", frame.decode_ms)
        counts.frames += 1
        detect_now = isinstance(detection, Detection)
        faces: list[Face] = []
        if isinstance(detection, Detection):
            faces = detection.faces
            clock.add("detect", detection.milliseconds)
            counts.frames_detected += 1
            with clock.stage("track"):
                update = self.tracker.update(faces, frame.time)
        else:
            with clock.stage("track"):
                update = self.tracker.predict(frame.time)
        counts.face_frames += len(update.active)
        events = self._track_events(update, frame)
        self._contest(update.active, faces)
        chosen = self._choose([t for t in update.active if t.detected_now], frame) if detect_now else None
        return events, chosen

    def _track_events(self, update: TrackUpdate, frame: Frame) -> list[dict[str, Any]]:
        events = []
        for track in update.started:
            self.identities[track.track_id] = TrackIdentity(track.track_id, self.options.decision)
            self.counts.tracks += 1
            events.append(self.events.make("track_started", track=track.track_id, frame=frame.index,
                                           box=_box(track.box)))
        for track in update.ended:
            events.append(self._ended_event(track))
        return events

    def _contest(self, tracks: list[Track], faces: list[Face]) -> None:
        """Tracks whose boxes overlap another face (another track, tentative ones included, or a detection
        of this frame not matched to it), or found again after a gap, may have swapped faces: their
        identities are re-verified (``TrackIdentity.contest``)."""
        config = self.options.decision
        for track in tracks:
            identity = self.identities.get(track.track_id)
            if identity is None:
                continue
            others = [t.box for t in self.tracker.tracks() if t is not track]
            others += [f.box for f in faces if not (track.detected_now and f is track.face)]
            overlap = overlap_matrix(track.box[None], np.array(others).reshape(-1, 4))
            crowded = bool((overlap >= config.contest_overlap).any())
            if crowded or (track.detected_now and track.missed_before >= config.regain_misses):
                identity.contest()
            if not crowded:
                identity.release()

    def _choose(self, tracks: list[Track], frame: Frame) -> ChosenFaces | None:
        """Quality gate for the detected faces; those the schedule wants embedded."""
        if not tracks:
            return None
        options = self.options
        with self.clock.stage("align"):
            crops = align_faces(frame.image, [t.face.landmarks for t in tracks], self.spec)
            qualities = [options.gate.assess(frame.image.shape, t.face.box, t.face.landmarks, c)
                         for t, c in zip(tracks, crops, strict=True)]
        chosen = []
        for i, (track, quality) in enumerate(zip(tracks, qualities, strict=True)):
            if not quality.ok:
                self.counts.faces_below_quality += 1
            elif self.identities[track.track_id].wants_embedding(quality.score, frame.time, options.schedule):
                chosen.append(i)
        if not chosen:
            return None
        picked = [tracks[i] for i in chosen]
        mask_crops = crops[chosen]
        if self.options.mask_mode == "auto" and self.mask_classifier is not None:
            with self.clock.stage("align"):
                mask_crops = classifier_crops(frame.image, [t.face.landmarks for t in picked], self.spec, mask_crops)
        return ChosenFaces(self, frame, picked, crops[chosen], [qualities[i].score for i in chosen], mask_crops)

    def recognition_paused(self, detail: str) -> list[dict[str, Any]]:
        """A ``source_status`` event when the embedder's server became unreachable (once per outage); the
        faces of such frames go unnamed and are chosen again in later frames."""
        if self.paused:
            return []
        self.paused = True
        return [self.events.make("source_status", state="recognition_paused", detail=detail)]

    def recognition_resumed(self) -> list[dict[str, Any]]:
        """A ``source_status`` event when embedding works again after a pause."""
        if not self.paused:
            return []
        self.paused = False
        return [self.events.make("source_status", state="recognition_resumed", detail="")]

    def conclude(self, faces: ChosenFaces, embeddings: np.ndarray, masked: np.ndarray) -> list[dict[str, Any]]:
        """Each embedded face's observation and its track's decision."""
        self.counts.faces_embedded += len(faces.tracks)
        events = []
        with self.clock.stage("match"):
            for row, track in enumerate(faces.tracks):
                identity = self.identities[track.track_id]
                previous = identity.name
                identity.observe(embeddings[row], faces.qualities[row], float(masked[row]), faces.frame.time,
                                 faces.crops[row])
                kind = identity.decide(self.identifier)
                if kind is not None:
                    events.append(self._identity_event(kind, track, identity, faces.frame, previous))
        return events

    def _identity_event(self, kind: str, track: Track, identity: TrackIdentity, frame: Frame,
                        previous: str | None) -> dict[str, Any]:
        decision = identity.last_decision
        assert decision is not None
        fields: dict[str, Any] = {
            "track": track.track_id, "frame": frame.index, "name": identity.name,
            "score": round(decision.score, 4) if np.isfinite(decision.score) else None,
            "margin": round(decision.margin, 4) if np.isfinite(decision.margin) else None,
            "threshold": round(decision.threshold, 4), "reason": decision.reason,
            "observations": identity.total_observations, "masked": decision.masked,
            "seconds_since_first_seen": round(frame.time - track.first_seen, 3), "box": _box(track.box)}
        if kind == "identity_changed":
            fields["previous_name"] = previous
        return self.events.make(kind, **fields)

    def _ended_event(self, track: Track) -> dict[str, Any]:
        identity = self.identities.pop(track.track_id, None)
        crop_path = None
        if identity is not None and identity.best_crop is not None and self.snapshots is not None:
            crop_path = str(self.snapshots.save(f"{self.events.run_id}-track{track.track_id}", identity.best_crop))
        return self.events.make("track_ended", track=track.track_id, name=identity.name if identity else None,
                                decided=bool(identity and identity.decided),
                                dwell_seconds=round(track.last_seen - track.first_seen, 3),
                                observations=identity.total_observations if identity else 0, best_crop=crop_path)

    def stats_event(self, frame: Frame) -> list[dict[str, Any]]:
        """A ``stats`` event when ``stats_every`` seconds of the source's clock have passed since the last."""
        every = self.options.stats_every
        if every <= 0:
            return []
        if self._last_stats is None:
            self._last_stats = frame.time
            return []
        if frame.time - self._last_stats < every:
            return []
        self._last_stats = frame.time
        return [self.events.make("stats", **self.stats())]

    # --- the end and the figures -------------------------------------------------------------------

    def finish(self) -> list[dict[str, Any]]:
        """End every track (the source ended or the process stops)."""
        return [self._ended_event(track) for track in self.tracker.end_all()]

    def views(self) -> list[TrackView]:
        out = []
        for track in self._confirmed():
            identity = self.identities.get(track.track_id)
            decision = identity.last_decision if identity else None
            out.append(TrackView(track.track_id, track.box, identity.shown_name if identity else None,
                                 bool(identity and identity.settled), decision.score if decision else None,
                                 decision.masked if decision else None))
        return out

    def _confirmed(self) -> list[Track]:
        return [t for t in self.tracker.tracks() if t.confirmed]

    def stats(self) -> dict[str, Any]:
        counts = self.counts
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {"frames": counts.frames, "frames_detected": counts.frames_detected,
                "frames_per_second": round(counts.frames / elapsed, 2), "tracks": counts.tracks,
                "face_frames": counts.face_frames, "faces_embedded": counts.faces_embedded,
                "embedded_share": round(counts.faces_embedded / counts.face_frames, 4) if counts.face_frames else 0.0,
                "faces_below_quality": counts.faces_below_quality, "latency": self.clock.summary()}


def _box(box: np.ndarray) -> list[float]:
    return [round(float(v), 1) for v in box]


class EventBus:
    """Hands events to every sink, and times capture-to-event. Sinks are written from the watch loop's
    thread only (SQLite connections and files belong to one thread; a sink's failure is the loop's error,
    never a silently dead reader thread): other threads ``post`` events, which the next ``emit`` or
    ``flush`` writes first."""

    def __init__(self, sinks: list[EventSink], clock: StageClock) -> None:
        self.sinks, self.clock = sinks, clock
        self._posted: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def post(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._posted += events

    def flush(self) -> None:
        self.emit([])

    def emit(self, events: list[dict[str, Any]], captured: float | None = None) -> None:
        with self._lock:
            events, self._posted = self._posted + events, []
        if not events:
            return
        for sink in self.sinks:
            sink.write(events)
        for event in events:
            self.counts[event["kind"]] = self.counts.get(event["kind"], 0) + 1
        if captured is not None:
            self.clock.add("capture_to_event", 1000 * (time.monotonic() - captured))

    def close(self) -> None:
        self.flush()
        for sink in self.sinks:
            sink.close()


def status_emitter(bus: EventBus, factory: EventFactory, log: Callable[[str], None]) -> Callable[[SourceStatus],
                                                                                                     None]:
    """The callback a live source reports its state changes to (from its own thread: events are posted)."""

    def report(status: SourceStatus) -> None:
        event = factory.make("source_status", state=status.state, detail=status.detail)
        log(f"source {factory.source}: {status.state}" + (f" ({status.detail})" if status.detail else ""))
        bus.post([event])

    return report


def run_watch(sources: list[FrameSource], watchers: list[Watcher], bus: EventBus, stop: threading.Event,
              on_frame: Callable[[Frame, Watcher], None] | None = None, max_frames: int | None = None,
              reload: Callable[[], Identifier | None] | None = None, shared_clock: StageClock | None = None,
              pipeline: Pipeline | None = None) -> None:
    """Drive each source through its watcher until every source ended, ``stop`` is set or ``max_frames``
    were processed (all sources together); each tick embeds the faces of every source's newest frame in
    one batch. Every track is ended and its events written before returning. ``reload``, asked before
    every tick, returns a new decision rule when the gallery changed (a replica pulled), else None.
    ``shared_clock`` times the stages the sources share (embedding, mask state); default: the first
    source's watcher's clock. ``pipeline``: detect frames in worker threads ahead of tracking and
    recognition (``Pipeline``); the events are those of the sequential loop, frame for frame."""
    mux = SourceMux(sources)
    processed = 0
    pending: deque[tuple[list[tuple[Watcher, Frame]], list[Future[Detection] | None]]] = deque()
    workers = ThreadPoolExecutor(pipeline.detect_workers, "detect") if pipeline is not None else None

    def finish_oldest() -> None:
        nonlocal processed
        frames, futures = pending.popleft()
        detections = None if workers is None else [None if f is None else f.result() for f in futures]
        for (watcher, frame), events in zip(frames, tick(frames, shared_clock, detections), strict=True):
            bus.emit(events, frame.captured)
            watcher.clock.add("capture_to_done", 1000 * (time.monotonic() - frame.captured))
            if on_frame is not None:
                on_frame(frame, watcher)
        processed += len(frames)

    def oldest_ready() -> bool:
        return bool(pending) and all(f is None or f.done() for f in pending[0][1])

    try:
        mux.start()
        while not stop.is_set():
            # wait for frames only as long as nothing detected is waiting to be finished
            ready = mux.take(0.0 if oldest_ready() else 0.002 if pending else 0.5)
            if ready is None:
                break
            if reload is not None and (ready or not pending):  # per tick, not per 2-ms poll of the pipeline
                fresh = reload()
                if fresh is not None:
                    for watcher in watchers:
                        watcher.identifier = fresh
            if ready:
                frames = [(watchers[i], frame) for i, frame in ready]
                futures = [workers.submit(watcher.detect, frame) if workers is not None and watcher.plan_detection()
                           else None for watcher, frame in frames]
                pending.append((frames, futures))
            elif not pending:  # live sources waiting for frames: write what their threads reported
                bus.flush()
            while pending and (len(pending) > (pipeline.depth if pipeline else 0) or oldest_ready()):
                finish_oldest()
            if max_frames is not None and processed >= max_frames:
                break
        while pending and not stop.is_set() and (max_frames is None or processed < max_frames):
            finish_oldest()
    finally:
        mux.cancel()
        if workers is not None:
            workers.shutdown(cancel_futures=True)
        for watcher in watchers:
            bus.emit(watcher.finish())
