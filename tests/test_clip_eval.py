"""Scoring ``mfr watch`` against clip truth, on hand-made truth and tracks whose right score is known."""

from __future__ import annotations

import numpy as np

from mfr.benchmarks.clip_eval import _Collector, score_clip
from mfr.data.clips import _visible_shares

ANNA = {"actor": 1, "identity": "anna", "enrolled": True}
STRANGER = {"actor": 2, "identity": "someone", "enrolled": False}


def truth_of(frames: list[list[tuple[dict, list[float], float]]]) -> dict:
    return {"actors": [ANNA, STRANGER],
            "truth": [[{**actor, "masked": False, "box": box, "visible": visible} for actor, box, visible in faces]
                      for faces in frames]}


def collector_of(frames: list[list[tuple[int, list[float], str | None]]]) -> _Collector:
    collector = _Collector()
    collector.frames = [[(t, np.array(box, float), name) for t, box, name in tracks] for tracks in frames]
    return collector


A_BOX, S_BOX = [0, 0, 100, 100], [300, 0, 400, 100]


def test_a_name_shown_on_a_visible_stranger_for_one_frame_counts_as_naming_them():
    truth = truth_of([[(ANNA, A_BOX, 1.0), (STRANGER, S_BOX, 1.0)]] * 3)
    tracks = [[(1, A_BOX, "anna"), (2, S_BOX, None)], [(1, A_BOX, "anna"), (2, S_BOX, "anna")],
              [(1, A_BOX, "anna"), (2, S_BOX, None)]]
    score = score_clip(collector_of(tracks), truth, 0.0)
    assert (score.enrolled_named_correctly, score.strangers_named) == (1, 1)
    assert (score.face_frames_named_correctly, score.face_frames_named_wrongly, score.visible_face_frames) == (3, 1, 6)


def test_a_hidden_face_is_nobodys_to_name_and_an_unnamed_person_is_not_named_correctly():
    # the stranger is mostly hidden (behind anna, say) while a track over it shows anna's name
    truth = truth_of([[(ANNA, A_BOX, 1.0), (STRANGER, S_BOX, 0.2)]] * 2)
    tracks = [[(1, A_BOX, None), (2, S_BOX, "anna")]] * 2
    score = score_clip(collector_of(tracks), truth, 0.0)
    assert (score.enrolled_named_correctly, score.strangers_named, score.face_frames_named_wrongly) == (0, 0, 0)
    assert score.visible_face_frames == 2


def test_visible_shares_follow_the_drawing_order_the_pillar_and_the_frame_edge():
    boxes = [[0, 0, 40, 40], [20, 0, 60, 40], [180, 0, 220, 40]]
    rects = [(0, 0, 40, 40), (20, 0, 60, 40), (180, 0, 200, 40)]  # the third is cut by the frame edge at 200
    shares = _visible_shares(boxes, rects, pillar=(40, 48), size=(200, 100))
    # the first is half covered by the second (drawn later); the second loses 8 of 40 px to the pillar;
    # half of the third lies outside the frame
    assert np.allclose(shares, [0.5, 0.8, 0.5], atol=0.05)
