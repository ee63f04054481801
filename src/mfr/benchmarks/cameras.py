"""``mfr bench cameras``: how many real-time cameras one box watches, one ``mfr watch`` process for all.

Each camera is a generated clip (``mfr.data.clips``: its own seed, so its own faces) played in real time at
its frame rate (``RealtimeFileSource``: decoded on the stream's clock whether or not the loop keeps up, a
frame not taken in time dropped and counted, as a camera's would be). All streams start together, so their
frames arrive in bursts: the harder case. A number of cameras holds when no stream drops a frame and every
stream's capture-to-processed p95 stays within ``max_p95_ms``; the search doubles the number until one fails,
then bisects. Each trial also records the share of the run's core-time each stage took (stage wall times
summed over ``duration x cores``: detection runs in worker threads, the rest in the loop's thread).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfr.benchmarks.pipeline import DEFAULT_POLICY, RESOLUTIONS, _enrol, loop_name
from mfr.data.clips import ClipConfig, make_clip
from mfr.recognition.decision import Identifier
from mfr.recognition.events import EventFactory
from mfr.recognition.gallery import Gallery
from mfr.recognition.mask_state import MaskClassifier
from mfr.recognition.session import WatchSession
from mfr.recognition.sources import RealtimeFileSource
from mfr.recognition.watch import Pipeline, WatchOptions
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.machine import fingerprint

STAGE_SHARES = ("decode", "detect", "track", "align", "embed", "mask", "match")


@dataclass(frozen=True)
class CameraLoad:
    resolution: str = "720p"
    faces: int = 5
    fps: float = 15.0
    seconds: float = 12.0
    detect_every: int = 1
    max_p95_ms: float = 200.0


@dataclass
class CameraTrial:
    cameras: int
    held: bool
    frames: list[int]  # processed, per stream
    dropped: list[int]  # per stream
    capture_to_done_p95_ms: list[float]  # per stream
    capture_to_event_p95_ms: float | None
    stage_share: dict[str, float]  # share of the run's core-time (duration x cores) per stage
    seconds: float


@dataclass
class CamerasRun:
    detector: str
    load: CameraLoad
    loop: str
    trials: list[CameraTrial] = field(default_factory=list)

    @property
    def max_cameras(self) -> int:
        return max((t.cameras for t in self.trials if t.held), default=0)


@dataclass
class CamerasReport:
    model: str
    runs: list[CamerasRun] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "machine": self.machine,
                "runs": [{**asdict(r), "max_cameras": r.max_cameras} for r in self.runs]}


def camera_clip(cache_dir: Path, load: CameraLoad, index: int) -> Path:
    """Camera ``index``'s clip for this load (generated once into ``cache_dir``/clips)."""
    width, height = RESOLUTIONS[load.resolution]
    path = cache_dir / "clips" / f"camera-{load.resolution}-{load.faces}-{load.fps:g}-{load.seconds:g}-{index}"
    if not (path / "truth.json").is_file():
        per_track = 4.0
        people = max(3, round(load.faces * load.seconds / per_track))
        make_clip(path, ClipConfig(width=width, height=height, fps=load.fps, seed=100 + index, known_lfw=1,
                                   known_mfr2=1, strangers=people - 2, appearances=1, concurrency=load.faces,
                                   seconds_per_track=per_track))
    return path


