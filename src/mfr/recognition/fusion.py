"""Several photos of one person, one gallery entry: how their embeddings become templates.

- ``templates``: every photo is a template of its own and a probe is scored against the best of them
  (what ``mfr gallery enroll`` does with several photos). More templates give more chances to match, and
  more chances for a stranger too: the union-bound threshold divides the FAR by the templates searched.
- ``mean``: the mean of the unit embeddings, re-normalised: one template per person, so the threshold
  does not tighten as photos are added, and the noise of single photos averages out.
- ``quality-mean``: the same, each photo weighted by its quality score (``recognition.quality``: eye
  distance and sharpness), so a blurred photo counts less.

Which is better is a measurement (``mfr eval --dataset lfw-openset --enrol-photos 1,2,3 --fusion ...``), not
an assumption.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def every_photo(embeddings: np.ndarray, people: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each photo its own template."""
    return embeddings, people


def weighted_mean(embeddings: np.ndarray, people: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unit template per person: the ``weights``-weighted mean of that person's unit embeddings."""
    ids = np.unique(people)
    fused = np.stack([np.average(embeddings[people == person], axis=0, weights=np.maximum(weights[people == person],
                                                                                         1e-6))
                      for person in ids])
    return fused / np.linalg.norm(fused, axis=1, keepdims=True), ids


def mean(embeddings: np.ndarray, people: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unit template per person: the plain mean of that person's unit embeddings."""
    return weighted_mean(embeddings, people, np.ones(len(embeddings)))


@dataclass(frozen=True)
class Fusion:
    """(embeddings (N, D), people (N,), weights (N,)) -> (templates, their people); ``weighted``: it reads the
    photos' quality scores, which only then need computing."""

    fuse: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    weighted: bool = False


FUSIONS: dict[str, Fusion] = {"templates": Fusion(every_photo), "mean": Fusion(mean),
                              "quality-mean": Fusion(weighted_mean, weighted=True)}
