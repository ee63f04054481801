"""Cohort-normalised scores (AS-norm) and a stranger threshold calibrated on the actual gallery.

A raw cosine means different things for different faces: some templates (a common face, a blurred
photo, a synthetic mask) score high against everyone, some probes do too, so one threshold for all of
them is too strict for most pairs to hold the stranger rate for the few. Adaptive symmetric normalisation
(AS-norm, from speaker verification: Cumani et al. 2011, Matejka et al. 2017) measures how each side
scores against a cohort of strangers and puts the score in those units:

    s' = ((s - mean_t) / std_t + (s - mean_p) / std_p) / 2

where mean/std are over the ``top_k`` highest cohort scores of the template t (the cohort faces in the
probe's mask state) and of the probe p (the cohort faces rendered as the template: bare or
synthetic-masked). That also takes the place of the raw rule's masked-template offset: a masked template
that is close to every masked face has a high mean_t.

The threshold is not read from a pair table through the union bound (which treats the gallery's templates
as independent trials): the cohort faces play strangers against the gallery as it is, each scoring its
best normalised score over the gallery, probe faces with and without a mask separately. The threshold is
the lowest at which the rate of cohort strangers above it is at most the target with ``CONFIDENCE``
(a one-sided binomial bound over the cohort's size): a cohort face's own person is left out of its
statistics, so it is scored as a stranger would be. The cohort's size sets the smallest rate it can hold
(about 230 faces for 1 % at 90 % confidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mfr.errors import MfrError
from mfr.recognition.cohort import Cohort
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch, PersonScores

DEFAULT_TOP_K = 400
CONFIDENCE = 0.9
_ROWS = 4096  # rows scored against the cohort at once (memory: rows x cohort floats)


@dataclass(frozen=True)
class TopScores:
    """Each row's ``k`` highest scores against a set of faces, summarised: their mean and standard
    deviation, the lowest of them and the next one (to take one face out of the k afterwards)."""

    mean: np.ndarray
    std: np.ndarray
    lowest: np.ndarray  # the k-th highest score
    following: np.ndarray  # the (k+1)-th highest score (-inf where there is none)
    k: int

    def without(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of each row's top k had the face that scored ``scores`` (Q, rows) against them not
        been among the faces: a face in a row's top k is replaced by the next."""
        inside = (scores >= self.lowest[None]) & np.isfinite(self.following)[None]
        taken = np.where(inside, scores, 0.0)  # outside the top k (-inf included) nothing is swapped
        total = self.k * self.mean[None] + np.where(inside, self.following[None] - taken, 0)
        squares = self.k * (self.std ** 2 + self.mean ** 2)[None] + np.where(
            inside, self.following[None] ** 2 - taken ** 2, 0)
        mean = total / self.k
        return mean, np.sqrt(np.maximum(squares / self.k - mean ** 2, 1e-12))


def top_k_scores(rows: np.ndarray, faces: np.ndarray, top_k: int, exclude: np.ndarray | None = None) -> TopScores:
    """``TopScores`` of each row against ``faces``, leaving out the (rows, faces) pairs where ``exclude``
    is True (k shrinks to what every row has left where the faces are fewer)."""
    left_out = int(exclude.sum(axis=1).max()) if exclude is not None and len(exclude) else 0
    take = max(1, min(top_k, len(faces) - left_out))
    parts = []
    for start in range(0, len(rows), _ROWS):
        scores = np.asarray(rows[start:start + _ROWS], np.float32) @ np.asarray(faces, np.float32).T
        if exclude is not None:
            scores[exclude[start:start + _ROWS]] = -np.inf
        ranked = -np.sort(-scores, axis=1)[:, :take + 1]
        top = ranked[:, :take]
        following = ranked[:, take] if ranked.shape[1] > take else np.full(len(ranked), -np.inf, np.float32)
        parts.append((top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6), top[:, -1], following))
    if not parts:
        empty = np.zeros(0, np.float32)
        return TopScores(empty, empty, empty, empty, take)
    mean, std, lowest, following = (np.concatenate([part[i] for part in parts]).astype(np.float32) for i in range(4))
    return TopScores(mean, std, lowest, following, take)


def allowed_exceedances(count: int, target_rate: float, confidence: float = CONFIDENCE) -> int | None:
    """The most of ``count`` simulated strangers that may clear a threshold for the true rate to be at most
    ``target_rate`` with ``confidence``: the largest a with P[Binomial(count, target_rate) <= a] <= 1 -
    confidence (the Clopper-Pearson upper bound of a/count is then at most the target). None: even 0 of
    ``count`` does not show it (too few faces)."""
    if count <= 0 or not 0 < target_rate < 1:
        return None
    log_p, log_q = math.log(target_rate), math.log1p(-target_rate)
    log_n = math.lgamma(count + 1)
    cumulative, allowed = 0.0, None
    for a in range(count + 1):
        cumulative += math.exp(log_n - math.lgamma(a + 1) - math.lgamma(count - a + 1) + a * log_p
                               + (count - a) * log_q)
        if cumulative > 1 - confidence:
            break
        allowed = a
    return allowed


