"""Accuracy-aware fallback: keep the most sensitive layers in floating point until the INT8 model is
accurate enough, and refuse degenerate INT8 models loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mfr.errors import MfrError
from mfr.manifest import FallbackStep
from mfr.runtime.similarity import l2_normalize

MAX_IMPOSTOR_SIMILARITY = 0.9


class DegenerateModelError(MfrError):
    pass


@dataclass
class FallbackResult:
    excluded: list[str]
    met: bool
    steps: list[FallbackStep] = field(default_factory=list)


def greedy_fallback(order: list[str], budget: int, closeness: Callable[[list[str]], float],
                    good_enough: Callable[[list[str], float], tuple[bool, float | None]],
                    max_drop: float | None = None) -> FallbackResult:
    """Walk the layers in sensitivity ``order``; keep a layer in float only if that raises ``closeness``
    (held-out cosine to FP32), or, failing that, together with the next layer in the order if the pair
    does (layers interact: measured on MobileFaceNet, its two most sensitive layers only help together).
    After each accepted change (and first with none) ask ``good_enough`` for (target met?, accuracy drop
    or None); stop when it says yes or ``budget`` layers are float. ``met`` tells whether the target was
    reached; if not, the step returned is the one with the highest cosine among those whose drop is within
    ``max_drop`` (the accuracy bar held, the cosine target not), else the one with the lowest drop, else (no
    drop measured) the highest cosine. The cosine decides among steps that hold the bar because it moves
    smoothly with every layer, where a drop on 3,000 pairs moves in steps of one pair (0.033 pp) and may
    favour a step whose embeddings are much further from FP32 (measured on face-reid-0095: a step at
    -0.067 pp and cosine 0.985 beside steps at 0.000 pp and 0.995)."""
    excluded: list[str] = []
    best = closeness(excluded)
    ok, drop = good_enough(excluded, best)
    steps = [FallbackStep([], best, drop)]
    for index, node in enumerate(order):
        if ok or len(excluded) >= budget:
            break
        if node in excluded:
            continue
        tries = [[node]] + ([[node, order[index + 1]]] if index + 1 < len(order) else [])
        for extra in tries:
            if len(excluded) + len(extra) > budget or any(n in excluded for n in extra[1:]):
                continue
            candidate = closeness(excluded + extra)
            if candidate > best + 1e-5:
                excluded, best = excluded + extra, candidate
                ok, drop = good_enough(excluded, best)
                steps.append(FallbackStep(list(excluded), best, drop))
                break
    if not ok:
        def score(step: FallbackStep) -> tuple[bool, float, int]:
            drop = step.lfw_drop_pp
            if drop is None or (max_drop is not None and drop <= max_drop):
                return True, step.heldout_cosine, -len(step.fp_layers)
            return False, -drop, -len(step.fp_layers)

        excluded = list(max(steps, key=score).fp_layers)
    return FallbackResult(excluded, ok, steps)


def check_not_degenerate(embeddings: np.ndarray, source: str) -> None:
    """Fail on NaN/inf, or embeddings so alike that different faces all look the same person."""
    if not np.isfinite(embeddings).all():
        raise DegenerateModelError(f"{source}: INT8 embeddings contain NaN or inf; calibration failed")
    normed = l2_normalize(embeddings)
    similarity = normed @ normed.T
    off_diagonal = similarity[~np.eye(len(normed), dtype=bool)]
    if off_diagonal.mean() > MAX_IMPOSTOR_SIMILARITY:
        raise DegenerateModelError(
            f"{source}: INT8 embeddings of different faces have mean cosine {off_diagonal.mean():.4f} "
            f"(> {MAX_IMPOSTOR_SIMILARITY}): the quantized model has collapsed; calibration failed")
