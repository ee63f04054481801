"""The face tracker on hand-made detections whose right answer is known by construction."""

from __future__ import annotations

import numpy as np

from mfr.recognition.tracker import FaceTracker, TrackerConfig, iou_matrix, overlap_matrix
from mfr.runtime.detection import Face


def face(x: float, y: float, size: float = 100.0, score: float = 0.9) -> Face:
    return Face(np.array([x, y, x + size, y + size]), score, np.zeros((5, 2)))


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert np.allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_a_moving_face_keeps_one_track_and_a_one_frame_detection_never_counts():
    tracker = FaceTracker(TrackerConfig())
    started = []
    for i in range(20):
        faces = [face(100 + 8 * i, 200)]
        if i == 5:
            faces.append(face(900, 100))  # a false detection in one frame only
        update = tracker.update(faces, i / 10)
        started += [t.track_id for t in update.started]
    assert len(started) == 1 and len(update.active) == 1


def test_a_dimmed_face_stays_on_its_track_through_the_low_score_stage():
    tracker = FaceTracker(TrackerConfig(high_score=0.6, low_score=0.3))
    for i in range(5):
        tracker.update([face(100 + 5 * i, 100)], i / 10)
    track_id = tracker.tracks()[0].track_id
    for i in range(5, 10):  # half turned away: score 0.4, below the high threshold
        update = tracker.update([face(100 + 5 * i, 100, score=0.4)], i / 10)
        assert [t.track_id for t in update.active] == [track_id] and update.active[0].detected_now
    assert not update.started and not update.ended


def test_motion_prediction_bridges_frames_without_detection_and_lost_tracks_end():
    tracker = FaceTracker(TrackerConfig(lost_seconds=1.0))
    for i in range(10):
        tracker.update([face(100 + 10 * i, 100)], i / 10)
    track_id = tracker.tracks()[0].track_id
    for i in range(10, 14):  # hidden behind something for 4 frames while it keeps moving
        update = tracker.update([], i / 10)
        assert not update.ended
    update = tracker.update([face(100 + 10 * 14, 100)], 1.4)
    assert [t.track_id for t in update.active] == [track_id]
    assert abs(update.active[0].box[0] - 240) < 15  # the filter learned the velocity
    for i in range(15, 27):
        update = tracker.update([], i / 10)
        if update.ended:
            break
    assert [t.track_id for t in update.ended] == [track_id] and 2.4 < i / 10 <= 2.6


def test_two_faces_passing_each_other_vertically_apart_keep_their_ids():
    tracker = FaceTracker(TrackerConfig())
    ids = {}
    for i in range(30):
        left_to_right, right_to_left = face(100 + 20 * i, 100), face(700 - 20 * i, 300)
        update = tracker.update([left_to_right, right_to_left], i / 10)
        for track in update.active:
            ids.setdefault(track.track_id, set()).add(round(float(track.face.box[1])))
    assert len(ids) == 2 and sorted(map(sorted, ids.values())) == [[100], [300]]


def test_overlap_is_measured_against_the_smaller_box():
    big = np.array([[0, 0, 100, 100]], float)
    small = np.array([[10, 10, 30, 30], [90, 0, 110, 20], [200, 200, 210, 210]], float)
    # the small box inside the big one overlaps wholly (its IoU is only 0.04); one half outside: 0.5
    assert np.allclose(overlap_matrix(big, small), [[1.0, 0.5, 0.0]])


def test_a_track_counts_the_detections_it_missed_before_it_was_found_again():
    tracker = FaceTracker(TrackerConfig())
    for i in range(4):
        tracker.update([face(100, 100)], i / 10)
    track = tracker.tracks()[0]
    assert track.missed_before == 0
    for i in range(4, 7):  # three detection frames without it
        tracker.update([], i / 10)
    assert track.misses == 3
    tracker.update([face(100, 100)], 0.7)
    assert track.detected_now and track.missed_before == 3 and track.misses == 0
