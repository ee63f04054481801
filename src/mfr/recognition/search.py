"""Who in the gallery is closest to each probe: the best template score per person, top people first.

``ExactSearch`` is exact cosine on the normalised template matrix in memory (one matrix product per
batch of probes): at 100k templates of 128 floats that is 51 MB and a few milliseconds per probe on a
CPU. ``TemplateSearch`` is the small interface a vector index can implement instead for larger
galleries; the decision rule only sees ``PersonScores``.

Unmasked probes are compared with unmasked templates only: a synthetic-masked template of someone
matches another person's unmasked face more easily than their own unmasked template does. Masked
probes are compared with every template of a person, masked and unmasked; two masked faces of
different people look more alike than a masked and an unmasked one, so the scores against masked
templates can be lowered by a per-probe ``masked_template_offset`` (the decision rule passes the gap
between the two measured thresholds) before the best per person is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mfr.recognition.gallery import TemplateMatrix


@dataclass(frozen=True)
class PersonScores:
    """For each probe, the ``k`` best people: their ids and best template scores, best first."""

    person_ids: np.ndarray  # (Q, k) int64, -1 where the gallery has fewer people
    scores: np.ndarray  # (Q, k) float32, -inf where the gallery has fewer people

    @classmethod
    def none_found(cls, count: int, k: int) -> PersonScores:
        """``count`` probes with no person found yet: every search starts from this and fills it in."""
        return cls(np.full((count, k), -1, np.int64), np.full((count, k), -np.inf, np.float32))


class TemplateSearch(Protocol):
    def templates_searched(self, masked: bool) -> int:
        """How many templates a probe of this mask state is compared with (the decision's union bound)."""
        ...

    def top_people(self, probes: np.ndarray, masked: np.ndarray, k: int = 2,
                   masked_template_offset: np.ndarray | None = None) -> PersonScores:
        """``probes`` (Q, D) unit rows and their mask states (Q,) -> the ``k`` best people each."""
        ...


class ExactSearch:
    def __init__(self, templates: TemplateMatrix) -> None:
        order = np.argsort(templates.person_ids, kind="stable")
        self.embeddings = np.ascontiguousarray(templates.embeddings[order], dtype=np.float32)
        self.masked = templates.masked[order]
        ids = templates.person_ids[order]
        # each person's templates are one contiguous run of columns: starts for np.maximum.reduceat
        self.people, self.starts = np.unique(ids, return_index=True)
        self.counts = {False: int((~self.masked).sum()), True: len(self.masked)}

    def templates_searched(self, masked: bool) -> int:
        return self.counts[bool(masked)]

    def top_people(self, probes: np.ndarray, masked: np.ndarray, k: int = 2,
                   masked_template_offset: np.ndarray | None = None) -> PersonScores:
        if len(probes) == 0 or len(self.people) == 0:
            return PersonScores.none_found(len(probes), k)
        scores = self.template_scores(probes, masked)
        if masked_template_offset is not None and self.masked.any():
            scores[:, self.masked] -= np.asarray(masked_template_offset, np.float32)[:, None]
        return self.best_people(scores, k)

    def template_scores(self, probes: np.ndarray, masked: np.ndarray) -> np.ndarray:
        """(Q, T) cosine of every probe with every template (in this search's column order); -inf where the
        mask rule does not compare them."""
        scores = np.asarray(probes, np.float32) @ self.embeddings.T
        # an unmasked probe never scores against masked templates
        scores[np.ix_(~np.asarray(masked, bool), self.masked)] = -np.inf
        return scores

    def best_people(self, scores: np.ndarray, k: int) -> PersonScores:
        """(Q, T) template scores -> the ``k`` best people per probe by their best template."""
        count = len(scores)
        found = PersonScores.none_found(count, k)
        ids, best = found.person_ids, found.scores
        per_person = np.maximum.reduceat(scores, self.starts, axis=1)  # (Q, people)
        take = min(k, per_person.shape[1])
        # the k best without sorting every person (argpartition), then those k in order
        top = np.argpartition(-per_person, take - 1, axis=1)[:, :take] if take < per_person.shape[1] \
            else np.tile(np.arange(take), (count, 1))
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(per_person, top, axis=1), axis=1,
                                                 kind="stable"), axis=1)
        ids[:, :take] = self.people[top]
        best[:, :take] = np.take_along_axis(per_person, top, axis=1)
        ids[~np.isfinite(best)] = -1
        return found
