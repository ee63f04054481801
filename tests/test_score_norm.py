"""Cohort-normalised scores (AS-norm) and the stranger threshold calibrated on the gallery itself.

Expectations come from outside the code under test: the binomial bound from its closed form, the
normalised score from the formula worked by loops on a hand-made gallery, and the calibrated threshold
from fresh strangers the calibration never saw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfr.benchmarks.openset import check_cohort, ideal_dir
from mfr.errors import DataError, MfrError
from mfr.recognition.cohort import Cohort
from mfr.recognition.decision import Decision, DecisionPolicy, Identifier, search_for
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.score_norm import AsNormSearch, allowed_exceedances


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def cohort_of(faces: np.ndarray, masked: np.ndarray | None = None, people: np.ndarray | None = None) -> Cohort:
    count = len(faces)
    people = np.arange(count) if people is None else people
    return Cohort(faces, faces if masked is None else masked, people.astype(np.int64),
                  tuple(f"cohort_{i}" for i in range(int(people.max()) + 1)), "test cohort")


def test_allowed_exceedances_follow_the_binomial_closed_form():
    # 0 of n strangers shows a rate <= 1 % with 90 % confidence once 0.99 ** n <= 0.1: n >= 230
    assert 0.99 ** 229 > 0.1 >= 0.99 ** 230
    assert allowed_exceedances(229, 0.01) is None
    assert allowed_exceedances(230, 0.01) == 0
    # n = 400: P[X <= a] = sum_{i <= a} C(400, i) 0.01^i 0.99^(400 - i)
    cdf = np.cumsum([math.comb(400, i) * 0.01 ** i * 0.99 ** (400 - i) for i in range(10)])
    expected = max(a for a in range(10) if cdf[a] <= 0.1)
    assert expected == 1 and allowed_exceedances(400, 0.01) == expected


def test_as_norm_scores_are_the_formula_on_a_hand_made_gallery():
    rng = np.random.default_rng(3)
    templates = unit(rng.normal(size=(3, 8)))
    cohort_faces = unit(rng.normal(size=(6, 8)))
    cohort_masked = unit(rng.normal(size=(6, 8)))
    probes = unit(rng.normal(size=(2, 8)))
    top_k = 3
    search = AsNormSearch(TemplateMatrix(templates, np.array([0, 1, 2]), np.zeros(3, bool)),
                          cohort_of(cohort_faces, cohort_masked), top_k=top_k)

    def top_stats(vector: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
        scores = sorted((float(vector @ face) for face in faces), reverse=True)[:top_k]
        return float(np.mean(scores)), float(np.std(scores))

    found = search.top_people(probes, np.array([False, True]), k=3)
    for q, probe_masked in enumerate((False, True)):
        expected = {}
        for t in range(3):
            # the template against the cohort faces in the probe's mask state, the probe against bare faces
            mean_t, std_t = top_stats(templates[t], cohort_masked if probe_masked else cohort_faces)
            mean_p, std_p = top_stats(probes[q], cohort_faces)
            raw = float(probes[q] @ templates[t])
            expected[t] = 0.5 * ((raw - mean_t) / std_t + (raw - mean_p) / std_p)
        order = sorted(expected, key=expected.get, reverse=True)
        assert list(found.person_ids[q]) == order
        np.testing.assert_allclose(found.scores[q], [expected[t] for t in order], rtol=1e-4)


def test_the_calibrated_threshold_holds_the_stranger_rate_for_strangers_it_never_saw():
    rng = np.random.default_rng(0)
    dim, people = 32, 300
    centres = unit(rng.normal(size=(people, dim)))
    templates = unit(centres + 0.4 * rng.normal(size=centres.shape) / np.sqrt(dim))
    cohort = cohort_of(unit(rng.normal(size=(5000, dim))))
    matrix = TemplateMatrix(templates, np.arange(people), np.zeros(people, bool),
                            {i: f"p{i}" for i in range(people)})
    identifier = Identifier(search_for(matrix, DecisionPolicy(score="as-norm"), cohort=cohort), matrix.names, None,
                            DecisionPolicy(score="as-norm"))
    strangers = unit(rng.normal(size=(20000, dim)))
    named = np.mean([d.name is not None for d in identifier.decide(strangers, np.zeros(len(strangers), bool))])
    assert 0.004 <= named <= 0.012  # target 1 %, held with 90 % confidence over 5,000 cohort faces
    known = unit(centres + 0.4 * rng.normal(size=centres.shape) / np.sqrt(dim))
    decisions = identifier.decide(known, np.zeros(people, bool))
    assert np.mean([d.name == f"p{i}" for i, d in enumerate(decisions)]) >= 0.9


def test_as_norm_needs_a_cohort_large_enough_for_the_target():
    rng = np.random.default_rng(1)
    matrix = TemplateMatrix(unit(rng.normal(size=(4, 16))), np.arange(4), np.zeros(4, bool))
    policy = DecisionPolicy(score="as-norm")
    with pytest.raises(MfrError, match="need a cohort"):
        search_for(matrix, policy)
    small = search_for(matrix, policy, cohort=cohort_of(unit(rng.normal(size=(100, 16)))))
    with pytest.raises(MfrError, match=r"100 faces: too few .* \(about 230 needed\)"):
        Identifier(small, {}, None, policy)
    with pytest.raises(MfrError, match="fixed --threshold"):
        DecisionPolicy(score="as-norm", threshold=0.5)


def test_a_cohort_holding_a_judged_person_is_refused_whatever_the_spelling():
    faces = unit(np.eye(4, 8, dtype=np.float32) + 0.1)
    cohort = Cohort(faces, faces, np.array([0, 0, 1, 2]), ("Ben_Affleck", "Jane_Doe", "John_Roe"), "LFW sample")
    with pytest.raises(DataError, match=r"1 people of the cohort \(LFW sample\) .* \(Ben_Affleck\)"):
        check_cohort(cohort, {"BenAffleck", "NancyPelosi"}, "MFR2")
    check_cohort(cohort, {"NancyPelosi"}, "MFR2")  # nobody shared: accepted


def test_the_ideal_threshold_names_the_target_share_of_the_judged_strangers():
    def decision(score: float, candidate: int) -> Decision:
        return Decision(None, None, score, 1.0, False, 0.0, None, "below threshold", candidate)

    # 10 strangers: at 10 % one may be named, so the threshold lies just above the second highest, 0.5
    strangers = [decision(s, 0) for s in (0.9, 0.5, 0.45, 0.4, 0.3, 0.2, 0.2, 0.1, 0.0, -0.1)]
    # four known probes: right and above 0.5, right at 0.5 (not above), wrong person, right and above
    known = [decision(0.8, 1), decision(0.5, 1), decision(0.95, 2), decision(0.6, 2)]
    truth = [None] * 10 + ["anne", "anne", "anne", "bob"]
    assert ideal_dir(strangers + known, {1: "anne", 2: "bob"}, truth, 0.1) == 0.5


def test_a_negative_closer_than_the_person_blocks_the_name_with_normalised_scores_too():
    rng = np.random.default_rng(2)
    dim, people = 32, 50
    templates = unit(rng.normal(size=(people, dim)))
    matrix = TemplateMatrix(templates, np.arange(people), np.zeros(people, bool), {i: f"p{i}" for i in range(people)})
    policy = DecisionPolicy(score="as-norm")
    probe = unit(templates[7:8] + 0.15 * rng.normal(size=(1, dim)) / np.sqrt(dim))

    def decide(negative: np.ndarray) -> Decision:
        identifier = Identifier(search_for(matrix, policy, cohort=cohort_of(unit(rng.normal(size=(1000, dim))))),
                                matrix.names, None, policy, (negative, np.array([7])))
        return identifier.decide(probe, np.array([False]))[0]

    # the raw cosine of the probe with the negative (the probe itself: 1.0) beats its template's; a negative
    # far from the probe does not, whatever the normalised score's scale
    assert decide(probe).reason == "negative match"
    far_negative = unit(-templates[7:8])
    assert decide(far_negative).name == "p7"
