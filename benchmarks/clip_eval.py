"""How well ``mfr watch`` does on a generated clip with ground truth (``mfr.data.clips``).

The watch loop runs through the clip (every frame, the clip's own clock); each frame's confirmed tracks
are matched to the true faces by IoU (at least ``min_iou``, optimal assignment). Then:

- **people**: each appearance in the clip (an actor) is *named correctly* when a track that covered it
  was named as that person and no track that covered it was named as anyone else; a stranger's
  appearance is *named* when any track that covered it got a name. Tracks are also counted one by one.
- **tracking**: MOT metrics from ``motmetrics`` (IDF1, ID switches, fragmentations, MOTA), face boxes
  matched at IoU >= ``min_iou``.
- **cost**: the share of face-frames embedded, and the per-stage latency of the run.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mfr.recognition.sources import VideoFileSource
from mfr.recognition.tracker import iou_matrix
from mfr.recognition.watch import EventBus, Watcher, run_watch


@dataclass(frozen=True)
class ClipScore:
    enrolled_appearances: int
    enrolled_named_correctly: int
    enrolled_named_wrongly: int  # named as someone else at least once
    stranger_appearances: int
    strangers_named: int
    tracks: int
    enrolled_tracks_named_correctly: int
    enrolled_tracks: int
    stranger_tracks_named: int
    stranger_tracks: int
    idf1: float
    id_switches: int
    fragmentations: int
    mota: float
    embedded_share: float

    @property
    def enrolled_correct_rate(self) -> float:
        return self.enrolled_named_correctly / max(self.enrolled_appearances, 1)


class _Collector:
    """Every name each track was given, the events, and the per-frame track boxes."""

    def __init__(self) -> None:
        self.names: dict[int, set[str | None]] = defaultdict(set)
        self.frames: list[list[tuple[int, np.ndarray]]] = []
        self.events: list[dict[str, Any]] = []

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.events.append(event)
            if event["kind"] in ("identified", "identity_changed"):
                self.names[event["track"]].add(event["name"])

    def close(self) -> None:
        pass

    def on_frame(self, frame: Any, watcher: Watcher) -> None:
        while len(self.frames) < frame.index:
            self.frames.append([])
        self.frames.append([(v.track_id, v.box) for v in watcher.views()])


def run_on_clip(clip: Path, watcher: Watcher) -> tuple[_Collector, dict]:
    """Run the watcher over ``clip/clip.mp4``; the collected tracks and events, and the truth."""
    truth = json.loads((clip / "truth.json").read_text())
    source = VideoFileSource(clip / "clip.mp4")
    collector = _Collector()
    bus = EventBus([collector], watcher.clock)
    try:
        run_watch(source, watcher, bus, threading.Event(), collector.on_frame)
    finally:
        source.close()
    return collector, truth


def score_clip(collector: _Collector, truth: dict, embedded_share: float, min_iou: float = 0.3) -> ClipScore:
    import motmetrics

    actors = {a["actor"]: a for a in truth["actors"]}
    covered: dict[int, Counter[int]] = defaultdict(Counter)  # track -> actor -> frames matched
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for index, true_faces in enumerate(truth["truth"]):
        tracks = collector.frames[index] if index < len(collector.frames) else []
        true_boxes = np.array([f["box"] for f in true_faces]).reshape(-1, 4)
        track_boxes = np.array([b for _, b in tracks]).reshape(-1, 4)
        iou = iou_matrix(true_boxes, track_boxes)
        distances = np.where(iou >= min_iou, 1 - iou, np.nan)
        accumulator.update([f["actor"] for f in true_faces], [t for t, _ in tracks], distances)
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= min_iou:
                    covered[tracks[c][0]][true_faces[r]["actor"]] += 1
    summary = motmetrics.metrics.create().compute(accumulator, metrics=["idf1", "num_switches",
                                                                        "num_fragmentations", "mota"])
    owner = {track: counts.most_common(1)[0][0] for track, counts in covered.items()}
    names_by_actor: dict[int, set[str | None]] = defaultdict(set)
    for track, actor in owner.items():
        names_by_actor[actor] |= {n for n in collector.names.get(track, set())}
    enrolled = [a for a in actors.values() if a["enrolled"]]
    strangers = [a for a in actors.values() if not a["enrolled"]]
    correct = sum(1 for a in enrolled if a["identity"] in names_by_actor[a["actor"]]
                  and not (names_by_actor[a["actor"]] - {a["identity"], None}))
    wrong = sum(1 for a in enrolled if names_by_actor[a["actor"]] - {a["identity"], None})
    named_strangers = sum(1 for a in strangers if names_by_actor[a["actor"]] - {None})
    enrolled_tracks = [t for t, a in owner.items() if actors[a]["enrolled"]]
    stranger_tracks = [t for t, a in owner.items() if not actors[a]["enrolled"]]
    return ClipScore(
        enrolled_appearances=len(enrolled), enrolled_named_correctly=correct, enrolled_named_wrongly=wrong,
        stranger_appearances=len(strangers), strangers_named=named_strangers, tracks=len(owner),
        enrolled_tracks_named_correctly=sum(1 for t in enrolled_tracks
                                            if collector.names.get(t) == {actors[owner[t]]["identity"]}),
        enrolled_tracks=len(enrolled_tracks),
        stranger_tracks_named=sum(1 for t in stranger_tracks if collector.names.get(t, set()) - {None}),
        stranger_tracks=len(stranger_tracks), idf1=round(float(summary["idf1"].iloc[0]), 4),
        id_switches=int(summary["num_switches"].iloc[0]), fragmentations=int(summary["num_fragmentations"].iloc[0]),
        mota=round(float(summary["mota"].iloc[0]), 4), embedded_share=embedded_share)


def score_as_dict(score: ClipScore) -> dict[str, Any]:
    return {**asdict(score), "enrolled_correct_rate": round(score.enrolled_correct_rate, 4)}