class AsNormSearch(ExactSearch):
    """Exact search over AS-normalised scores: the ``TemplateSearch`` the decision uses with
    ``DecisionPolicy(score="as-norm")``. Template statistics are computed once per gallery snapshot."""

    def __init__(self, templates: TemplateMatrix, cohort: Cohort, top_k: int = DEFAULT_TOP_K) -> None:
        super().__init__(templates)
        if len(cohort.bare) and cohort.bare.shape[1] != self.embeddings.shape[1] and len(self.embeddings):
            raise MfrError(f"the cohort ({cohort.what}) holds {cohort.bare.shape[1]}-dim embeddings, the gallery "
                           f"{self.embeddings.shape[1]}-dim: embed the cohort with the gallery's model")
        self.cohort, self.top_k = cohort, top_k
        # each template against the cohort faces of a probe without (False) and with a mask (True)
        self.template_top = {state: top_k_scores(self.embeddings, cohort.faces(state), top_k)
                             for state in (False, True)}

    def probe_stats(self, probes: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Q, 2) mean and std of each probe against the cohort rendered bare (column 0) and masked (1)."""
        stats = [top_k_scores(probes, self.cohort.faces(kind), self.top_k, exclude) for kind in (False, True)]
        return np.stack([s.mean for s in stats], axis=1), np.stack([s.std for s in stats], axis=1)

    def normalise(self, scores: np.ndarray, masked: np.ndarray, probe_mean: np.ndarray, probe_std: np.ndarray,
                  template_side: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(Q, T) raw scores -> AS-norm scores (-inf stays -inf: pairs the mask rule does not compare).
        ``template_side``: (Q, T) template means and stds to use instead of the gallery's own."""
        kind = self.masked.astype(int)
        if template_side is None:
            state = np.asarray(masked, bool)
            template_mean = np.where(state[:, None], self.template_top[True].mean[None],
                                     self.template_top[False].mean[None])
            template_std = np.where(state[:, None], self.template_top[True].std[None],
                                    self.template_top[False].std[None])
        else:
            template_mean, template_std = template_side
        return 0.5 * ((scores - template_mean) / template_std + (scores - probe_mean[:, kind]) / probe_std[:, kind])

    def top_people(self, probes: np.ndarray, masked: np.ndarray, k: int = 2,
                   masked_template_offset: np.ndarray | None = None) -> PersonScores:
        """As ``ExactSearch.top_people`` on normalised scores; the offset is not used (normalisation takes
        its place)."""
        if len(probes) == 0 or len(self.people) == 0:
            return PersonScores.none_found(len(probes), k)
        mean, std = self.probe_stats(probes)
        return self.best_people(self.normalise(self.template_scores(probes, masked), masked, mean, std), k)

    def raw_best(self, probe: np.ndarray, masked: bool, person_id: int) -> float:
        """The probe's best raw cosine over the templates of ``person_id`` (the negatives' rule compares raw
        cosines: a negative is a face, not a cohort-normalised template)."""
        index = int(np.searchsorted(self.people, person_id))
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.masked)
        scores = self.template_scores(np.asarray(probe)[None], np.array([masked]))[0, self.starts[index]:end]
        return float(scores.max())

    def stranger_threshold(self, masked: bool, target_rate: float, confidence: float = CONFIDENCE) -> float:
        """The normalised score at which at most ``target_rate`` of strangers (probes with or without a
        mask) are named, shown on the cohort playing strangers against this gallery."""
        faces = self.cohort.faces(masked)
        allowed = allowed_exceedances(len(faces), target_rate, confidence)
        if allowed is None:
            raise MfrError(f"the cohort ({self.cohort.what}) has {len(faces)} faces: too few to show a stranger "
                           f"rate of {target_rate:g} with {confidence:.0%} confidence (about "
                           f"{math.ceil(math.log(1 - confidence) / math.log1p(-target_rate))} needed)")
        if len(self.people) == 0:
            return float("inf")
        same_person = self.cohort.same_person()
        best = np.sort(np.concatenate([self._cohort_best(faces, rows, same_person[rows], masked)
                                       for rows in np.array_split(np.arange(len(faces)), -(-len(faces) // _ROWS))]))
        return float(np.nextafter(best[::-1][allowed], np.inf))

    def _cohort_best(self, faces: np.ndarray, rows: np.ndarray, same_person: np.ndarray, masked: bool) -> np.ndarray:
        """The best normalised score over the gallery of cohort faces ``rows`` playing strangers: each face
        is left out of its own statistics (the probe's: with its person's other faces, ``same_person``; the
        templates': the face itself), so that it is scored as a face the cohort does not hold. A pair the
        mask rule does not compare scores -inf, which takes the face out of no template's top k: that
        template's score stays -inf whatever its statistics."""
        states = np.full(len(rows), masked)
        mean, std = self.probe_stats(faces[rows], exclude=same_person)
        scores = self.template_scores(faces[rows], states)
        template_side = self.template_top[masked].without(scores)
        return self.normalise(scores, states, mean, std, template_side).max(axis=1)

    @property
    def margin_scale(self) -> float:
        """Normalised units per cosine: a cosine lead d between two people is about d / std normalised."""
        stds = np.concatenate([self.template_top[state].std for state in (False, True)])
        return float(1.0 / np.median(stds)) if len(stds) else 1.0