@dataclass
class TrialRunner:
    """One trial per call: ``cameras`` streams of these clips into one watch loop (``CameraTrial``)."""

    clips: list[Path]
    detector: FaceDetector
    detector_name: str
    embedder: FaceEmbedder
    identifier: Identifier
    load: CameraLoad
    pipeline: Pipeline | None
    log: Callable[[str], None] = lambda _: None

    def __call__(self, cameras: int) -> CameraTrial:
        load = self.load
        options = WatchOptions(detect_every=load.detect_every, stats_every=0)
        with WatchSession(self.detector, self.embedder, self.identifier, options, [], MaskClassifier.load(),
                          pipeline=self.pipeline) as session:
            for index in range(cameras):
                clip = self.clips[index % len(self.clips)]
                session.add(RealtimeFileSource(clip / "clip.mp4"), EventFactory(f"camera-{index}"), own_clock=True)
            started = time.monotonic()
            session.run()
        duration = time.monotonic() - started
        summary = session.summary()
        sources = summary.get("sources") or [summary]
        per_stage: dict[str, float] = dict.fromkeys(STAGE_SHARES, 0.0)
        for latency in [s["latency"] for s in sources] + ([summary["latency"]] if cameras > 1 else []):
            for stage in STAGE_SHARES:
                if stage in latency:
                    per_stage[stage] += latency[stage]["mean_ms"] * latency[stage]["count"] / 1000
        core_seconds = duration * (os.cpu_count() or 1)
        p95 = [s["latency"].get("capture_to_done", {}).get("p95_ms", 0.0) for s in sources]
        dropped = [s["source_stats"].get("frames_dropped", 0) for s in sources]
        event_latency = session.clock.summary().get("capture_to_event")  # the event bus's clock
        trial = CameraTrial(cameras, not any(dropped) and max(p95) <= load.max_p95_ms,
                            [s["frames"] for s in sources], dropped, p95,
                            None if event_latency is None else event_latency["p95_ms"],
                            {k: round(v / core_seconds, 4) for k, v in per_stage.items()}, round(duration, 2))
        self.log(f"{self.detector_name}, {load.resolution} {load.faces} faces, detect every {load.detect_every}: "
                 f"{cameras} cameras {'held' if trial.held else 'failed'} (dropped {sum(dropped)}, p95 "
                 f"{max(p95):.0f} ms)")
        return trial


def max_cameras(trial: Callable[[int], CameraTrial], limit: int = 64) -> list[CameraTrial]:
    """Trials at 1, 2, 4, ... cameras until one fails (or ``limit``), then bisecting between the last that
    held and the first that failed; every trial, in the order run."""
    trials: list[CameraTrial] = []
    held, failed, n = 0, None, 1
    while n <= limit:
        trials.append(trial(n))
        if not trials[-1].held:
            failed = n
            break
        held, n = n, 2 * n
    while failed is not None and failed - held > 1:
        middle = (held + failed) // 2
        trials.append(trial(middle))
        held, failed = (middle, failed) if trials[-1].held else (held, middle)
    return trials


def measure_cameras(model: str, embedder: FaceEmbedder, detectors: dict[str, FaceDetector], loads: list[CameraLoad],
                    cache_dir: Path, scratch: Path, pipeline: Pipeline | None, limit: int = 32,
                    log: Callable[[str], None] = lambda _: None) -> CamerasReport:
    """For each detector and load, the most cameras that hold (``max_cameras``)."""
    report = CamerasReport(model)
    for load in loads:
        clips = [camera_clip(cache_dir, load, i) for i in range(min(limit, 16))]
        gallery_path = scratch / f"gallery-{load.resolution}-{load.faces}.db"
        if not gallery_path.exists():
            for clip in clips:
                _enrol(clip, embedder, next(iter(detectors.values())), gallery_path)
        with Gallery.open(gallery_path) as gallery:
            identifier = Identifier.for_gallery(gallery, embedder, DEFAULT_POLICY, model)
        for name, detector in detectors.items():
            run = CamerasRun(name, load, loop_name(pipeline))
            run.trials = max_cameras(TrialRunner(clips, detector, name, embedder, identifier, load, pipeline, log),
                                     limit)
            report.runs.append(run)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The sizing table of a report's JSON (``CamerasReport.to_dict``): one row per detector and load."""
    lines = ["| detector | resolution | faces | detect every | cameras held | frames/s per camera, p95 "
             "capture→processed (at that number) | core-time: detect / decode / rest |",
             "|---|---|---:|---:|---:|---|---|"]
    for run in report["runs"]:
        load = run["load"]
        held = [t for t in run["trials"] if t["held"]]
        row = f"| {run['detector']} | {load['resolution']} | {load['faces']} | {load['detect_every']} | "
        if not held:
            lines.append(row + "0 | - | - |")
            continue
        best = max(held, key=lambda t: t["cameras"])
        share = best["stage_share"]
        rest = sum(v for k, v in share.items() if k not in ("detect", "decode"))
        per_camera = sum(best["frames"]) / len(best["frames"]) / best["seconds"]
        lines.append(row + f"{best['cameras']} | {per_camera:.1f}, {max(best['capture_to_done_p95_ms']):.0f} ms | "
                           f"{share['detect']:.0%} / {share['decode']:.0%} / {rest:.0%} |")
    loops = sorted({run["loop"] for run in report["runs"]})
    lines.append(f"\n{report['model']}; {', '.join(loops)} loop; {load['fps']:g} frames/s cameras, "
                 f"{load['seconds']:g}-s trials, p95 bar {load['max_p95_ms']:g} ms" if report["runs"] else "")
    return "\n".join(lines)
