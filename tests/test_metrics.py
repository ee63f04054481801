"""Verification metrics against cases small enough to compute by hand."""

import numpy as np
import pytest

from mfr.metrics import (
    accuracy,
    best_threshold,
    bootstrap_interval,
    eer,
    far_resolvable,
    fnmr_at_fmr,
    kfold_accuracy,
    kfold_thresholds,
    roc_curve,
    tar_at_far,
)

# genuine: 0.9 0.8 0.7 0.4 ; impostor: 0.6 0.3 0.2 0.1
SCORES = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1])
SAME = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)


def test_roc_points_by_hand():
    roc = roc_curve(SCORES, SAME)
    # thresholds: inf, .9 .8 .7 .6 .4 .3 .2 .1
    np.testing.assert_allclose(roc.tar, [0, .25, .5, .75, .75, 1, 1, 1, 1])
    np.testing.assert_allclose(roc.far, [0, 0, 0, 0, .25, .25, .5, .75, 1])


def test_best_threshold_and_accuracy_by_hand():
    # accepting >= 0.7 gets 7 of 8 right (0.4 genuine rejected), as does >= 0.4 (0.6 impostor accepted)
    t = best_threshold(SCORES, SAME)
    assert accuracy(SCORES, SAME, t) == 7 / 8
    assert accuracy(SCORES, SAME, 0.05) == 0.5
    perfect = np.array([0.9, 0.8, 0.2, 0.1])
    labels = np.array([1, 1, 0, 0], bool)
    assert 0.2 < best_threshold(perfect, labels) <= 0.8
    assert accuracy(perfect, labels, best_threshold(perfect, labels)) == 1.0


def test_eer_by_hand():
    # FAR=FNMR=0.25 between thresholds 0.6 and 0.4 (one impostor above, one genuine below)
    assert eer(SCORES, SAME) == pytest.approx(0.25)
    assert eer(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0], bool)) == 0.0


def test_eer_interpolates_between_operating_points():
    # genuine .9 .5 ; impostor .6 .1 : steps (far, fnmr): (0, .5) -> (.5, .5) at .6 ... crossing at 0.5
    scores = np.array([0.9, 0.5, 0.6, 0.1])
    same = np.array([1, 1, 0, 0], bool)
    assert eer(scores, same) == pytest.approx(0.5)


def test_tar_and_fnmr_at_far_by_hand():
    assert tar_at_far(SCORES, SAME, 0.0) == 0.75
    assert tar_at_far(SCORES, SAME, 0.25) == 1.0
    assert fnmr_at_fmr(SCORES, SAME, 0.0) == 0.25


def test_a_far_below_one_impostor_pair_is_not_resolvable():
    # 4 impostor pairs: the smallest non-zero FAR they can show is 0.25; 0.1 allows no false accept,
    # and its "TAR" (0.75) would only be TAR at zero false accepts
    assert tar_at_far(SCORES, SAME, 0.1) is None and fnmr_at_fmr(SCORES, SAME, 0.1) is None
    assert far_resolvable(1e-3, 1000) and not far_resolvable(1e-3, 424) and far_resolvable(1e-2, 424)
    assert far_resolvable(0.0, 1)  # exactly zero false accepts is a measurable operating point


def test_kfold_picks_thresholds_on_the_other_folds():
    # fold 1 holds a genuine pair scoring below an impostor: whatever threshold the other folds pick,
    # it gets one of the two wrong
    scores = np.array([0.9, 0.2, 0.4, 0.45, 0.8, 0.1, 0.85, 0.15])
    same = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    folds = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    result = kfold_accuracy(scores, same, folds)
    assert result.fold_accuracies == [1.0, 0.5, 1.0, 1.0]
    # fold 1's threshold comes from folds 0, 2, 3: best accept-from 0.8, halfway down to 0.2
    assert result.thresholds[1] == pytest.approx(0.5)
    # fold 0's from folds 1-3: accepting from 0.4 is first among the best, halfway down to 0.15
    assert result.thresholds[0] == pytest.approx(0.275)
    assert result.accuracy == pytest.approx(0.875)
    assert result.accuracy_std == pytest.approx(np.std([1, 0.5, 1, 1]))
    # each pair is judged at its fold's threshold: the one pair wrong is fold 1's genuine pair at 0.4 (< 0.5)
    applied = kfold_thresholds(scores, same, folds)
    assert applied[:4] == pytest.approx([0.275, 0.275, 0.5, 0.5])
    assert list(np.flatnonzero((scores >= applied) != same)) == [2]


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.6, 0.15, 400), rng.normal(0.1, 0.15, 400)])
    same = np.arange(800) < 400
    point = eer(scores, same)
    first = bootstrap_interval(eer, scores, same, resamples=200, seed=1)
    again = bootstrap_interval(eer, scores, same, resamples=200, seed=1)
    assert first == again
    assert first.low < point < first.high
    assert first.high - first.low < 0.1


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="both"):
        eer(np.array([0.1, 0.2]), np.array([True, True]))
