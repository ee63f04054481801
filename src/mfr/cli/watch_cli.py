"""``mfr watch``: recognise the people a camera, stream or video file shows, as events.

Wiring only: sources, tracker, per-track decisions, events and latency live in ``mfr.recognition``.
Exit codes: 0 when the source ended or the run was stopped (SIGINT/SIGTERM: the frame in hand is finished,
tracks are ended, events flushed, the summary printed); 1 for bad input (a missing file, a stream or
camera that cannot be opened, a gallery of another model); 2 for a wrong option.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import MODEL_LOCATION, log, max_pixels_option
from mfr.cli.gallery_cli import (
    decision_options,
    gallery_option,
    looks_option,
    model_option,
    open_embedder,
    open_gallery,
    policy,
    score_option,
    search_option,
)
from mfr.runtime.detectors import DETECTORS

# one detection per core, up to 4 (beyond that the tracking and recognition thread is the bottleneck)
DEFAULT_DETECT_WORKERS = max(1, min(4, os.cpu_count() or 1))
# the pipelined loop's embedder: every core, its idle threads sleeping (not spinning) beside the detection workers
PIPELINED_EMBEDDER_THREADS = os.cpu_count() or 1


def watch_options(command: Any) -> Any:
    options = [
        click.option("--detect-every", type=click.IntRange(1, 30), default=1, show_default=True,
                     help="Run the detector on every Nth frame; the tracker predicts faces in between."),
        click.option("--detector", type=click.Choice(list(DETECTORS)), default="yunet", show_default=True,
                     help="Face detector (YuNet ships with mfr; RetinaFace needs a package)."),
        click.option("--detector-package", type=MODEL_LOCATION, default=None,
                     help="Detector package, calibrated package or engine directory (default: YuNet's shipped "
                          "package; RetinaFace's exported once into the cache)."),
        click.option("--detect-size", type=click.IntRange(160, 4096), default=640, show_default=True,
                     help="Longest side frames are resized to for detection."),

        click.option("--masked", "mask_mode", type=click.Choice(["auto", "yes", "no"]), default="auto",
                     show_default=True, help="Mask state of faces: the mask classifier decides (auto), or fixed."),
        click.option("--min-observations", type=click.IntRange(1, 100), default=3, show_default=True,
                     help="Embeddings of a track before it is named or declared unknown."),
        click.option("--lost-seconds", type=click.FloatRange(0.1, 60), default=1.5, show_default=True,
                     help="A track unseen this long ends."),
    ]
    for option in reversed(options):
        command = option(command)
    return loop_options(command)


def loop_options(command: Any) -> Any:
    """The detector's precision and the frame loop's shape: mfr watch's, and its benchmarks'."""
    options = [
        click.option("--detector-precision", type=click.Choice(["fp32", "int8"]), default=None,
                     help="Which model of a detector package: fp32 (default) or int8 (a package from mfr-export "
                          "calibrate). An engine directory runs its own precision."),
        click.option("--pipeline/--no-pipeline", default=True, show_default=True,
                     help="Detect frames in worker threads ahead of tracking and recognition (the same events; "
                          "more frames/s on several cores); --no-pipeline runs each frame to its end first."),
        click.option("--detect-workers", type=click.IntRange(1, 16), default=DEFAULT_DETECT_WORKERS,
                     show_default=True, help="Detection threads of the pipelined loop, each running one frame on "
                                             "one core."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("watch")
@click.option("--source", "source_texts", required=True, multiple=True,
              help="Video file, folder of images, camera index (0) or rtsp:// / http(s):// (MJPEG) URL. Repeat for "
                   "several cameras: one loop serves them all, their faces embedded in one batch per tick.")
@click.option("--realtime", is_flag=True,
              help="Play video files at their frame rate, as a camera would deliver them: frames the loop has no "
                   "time for are dropped and counted (default: every frame, as fast as they can be processed).")
@gallery_option
@model_option
@watch_options
@decision_options
@score_option
@looks_option
@search_option
@click.option("--events", "events_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append events as JSON Lines to this file [default: stdout].")
@click.option("--no-gallery-events", is_flag=True, help="Do not store events in the gallery's events table.")
@click.option("--gallery-replica", "replica_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Recognise from this local replica of --gallery (a central PostgreSQL gallery, typically), "
                   "pulled when the central gallery changes; events are queued in it and delivered when the "
                   "server can be reached, so the camera keeps working through outages.")
@click.option("--sync-every", type=click.FloatRange(0.2, 3600), default=5.0, show_default=True,
              help="Seconds between checks of the central gallery (with --gallery-replica).")
@click.option("--snapshots", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for each ended track's best face crop (JPEG).")
@click.option("--keep-snapshots", type=click.IntRange(1), default=1000, show_default=True,
              help="Newest snapshots kept; older ones are deleted.")
@click.option("--retain-events", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DAYS",
              help="Delete the gallery's (or replica's) events older than DAYS while running (a replica keeps what it "
                   "has not delivered yet) [default: kept].")
@click.option("--retain-snapshots", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DAYS",
              help="Delete --snapshots files older than DAYS while running [default: only --keep-snapshots].")
@click.option("--mqtt", "mqtt_broker", default=None, help="Also publish events to this MQTT broker (HOST[:PORT]).")
@click.option("--mqtt-prefix", default="mfr", show_default=True, help="Topic prefix: PREFIX/SOURCE/KIND.")
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the annotated video (boxes, track ids, names, scores, FPS) to this MP4 file.")
@click.option("--show", is_flag=True, help="Show the annotated video in a window (needs a desktop OpenCV).")
@click.option("--stats-every", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds between stats events (0: none).")
@click.option("--stats-json", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the run's summary (counts, per-stage latency percentiles) to this JSON file.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after this many frames.")
@click.option("--wait-for-source", is_flag=True,
              help="Keep trying a live source that cannot be opened at the start, instead of failing.")
@click.option("--read-timeout", type=click.FloatRange(0.5, 120), default=5.0, show_default=True,
              help="Seconds a live source may stay silent (open and read) before it is reconnected.")
@click.option("--quiet", is_flag=True, help="No progress line on the terminal.")
@max_pixels_option
def watch_command(source_texts: tuple[str, ...], realtime: bool, gallery_path: str | None, model_dir: Path | str,
                  detect_every: int, detector: str, detector_package: Path | str | None,
                  detector_precision: str | None, detect_size: int, pipeline: bool, detect_workers: int,
                  mask_mode: str, min_observations: int,
                  lost_seconds: float, target_far: float, min_margin: float, threshold: float | None, score: str,
                  looks: int, search: str,
                  events_path: Path | None, no_gallery_events: bool, replica_path: Path | None, sync_every: float,
                  snapshots: Path | None, keep_snapshots: int, retain_events: float | None,
                  retain_snapshots: float | None,
                  mqtt_broker: str | None, mqtt_prefix: str, record: Path | None, show: bool, stats_every: float,
                  stats_json: Path | None, max_frames: int | None, wait_for_source: bool, read_timeout: float,
                  quiet: bool, max_pixels: int) -> None:
    """Recognise the people in a video stream: events on stdout (or --events) as JSON Lines.

    Faces are detected, tracked across frames, embedded when their quality improves or at an interval,
    and each track is named (or declared unknown) by the gallery's rule over its recent observations. Events
    (track_started, identified, identity_changed, track_ended, source_status, stats) follow the schema
    mfr.watch.event/1 and are also stored in the gallery. Live sources reconnect with backoff.
    """
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_video_detector
    from mfr.recognition.events import Retention, SnapshotStore
    from mfr.recognition.mask_state import MaskClassifier
    from mfr.recognition.session import WatchSession, event_sinks, start_replica
    from mfr.recognition.sources import LiveOptions

    if len(source_texts) > 1 and (record or show):
        raise click.UsageError("--record and --show take one --source")
    loop = frame_loop(pipeline, detect_workers)
    embedder = open_embedder(model_dir, PIPELINED_EMBEDDER_THREADS if loop is not None else 0)
    load_identifier = identifier_loader(str(replica_path) if replica_path else gallery_path, embedder,
                                        policy(target_far, min_margin, threshold, score, looks), model_dir, search)
    replica = (start_replica(replica_path, gallery_path, sync_every, lambda: load_identifier()[0], log)
               if replica_path else None)
    identifier, gallery_file = load_identifier()
    options = _watch_options(detect_every, lost_seconds, min_observations, mask_mode, stats_every)
    face_detector = make_video_detector(detector, detector_package, detect_size, default_cache_dir(), log,
                                        detector_precision, threads=1 if loop is not None else 0)[0]
    if (retain_events or retain_snapshots) and no_gallery_events:
        raise click.UsageError("--retain-events/--retain-snapshots prune while events are stored in the gallery; "
                               "drop --no-gallery-events")
    store = SnapshotStore(snapshots, keep_snapshots) if snapshots else None
    retention = Retention(retain_events, retain_snapshots) if retain_events or retain_snapshots else None
    with WatchSession(face_detector, embedder, identifier, options,
                      event_sinks(events_path, None if no_gallery_events else gallery_file, replica is not None,
                                  mqtt_broker, mqtt_prefix, retention, store),
                      MaskClassifier.load() if mask_mode == "auto" else None, store, replica, log,
                      loop) as session:
        session.open_sources(list(source_texts), LiveOptions(open_timeout=read_timeout, read_timeout=read_timeout,
                                                             wait_for_source=wait_for_source, max_pixels=max_pixels),
                             realtime)
        display = _Display(record, show, getattr(session.sources[0], "fps", 25.0), quiet)
        with stop_on_signals(session.request_stop):
            try:
                session.run(display.on_frame, max_frames)
            finally:
                display.close()
    summary = session.summary()
    if stats_json is not None:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(summary, indent=2))
    _print_summary(summary)


def frame_loop(pipeline: bool, detect_workers: int) -> Any:
    """The pipelined loop's settings (None: the sequential loop). Its detector runs one thread per call:
    the workers are the parallelism."""
    from mfr.recognition.watch import Pipeline

    return Pipeline(detect_workers=detect_workers) if pipeline else None


def identifier_loader(location: str | None, embedder: Any, rule: Any, model_dir: Path | str,
                      search: str) -> Callable[[], tuple[Any, str]]:
    """What (re)builds the decision rule from the gallery at ``location``: (the rule, the gallery's path)."""
    from mfr.recognition.decision import Identifier
    from mfr.runtime.engine_triton import redacted

    def load() -> tuple[Any, str]:
        with open_gallery(location) as gallery:
            return Identifier.for_gallery(gallery, embedder, rule, redacted(str(model_dir)), search), gallery.path

    return load


def _watch_options(detect_every: int, lost_seconds: float, min_observations: int, mask_mode: str,
                   stats_every: float) -> Any:
    from mfr.recognition.track_identity import DecisionConfig
    from mfr.recognition.tracker import TrackerConfig
    from mfr.recognition.watch import WatchOptions

    return WatchOptions(detect_every=detect_every, tracker=TrackerConfig(lost_seconds=lost_seconds),
                        decision=DecisionConfig(min_observations=min_observations), mask_mode=mask_mode,
                        stats_every=stats_every)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``stop`` (the loop finishes its frame and ends cleanly) while inside."""
    previous = {s: signal.signal(s, lambda _signum, _frame: stop()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Display:
    """The terminal progress line, the --record file and the --show window, fed once per frame."""

    def __init__(self, record: Path | None, show: bool, fps: float, quiet: bool) -> None:
        from mfr.recognition.annotate import Recorder

        self.recorder = Recorder(record, fps) if record else None
        self.show, self.quiet = show, quiet
        self.started = time.monotonic()
        self.last_line = 0.0

    def on_frame(self, frame: Any, watcher: Any) -> None:
        now = time.monotonic()
        fps = watcher.counts.frames / max(now - self.started, 1e-9)
        if self.recorder is not None or self.show:
            from mfr.recognition.annotate import annotate

            image = annotate(frame.image, watcher.views(), fps)
            if self.recorder is not None:
                self.recorder.write(image)
            if self.show:
                import cv2

                try:
                    cv2.imshow("mfr watch", image)
                    cv2.waitKey(1)
                except cv2.error:
                    log("--show: this OpenCV has no window support (opencv-python-headless); use --record")
                    self.show = False
        if not self.quiet and now - self.last_line >= 1.0:
            self.last_line = now
            log(f"frame {watcher.counts.frames}: {fps:.1f} frames/s, {len(watcher.views())} tracks, "
                f"{watcher.counts.tracks} seen")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()


def _print_summary(summary: dict[str, Any]) -> None:
    log(f"watched {summary['source']}: {summary['frames']} frames at {summary['frames_per_second']} frames/s, "
        f"{summary['tracks']} tracks, events {summary['events']}, embedded {100 * summary['embedded_share']:.1f} % "
        f"of face-frames; source {summary['source_stats']}")
    for source in summary.get("sources", []):
        log(f"  {source['source']}: {source['frames']} frames at {source['frames_per_second']} frames/s, "
            f"{source['tracks']} tracks, embedded {100 * source['embedded_share']:.1f} %; {source['source_stats']}")
    for stage, figures in summary["latency"].items():
        log(f"  {stage:17s} p50 {figures['p50_ms']:8.2f} ms  p95 {figures['p95_ms']:8.2f} ms  "
            f"p99 {figures['p99_ms']:8.2f} ms  ({figures['count']})")

