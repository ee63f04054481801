"""A track's identity over time, decided by the gallery's real rule over a small hand-made gallery.

Two enrolled people with orthogonal templates and a fixed threshold: an observation equal to a
person's template is that person beyond doubt, an orthogonal one is a stranger. The tests follow what a
track shows (``shown_name``) as its observations change, the way a crossing or a swap changes them.
"""

from __future__ import annotations

import numpy as np

from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch
from mfr.recognition.track_identity import DecisionConfig, EmbedSchedule, TrackIdentity

DIM = 8
ANNA, BORIS, STRANGER = np.eye(DIM, dtype=np.float32)[:3]


def identifier(looks: int = 1) -> Identifier:
    templates = TemplateMatrix(np.stack([ANNA, BORIS]), np.array([1, 2]), np.zeros(2, bool),
                               {1: "anna", 2: "boris"})
    return Identifier(ExactSearch(templates), templates.names, None, DecisionPolicy(threshold=0.5, looks=looks))


def observe(identity: TrackIdentity, rule: Identifier, embedding: np.ndarray, t: float) -> str | None:
    identity.observe(embedding, 1.0, 0.0, t)
    return identity.decide(rule)


def named(embedding: np.ndarray, rule: Identifier, looks: int = 3) -> TrackIdentity:
    identity = TrackIdentity(1, DecisionConfig(min_observations=3, switch_after=2))
    kinds = [observe(identity, rule, embedding, 0.1 * i) for i in range(looks)]
    assert kinds == [None] * (looks - 1) + ["identified"]
    return identity


def test_a_name_needs_the_minimum_observations_and_then_sticks_through_one_odd_look():
    rule = identifier()
    identity = named(ANNA, rule)
    assert identity.shown_name == "anna" and identity.settled
    # one stranger-like look in a window of anna's: the aggregate is still anna
    assert observe(identity, rule, STRANGER, 0.5) is None and identity.shown_name == "anna"


def test_a_contested_track_withholds_its_name_and_does_not_embed():
    rule = identifier()
    identity = named(ANNA, rule)
    identity.contest()
    assert identity.shown_name is None and not identity.settled
    assert not identity.wants_embedding(quality=10.0, now=5.0, schedule=EmbedSchedule())
    assert identity.decide(rule) is None  # no decision from evidence gathered before the overlap


def test_after_a_swap_fresh_evidence_renames_the_track_at_once():
    rule = identifier()
    identity = named(ANNA, rule)
    identity.contest()
    identity.release()  # the overlap is over; the track may now be on boris
    assert identity.verifying and identity.shown_name is None
    assert identity.wants_embedding(quality=0.1, now=1.0, schedule=EmbedSchedule())  # every look counts
    kinds = [observe(identity, rule, BORIS, 1.0 + 0.1 * i) for i in range(3)]
    # anna's old observations were dropped: three of boris decide, without waiting for a second decision
    assert kinds == [None, None, "identity_changed"]
    assert identity.shown_name == "boris" and identity.settled


def test_after_a_swap_onto_a_stranger_the_name_is_never_shown_again():
    rule = identifier()
    identity = named(ANNA, rule)
    identity.contest()
    identity.release()
    shown = []
    for i in range(3):
        observe(identity, rule, STRANGER, 1.0 + 0.1 * i)
        shown.append(identity.shown_name)
    assert shown == [None, None, None] and identity.name is None and identity.settled


def test_a_track_still_on_its_person_after_a_crossing_keeps_its_name_without_an_event():
    rule = identifier()
    identity = named(ANNA, rule)
    identity.contest()
    identity.release()
    kinds = [observe(identity, rule, ANNA, 1.0 + 0.1 * i) for i in range(3)]
    assert kinds == [None, None, None] and identity.shown_name == "anna"


