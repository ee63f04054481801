"""End-to-end speed of the watch loop (``mfr bench pipeline``) and its accuracy on a clip (``mfr bench watch``).

Speed: for each resolution and number of faces a synthetic clip is generated (``mfr.data.clips``: the same
generator the tests use), then each engine watches it from the file as fast as it can (decode included,
every frame, no display): frames/s and per-stage latency percentiles, the share of face-frames embedded,
and the mean number of faces per frame the clip really had (faces enter and leave, so it is below the
target at the clip's ends). Engines take turns on the same clip, ``repeats`` rounds of one watch each, and
each reports its median round with the spread of all rounds and its ratio to the first engine: a watch of a
few seconds moves by several per cent with what else the machine does, so engines measured one after
another in single runs differ by more than the engines do. Each run also records the detector settings and
the hardware fingerprint with the CPU's instruction set.

Accuracy: ``watch_accuracy`` enrols the clip's known people from their enrolment photos into a fresh
gallery and scores the run against the clip's truth (``clip_eval``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfr.benchmarks.clip_eval import ClipScore, run_on_clip, score_clip
from mfr.data.clips import ClipConfig, make_clip
from mfr.recognition.cohort import Cohort, cohort_of_model
from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.gallery import Gallery
from mfr.recognition.mask_state import MaskClassifier
from mfr.recognition.session import WatchSession
from mfr.recognition.track_identity import DEFAULT_LOOKS
from mfr.recognition.watch import Pipeline, Watcher, WatchOptions
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.machine import fingerprint

DEFAULT_POLICY = DecisionPolicy(looks=DEFAULT_LOOKS)  # frozen: the decision mfr watch makes by default

RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def speed_clip_config(resolution: str, faces: int, seconds: float, fps: float = 30.0) -> ClipConfig:
    """A clip of about ``seconds`` with about ``faces`` faces on screen, each person appearing once (a third
    of them enrolled); smaller faces when there are many, so they fit."""
    width, height = RESOLUTIONS[resolution]
    per_track = 4.0
    people = max(2, round(faces * seconds / per_track))
    known_mfr2 = 1 if people >= 4 else 0
    known_lfw = max(1, people // 3 - known_mfr2)
    face_height = (150, 220) if faces <= 5 else (100, 150) if faces <= 10 else (70, 110)
    return ClipConfig(width=width, height=height, fps=fps, known_lfw=known_lfw, known_mfr2=known_mfr2,
                      strangers=max(1, people - known_lfw - known_mfr2), appearances=1, concurrency=faces,
                      seconds_per_track=per_track, face_height=face_height, seed=1)


@dataclass
class PipelineRun:
    engine: str
    resolution: str
    faces_target: int
    faces_mean: float
    detect_every: int
    frames: int
    frames_per_second: float  # the median round's
    embedded_share: float
    latency: dict[str, dict[str, float]]  # the median round's
    rounds_frames_per_second: list[float] = field(default_factory=list)  # every round, in order
    vs_first: float = 1.0  # median frames/s over the first engine's, same clip and interval


@dataclass
class PipelineReport:
    runs: list[PipelineRun] = field(default_factory=list)
    detector: str = ""
    loop: str = "sequential"  # or "pipelined, N detection threads" (loop_name)
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "loop": self.loop, "machine": self.machine,
                "runs": [asdict(r) for r in self.runs]}


def loop_name(pipeline: Pipeline | None) -> str:
    return "sequential" if pipeline is None else f"pipelined, {pipeline.detect_workers} detection threads"


def _identifier(gallery_path: Path, embedder: FaceEmbedder, model: str, policy: DecisionPolicy = DEFAULT_POLICY,
                cohort: Cohort | None = None) -> Identifier:
    with Gallery.open(gallery_path) as gallery:
        return Identifier.for_gallery(gallery, embedder, policy, model, cohort=cohort)


def _enrol(clip: Path, embedder: FaceEmbedder, detector: FaceDetector, gallery_path: Path) -> None:
    from mfr.augment.masks import MaskGenerator
    from mfr.recognition.enroll import Enroller, photo_files

    with Gallery.open(gallery_path, create=True) as gallery:
        enroller = Enroller(gallery, embedder, detector, masks=MaskGenerator())
        people = sorted(p for p in (clip / "enrol").iterdir() if p.is_dir())
        for plan in enroller.plan_many([(p.name, photo_files([p])) for p in people]):
            enroller.commit(plan, force=True, skip_unusable=True)


def watch_once(clip: Path, embedder: FaceEmbedder, detector: FaceDetector, gallery_path: Path, model: str,
               detect_every: int, policy: DecisionPolicy = DEFAULT_POLICY,
               cohort: Cohort | None = None, pipeline: Pipeline | None = None) -> tuple[Any, dict, Watcher]:
    identifier = _identifier(gallery_path, embedder, model, policy, cohort)
    options = WatchOptions(detect_every=detect_every, stats_every=0)
    return run_on_clip(clip, lambda sinks: WatchSession(detector, embedder, identifier, options, sinks,
                                                         MaskClassifier.load(), pipeline=pipeline))


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose frames/s is the median (the lower middle one of an even count): a real round, so its
    per-stage latencies belong to the frames/s reported beside them."""
    ordered = sorted(rounds, key=lambda r: r["frames_per_second"])
    return ordered[(len(ordered) - 1) // 2]


def measure_pipeline(engines: dict[str, FaceEmbedder], detector: FaceDetector, detector_name: str,
                     resolutions: list[str], faces: list[int], detect_every: list[int], seconds: float,
                     log: Any = lambda _: None, repeats: int = 3, pipeline: Pipeline | None = None) -> PipelineReport:
    report = PipelineReport(detector=detector_name, loop=loop_name(pipeline))
    with tempfile.TemporaryDirectory(prefix="mfr-bench-pipeline-") as tmp:
        for resolution in resolutions:
            for count in faces:
                clip = Path(tmp) / f"{resolution}-{count}"
                make_clip(clip, speed_clip_config(resolution, count, seconds))
                galleries = {label: clip / f"gallery-{index}.db" for index, label in enumerate(engines)}
                for label, embedder in engines.items():
                    _enrol(clip, embedder, detector, galleries[label])
                for every in detect_every:
                    rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in engines}
                    for round_index in range(repeats):
                        for label, embedder in engines.items():
                            _, truth, watcher = watch_once(clip, embedder, detector, galleries[label], label, every,
                                                           pipeline=pipeline)
                            rounds[label].append(watcher.stats())
                            log(f"{label} {resolution} {count} faces, detect every {every}, round "
                                f"{round_index + 1}/{repeats}: {rounds[label][-1]['frames_per_second']} frames/s")
                    mean_faces = sum(len(f) for f in truth["truth"]) / max(len(truth["truth"]), 1)
                    first = median_round(next(iter(rounds.values())))["frames_per_second"]
                    for label, measured in rounds.items():
                        stats = median_round(measured)
                        report.runs.append(PipelineRun(
                            label, resolution, count, round(mean_faces, 2), every, stats["frames"],
                            stats["frames_per_second"], stats["embedded_share"], stats["latency"],
                            [r["frames_per_second"] for r in measured],
                            round(stats["frames_per_second"] / first, 3) if first else 0.0))
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The table of a report's JSON (``PipelineReport.to_dict``)."""
    stages = ("decode", "detect", "track", "align", "embed", "mask", "match")
    lines = ["| engine | resolution | faces (mean) | detect every | frames/s (rounds' range) | vs first | embedded | "
             + " | ".join(f"{s} p50/p95 ms" for s in stages) + " |",
             "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(stages)]
    for r in report["runs"]:
        latency, rounds = r["latency"], r["rounds_frames_per_second"]
        cells = [f"{latency[s]['p50_ms']:.1f}/{latency[s]['p95_ms']:.1f}" if s in latency else "-" for s in stages]
        spread = f" ({min(rounds):.1f}-{max(rounds):.1f})" if len(rounds) > 1 else ""
        lines.append(f"| {r['engine']} | {r['resolution']} | {r['faces_target']} ({r['faces_mean']}) | "
                     f"{r['detect_every']} | {r['frames_per_second']:.1f}{spread} | {r['vs_first']:.2f}x | "
                     f"{100 * r['embedded_share']:.1f} % | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def watch_accuracy(clip: Path, embedder: FaceEmbedder, detector: FaceDetector, model: str,
                   detect_every: int = 1, policy: DecisionPolicy = DEFAULT_POLICY,
                   pipeline: Pipeline | None = None) -> tuple[ClipScore, dict[str, Any]]:
    """Enrol the clip's known people into a fresh gallery, watch the clip, score it against its truth. With
    normalised scores the model's cohort is used less everyone the clip shows (enrolled or stranger)."""
    cohort = None
    if policy.score == "as-norm":
        cohort = cohort_of_model(embedder.manifest, embedder.source_sha256(), embedder.engine.source).without(
            clip_people(clip))
    with tempfile.TemporaryDirectory(prefix="mfr-bench-watch-") as tmp:
        gallery = Path(tmp) / "gallery.db"
        _enrol(clip, embedder, detector, gallery)
        collector, truth, watcher = watch_once(clip, embedder, detector, gallery, model, detect_every, policy, cohort,
                                               pipeline)
        stats = watcher.stats()
    return score_clip(collector, truth, stats["embedded_share"]), stats


def clip_people(clip: Path) -> set[str]:
    """Everyone a generated clip shows, enrolled or not (their identities in ``truth.json``)."""
    truth = json.loads((clip / "truth.json").read_text())
    return {actor["identity"] for actor in truth["actors"]}
