"""How well ``mfr watch`` does on a generated clip with ground truth (``mfr.data.clips``).

A ``WatchSession`` (as ``mfr watch`` runs) goes through the clip (every frame, the clip's own clock);
each frame's confirmed tracks are matched to the true faces by IoU (at least ``min_iou``, optimal assignment). Then:

- **people**, judged on what is shown frame by frame (the name a track carries on screen), wherever a
  true face is at least ``min_visible`` visible (a face hidden behind another or the pillar is nobody's
  to name): each appearance in the clip (an actor) is *named correctly* when a track over it showed
  that person's name and none ever showed another name over it; a stranger's appearance is *named*
  when any track over it showed a name, even for one frame (a name carried over from a crossing counts).
  Tracks are counted too: each belongs to the actor it covered most.
- **tracking**: MOT metrics from ``motmetrics`` (IDF1, ID switches, fragmentations, MOTA), face boxes
  matched at IoU >= ``min_iou``.
- **cost**: the share of face-frames embedded, and the per-stage latency of the run.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mfr.recognition.events import EventFactory, EventSink
from mfr.recognition.session import WatchSession
from mfr.recognition.sources import VideoFileSource
from mfr.recognition.tracker import iou_matrix
from mfr.recognition.watch import Watcher


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
    face_frames_named_wrongly: int  # visible true faces shown with another person's name (or a stranger's)
    face_frames_named_correctly: int
    visible_face_frames: int
    idf1: float
    id_switches: int
    fragmentations: int
    mota: float
    embedded_share: float

    @property
    def enrolled_correct_rate(self) -> float:
        return self.enrolled_named_correctly / max(self.enrolled_appearances, 1)


class _Collector:
    """The events, and per frame every shown track: (track id, box, name shown)."""

    def __init__(self) -> None:
        self.frames: list[list[tuple[int, np.ndarray, str | None]]] = []
        self.events: list[dict[str, Any]] = []

    def write(self, events: list[dict[str, Any]]) -> None:
        self.events += events

    def close(self) -> None:
        pass

    def on_frame(self, frame: Any, watcher: Watcher) -> None:
        while len(self.frames) < frame.index:
            self.frames.append([])
        self.frames.append([(v.track_id, v.box, v.name) for v in watcher.views()])


def run_on_clip(clip: Path,
                open_session: Callable[[list[EventSink]], WatchSession]) -> tuple[_Collector, dict, Watcher]:
    """Run ``clip/clip.mp4`` through the session ``open_session`` makes with the given event sinks; the
    collected tracks and events, the truth, and the clip's watcher."""
    truth = json.loads((clip / "truth.json").read_text())
    collector = _Collector()
    with open_session([collector]) as session:
        watcher = session.add(VideoFileSource(clip / "clip.mp4"), EventFactory(str(clip)))
        session.run(collector.on_frame)
    return collector, truth, watcher


def score_clip(collector: _Collector, truth: dict, embedded_share: float, min_iou: float = 0.3,
               min_visible: float = 0.5) -> ClipScore:
    import motmetrics

    actors = {a["actor"]: a for a in truth["actors"]}
    covered: dict[int, Counter[int]] = defaultdict(Counter)  # track -> actor -> frames matched
    shown: dict[int, set[str]] = defaultdict(set)  # actor -> names shown over it while visible
    shown_by_track: dict[int, list[tuple[int, str]]] = defaultdict(list)  # track -> (actor, name) shown
    wrong_frames = right_frames = visible_frames = 0
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for index, true_faces in enumerate(truth["truth"]):
        tracks = collector.frames[index] if index < len(collector.frames) else []
        true_boxes = np.array([f["box"] for f in true_faces]).reshape(-1, 4)
        track_boxes = np.array([b for _, b, _ in tracks]).reshape(-1, 4)
        iou = iou_matrix(true_boxes, track_boxes)
        distances = np.where(iou >= min_iou, 1 - iou, np.nan)
        accumulator.update([f["actor"] for f in true_faces], [t for t, _, _ in tracks], distances)
        visible_frames += sum(f["visible"] >= min_visible for f in true_faces)
        if not iou.size:
            continue
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] < min_iou:
                continue
            face, (track, _, name) = true_faces[r], tracks[c]
            covered[track][face["actor"]] += 1
            if name is None or face["visible"] < min_visible:
                continue
            shown[face["actor"]].add(name)
            shown_by_track[track].append((face["actor"], name))
            right = face["enrolled"] and name == face["identity"]
            right_frames += right
            wrong_frames += not right
    summary = motmetrics.metrics.create().compute(accumulator, metrics=["idf1", "num_switches",
                                                                        "num_fragmentations", "mota"])
    owner = {track: counts.most_common(1)[0][0] for track, counts in covered.items()}
    enrolled = [a for a in actors.values() if a["enrolled"]]
    strangers = [a for a in actors.values() if not a["enrolled"]]
    correct = sum(1 for a in enrolled if shown[a["actor"]] == {a["identity"]})
    wrong = sum(1 for a in enrolled if shown[a["actor"]] - {a["identity"]})
    named_strangers = sum(1 for a in strangers if shown[a["actor"]])

    def track_right(track: int) -> bool:
        pairs = shown_by_track.get(track, [])
        return bool(pairs) and all(actors[a]["enrolled"] and n == actors[a]["identity"] for a, n in pairs) \
            and any(a == owner[track] for a, _ in pairs)

    enrolled_tracks = [t for t, a in owner.items() if actors[a]["enrolled"]]
    stranger_tracks = [t for t, a in owner.items() if not actors[a]["enrolled"]]
    return ClipScore(
        enrolled_appearances=len(enrolled), enrolled_named_correctly=correct, enrolled_named_wrongly=wrong,
        stranger_appearances=len(strangers), strangers_named=named_strangers, tracks=len(owner),
        enrolled_tracks_named_correctly=sum(1 for t in enrolled_tracks if track_right(t)),
        enrolled_tracks=len(enrolled_tracks),
        stranger_tracks_named=sum(1 for t in stranger_tracks if any(a == owner[t] for a, _ in shown_by_track[t])),
        stranger_tracks=len(stranger_tracks), face_frames_named_wrongly=wrong_frames,
        face_frames_named_correctly=right_frames, visible_face_frames=visible_frames,
        idf1=round(float(summary["idf1"].iloc[0]), 4),
        id_switches=int(summary["num_switches"].iloc[0]), fragmentations=int(summary["num_fragmentations"].iloc[0]),
        mota=round(float(summary["mota"].iloc[0]), 4), embedded_share=embedded_share)


def score_as_dict(score: ClipScore) -> dict[str, Any]:
    return {**asdict(score), "enrolled_correct_rate": round(score.enrolled_correct_rate, 4)}