def test_without_a_contest_a_change_needs_two_decisions_in_a_row():
    rule = identifier()
    identity = named(ANNA, rule, looks=3)
    kinds = [observe(identity, rule, BORIS, 1.0 + 0.1 * i) for i in range(8)]
    # the window (8) must first tip towards boris, then two decisions in a row must agree
    first = kinds.index("identity_changed")
    assert kinds.count("identity_changed") == 1 and first >= 2 and identity.name == "boris"


def test_a_track_holding_no_name_decides_only_at_its_looks_and_then_stays_unknown():
    """Three looks at 3, 6 and 12 embeddings: a stranger-like track is unknown at the first; anna's face at
    the second look names her at once; after the last look nothing names the track until it is re-verified."""
    rule = identifier(looks=3)
    identity = TrackIdentity(1, DecisionConfig(min_observations=3, window=8, switch_after=2))
    kinds = [observe(identity, rule, STRANGER, 0.1 * i) for i in range(3)]
    assert kinds == [None, None, "identified"] and identity.decided and identity.shown_name is None
    # embeddings 4 and 5 are anna's, but no look falls there; at 6 the window holds 3 anna and 3 stranger
    # looks (score 0.71 >= 0.5): named at once, one look being one test
    assert [observe(identity, rule, ANNA, 0.4 + 0.1 * i) for i in range(3)] == [None, None, "identity_changed"]
    assert identity.shown_name == "anna"

    spent = TrackIdentity(2, DecisionConfig(min_observations=3, window=8))
    assert [observe(spent, rule, STRANGER, 0.1 * i) for i in range(12)].count("identified") == 1
    assert spent.shown_name is None  # looks at 3, 6 and 12 all said unknown
    assert all(observe(spent, rule, ANNA, 1.3 + 0.1 * i) is None for i in range(20))  # no look left
    assert spent.shown_name is None
    spent.contest()
    spent.release()  # re-verified: its looks start again from fresh evidence
    assert [observe(spent, rule, ANNA, 4.0 + 0.1 * i) for i in range(3)] == [None, None, "identity_changed"]
    assert spent.shown_name == "anna"


def test_each_look_holds_the_target_shared_among_the_looks():
    from mfr.manifest import ThresholdRecord, ThresholdTable

    table = ThresholdTable("unmasked", [1e-2, 1e-3, 1e-4, 1e-5], [0.3, 0.4, 0.5, 0.6], 10**6)
    record = ThresholdRecord("x", "test", True, "now", table, table, table)
    templates = TemplateMatrix(np.stack([ANNA, BORIS]), np.array([1, 2]), np.zeros(2, bool))
    single = Identifier(ExactSearch(templates), {}, record, DecisionPolicy(target_far=0.002))
    shared = Identifier(ExactSearch(templates), {}, record, DecisionPolicy(target_far=0.002, looks=2))
    # 2 templates: one look at 1e-3 per comparison, two looks at 5e-4 each (between the listed 1e-3 and 1e-4)
    assert single.threshold(False, 2)[:2] == (0.4, 1e-3)
    assert shared.threshold(False, 2)[1] == 5e-4 and 0.4 < shared.threshold(False, 2)[0] < 0.5


def test_a_look_weighs_every_embedding_since_the_track_began_the_window_only_the_last():
    identity = TrackIdentity(1, DecisionConfig(window=8))
    for i, embedding in enumerate([ANNA] * 5 + [BORIS] * 5):
        identity.observe(embedding, 1.0 if i < 5 else 3.0, 0.0, 0.1 * i)
    window, _ = identity.aggregate()  # the last 8: 3 of anna at weight 1, 5 of boris at weight 3
    everything, _ = identity.aggregate(all_evidence=True)  # all 10: 5 at 1, 5 at 3
    np.testing.assert_allclose(window, (3 * ANNA + 15 * BORIS) / np.hypot(3, 15), rtol=1e-6)
    np.testing.assert_allclose(everything, (5 * ANNA + 15 * BORIS) / np.hypot(5, 15), rtol=1e-6)
