"""Face-verification metrics on pair scores (numpy only).

Conventions: a higher score means "same person"; a pair is accepted when ``score >= threshold``.
FAR/FMR is the share of different-person pairs accepted, TAR the share of same-person pairs accepted,
FNMR = 1 - TAR. Each function is tested against hand-computed cases in tests/test_metrics.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    thresholds: np.ndarray  # descending; operating point i accepts scores >= thresholds[i]
    far: np.ndarray
    tar: np.ndarray


def _check(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and equally long, got {scores.shape} and {same.shape}")
    if same.all() or not same.any():
        raise ValueError("need both same-person and different-person pairs")
    return scores, same


def roc_curve(scores: np.ndarray, same: np.ndarray) -> Roc:
    """All distinct operating points, from accepting nothing (+inf) to accepting everything."""
    scores, same = _check(scores, same)
    thresholds = np.unique(scores)[::-1]
    genuine = np.sort(scores[same])
    impostor = np.sort(scores[~same])
    # number of scores >= t, via searchsorted on ascending arrays
    tar = (len(genuine) - np.searchsorted(genuine, thresholds, side="left")) / len(genuine)
    far = (len(impostor) - np.searchsorted(impostor, thresholds, side="left")) / len(impostor)
    return Roc(np.concatenate([[np.inf], thresholds]), np.concatenate([[0.0], far]), np.concatenate([[0.0], tar]))


def roc_points(scores: np.ndarray, same: np.ndarray, points: int = 120) -> dict[str, list[float]]:
    """The ROC at about ``points`` operating points spread evenly in log FAR (from the smallest FAR above
    zero to 1), for plotting ROC and DET curves from a report without its scores."""
    roc = roc_curve(scores, same)
    positive = np.flatnonzero(roc.far > 0)
    grid = np.logspace(np.log10(roc.far[positive[0]]), 0.0, points)
    chosen = np.unique(np.concatenate([[0, positive[0]], np.searchsorted(roc.far, grid, side="right") - 1,
                                       [len(roc.far) - 1]]))
    return {"far": [float(v) for v in roc.far[chosen]], "tar": [float(v) for v in roc.tar[chosen]]}


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy; ties go to the midpoint of the widest best interval."""
    scores, same = _check(scores, same)
    candidates = np.unique(scores)
    # accept >= t: correct = genuine >= t plus impostors < t
    genuine = np.sort(scores[same])
    impostor = np.sort(scores[~same])
    correct = (len(genuine) - np.searchsorted(genuine, candidates, side="left")) + np.searchsorted(
        impostor, candidates, side="left")
    best = int(np.argmax(correct))
    below = candidates[best - 1] if best > 0 else candidates[best] - 1e-6
    return float((below + candidates[best]) / 2)  # halfway to the next lower score


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    scores, same = _check(scores, same)
    return float(((scores >= threshold) == same).mean())


@dataclass(frozen=True)
class KFoldResult:
    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    thresholds: list[float]


def kfold_thresholds(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The threshold each pair is judged at under the LFW protocol: the best one on the other folds."""
    scores, same = _check(scores, same)
    folds = np.asarray(folds)
    applied = np.empty(len(scores))
    for fold in np.unique(folds):
        test = folds == fold
        applied[test] = best_threshold(scores[~test], same[~test])
    return applied


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """LFW protocol: for each fold, pick the threshold on the other folds and apply it to this one."""
    scores, same = _check(scores, same)
    folds = np.asarray(folds)
    applied = kfold_thresholds(scores, same, folds)
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        thresholds.append(float(applied[test][0]))
        accs.append(float(((scores[test] >= applied[test]) == same[test]).mean()))
    return KFoldResult(float(np.mean(accs)), float(np.std(accs)), accs, thresholds)


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where FAR = FNMR, linearly interpolated between neighbouring operating points."""
    roc = roc_curve(scores, same)
    fnmr = 1 - roc.tar
    diff = roc.far - fnmr  # rises from -1 (accept nothing) to +1 (accept everything)
    crossing = int(np.argmax(diff >= 0))
    if diff[crossing] == 0 or crossing == 0:
        return float(roc.far[crossing])
    lo, hi = crossing - 1, crossing
    t = -diff[lo] / (diff[hi] - diff[lo])
    return float(roc.far[lo] + t * (roc.far[hi] - roc.far[lo]))


def far_resolvable(far_target: float, impostors: int) -> bool:
    """Whether ``impostors`` different-person pairs can measure a FAR of ``far_target``.

    The smallest non-zero FAR they can show is 1/impostors. A target between 0 and that step allows
    no false accept at all, so "TAR at FAR 1e-3" on 424 impostor pairs (MFR2) is really TAR at zero
    false accepts: such a figure is not reported as if it were resolved."""
    return far_target == 0 or far_target * impostors >= 1


def tar_at_far(scores: np.ndarray, same: np.ndarray, far_target: float) -> float | None:
    """Highest TAR at an operating point whose FAR does not exceed ``far_target``; None when the
    impostor pairs are too few to resolve that FAR (``far_resolvable``)."""
    roc = roc_curve(scores, same)
    if not far_resolvable(far_target, int((~np.asarray(same, bool)).sum())):
        return None
    allowed = roc.far <= far_target
    return float(roc.tar[allowed].max())


def fnmr_at_fmr(scores: np.ndarray, same: np.ndarray, fmr_target: float) -> float | None:
    tar = tar_at_far(scores, same, fmr_target)
    return None if tar is None else 1.0 - tar


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    resamples: int


def bootstrap_interval(metric: Callable[[np.ndarray, np.ndarray], float], scores: np.ndarray, same: np.ndarray,
                       resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap over pairs (stratified: genuine and impostor pairs resampled separately,
    so every resample keeps both classes)."""
    scores, same = _check(scores, same)
    rng = np.random.default_rng(seed)
    genuine, impostor = scores[same], scores[~same]
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    values = np.empty(resamples)
    for i in range(resamples):
        sample = np.concatenate([rng.choice(genuine, len(genuine)), rng.choice(impostor, len(impostor))])
        values[i] = metric(sample, labels)
    alpha = (1 - level) / 2
    return Interval(float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)), level, resamples)
