"""Faces across frames: a ByteTrack-style multi-object tracker (numpy + scipy's assignment).

Why ByteTrack's scheme (Zhang et al., 2022): a face that turns, blurs or is half covered for a few frames
drops to a low detection score; trackers that keep only confident detections lose it and start a new
track, which for recognition means a new identity decision and a new "someone arrived" event. ByteTrack
associates in two stages: confident detections with every live track first, then the low-score ones with
the tracks still unmatched, so a dimmed face keeps its track. Between detections (``--detect-every N``)
and while a face is missing, a constant-velocity Kalman filter on (centre x, centre y, aspect, height)
predicts where it is; a track missing for longer than ``lost_seconds`` ends.

The filter is written here (a dozen lines of numpy) rather than taken from a library: the maintained
Kalman libraries either pull in heavy dependencies or are unmaintained, and this one needs only the
predict and update of one fixed linear model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from mfr.runtime.detection import Face


@dataclass(frozen=True)
class TrackerConfig:
    high_score: float = 0.6  # detections at or above: first association stage, may start tracks
    low_score: float = 0.3  # detections between low and high: second stage only
    new_track_score: float = 0.7  # a detection starts a track only this confident
    match_iou: float = 0.2  # first stage: IoU needed to associate (after motion prediction)
    low_match_iou: float = 0.5  # second stage: stricter, low-score boxes are less certain
    confirm_hits: int = 2  # detections before a new track counts (one-frame false detections never do)
    lost_seconds: float = 1.5  # a confirmed track unseen this long ends


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on (cx, cy, aspect, height), noise scaled by the height, as in
    SORT/ByteTrack: faces far from the camera move fewer pixels than near ones."""

    _position_weight = 1.0 / 20
    _velocity_weight = 1.0 / 160

    def __init__(self, box: np.ndarray) -> None:
        measurement = _to_xyah(box)
        self.mean = np.concatenate([measurement, np.zeros(4)])
        h = measurement[3]
        std = np.array([2 * self._position_weight * h, 2 * self._position_weight * h, 1e-2,
                        2 * self._position_weight * h, 10 * self._velocity_weight * h,
                        10 * self._velocity_weight * h, 1e-5, 10 * self._velocity_weight * h])
        self.covariance = np.diag(std ** 2)
        self._motion = np.eye(8)
        self._motion[:4, 4:] = np.eye(4)

    def predict(self) -> None:
        h = self.mean[3]
        std = np.array([self._position_weight * h, self._position_weight * h, 1e-2, self._position_weight * h,
                        self._velocity_weight * h, self._velocity_weight * h, 1e-5, self._velocity_weight * h])
        self.mean = self._motion @ self.mean
        self.covariance = self._motion @ self.covariance @ self._motion.T + np.diag(std ** 2)

    def update(self, box: np.ndarray) -> None:
        h = self.mean[3]
        std = np.array([self._position_weight * h, self._position_weight * h, 1e-1, self._position_weight * h])
        projected = self.covariance[:4, :4] + np.diag(std ** 2)
        gain = np.linalg.solve(projected, self.covariance[:4, :]).T  # (8, 4)
        self.mean = self.mean + gain @ (_to_xyah(box) - self.mean[:4])
        self.covariance = self.covariance - gain @ projected @ gain.T

    @property
    def box(self) -> np.ndarray:
        cx, cy, aspect, h = self.mean[:4]
        w = aspect * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _to_xyah(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    h = max(y2 - y1, 1e-3)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / h, h])


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas (N, M) of the boxes in ``a`` (N, 4) and ``b`` (M, 4), and the areas of each."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter, area_a, area_b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box, for every pair: 1 when one box lies inside the other (a small
    face passing in front of a large one has a small IoU but is wholly inside it)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def associate(track_boxes: np.ndarray, det_boxes: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Optimal one-to-one pairs (track index, detection index) by IoU, each at least ``min_iou``."""
    iou = iou_matrix(track_boxes, det_boxes)
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


@dataclass
class Track:
    track_id: int
    filter: KalmanBoxFilter
    face: Face  # the last detection matched to it
    first_seen: float
    last_seen: float
    hits: int = 1
    confirmed: bool = False
    detected_now: bool = True  # matched to a detection in the latest update (landmarks are current)
    misses: int = 0  # detection frames in a row it has not been matched
    missed_before: int = 0  # detection frames it missed before its latest match (0: seen in the one before)

    @property
    def box(self) -> np.ndarray:
        return self.filter.box


@dataclass
class TrackUpdate:
    """What one frame changed: tracks that count now, and those that started or ended with it."""

    active: list[Track]
    started: list[Track] = field(default_factory=list)
    ended: list[Track] = field(default_factory=list)


class FaceTracker:
    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._tracks: list[Track] = []
        self._next_id = 1

    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def predict(self, now: float) -> TrackUpdate:
        """A frame without detection: every track moves by its velocity; none is matched."""
        for track in self._tracks:
            track.filter.predict()
            track.detected_now = False
        return self._finish(now, started=[])

    def update(self, faces: list[Face], now: float) -> TrackUpdate:
        """A frame with detections (``now`` in seconds of the source's clock)."""
        config = self.config
        for track in self._tracks:
            track.filter.predict()
            track.detected_now = False
        high = [f for f in faces if f.score >= config.high_score]
        low = [f for f in faces if config.low_score <= f.score < config.high_score]
        confirmed = [t for t in self._tracks if t.confirmed]
        tentative = [t for t in self._tracks if not t.confirmed]

        unmatched_high = self._match(confirmed, high, config.match_iou, now)
        still_open = [t for t in confirmed if not t.detected_now]
        self._match(still_open, low, config.low_match_iou, now)
        leftover = [high[i] for i in unmatched_high]
        unmatched_new = self._match(tentative, leftover, max(config.match_iou, 0.3), now)
        for track in tentative:  # a new track that missed its second detection was noise
            if not track.detected_now:
                self._tracks.remove(track)
        started = []
        for i in unmatched_new:
            face = leftover[i]
            if face.score >= config.new_track_score:
                track = Track(self._next_id, KalmanBoxFilter(face.box), face, now, now)
                self._next_id += 1
                self._tracks.append(track)
                if config.confirm_hits <= 1:
                    track.confirmed = True
                    started.append(track)
        for track in tentative:
            if track.detected_now and track.hits >= config.confirm_hits:
                track.confirmed = True
                started.append(track)
        for track in self._tracks:
            if not track.detected_now:
                track.misses += 1
        return self._finish(now, started)

    def _match(self, tracks: list[Track], faces: list[Face], min_iou: float, now: float) -> list[int]:
        """Associate, update the matched tracks; the indices of the faces left unmatched."""
        if not faces:
            return []
        pairs = associate(np.array([t.box for t in tracks]).reshape(-1, 4),
                          np.array([f.box for f in faces]).reshape(-1, 4), min_iou)
        for t, d in pairs:
            track, face = tracks[t], faces[d]
            track.filter.update(face.box)
            track.missed_before, track.misses = track.misses, 0
            track.face, track.last_seen, track.detected_now = face, now, True
            track.hits += 1
        matched = {d for _, d in pairs}
        return [i for i in range(len(faces)) if i not in matched]

    def _finish(self, now: float, started: list[Track]) -> TrackUpdate:
        ended = [t for t in self._tracks if t.confirmed and now - t.last_seen > self.config.lost_seconds]
        for track in ended:
            self._tracks.remove(track)
        return TrackUpdate([t for t in self._tracks if t.confirmed], started, ended)

    def end_all(self) -> list[Track]:
        """Every confirmed track, ended (the source ended or the process stops)."""
        ended = [t for t in self._tracks if t.confirmed]
        self._tracks = []
        return ended
