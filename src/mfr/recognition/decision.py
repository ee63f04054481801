"""The open-set decision: a name only when the evidence clears every bar, otherwise ``unknown``.

For each face: the two best people by best template score (``search``). The face is named as the best
person only if

1. the score clears the threshold for the face's mask state, taken from the model's measured threshold
   table (``ThresholdRecord`` in the manifest) at a per-comparison false-accept rate of
   ``target_far / templates searched``. A stranger is compared with every template; if each comparison
   falsely accepts with probability p, the chance that any does is at most (templates) x p (the union
   bound), so this keeps strangers named as someone at or below ``target_far`` whatever the gallery
   size. Where the table does not reach that small a FAR, its strictest threshold is used and the
   decision says so (``threshold_far`` above the asked rate). A masked face's scores against
   synthetic-masked templates are first lowered by the gap between the masked-template and the masked
   threshold at that rate: two masks make strangers alike (without it, 36 % of masked strangers were
   named in a 100-person LFW gallery);
2. the margin over the second person is at least ``min_margin`` (two enrolled people alike: refuse
   rather than guess);
3. no negative recorded for that person ("this face is not X") scores higher than X's best template.

An explicit ``threshold`` replaces the table (for a model without measured thresholds).

``score="as-norm"`` (``recognition.score_norm``) scores with cohort-normalised scores instead of raw
cosines and replaces step 1's table and union bound by a threshold calibrated on the gallery itself, the
cohort's faces playing strangers, for each mask state; the margin of step 2 is converted to normalised
units. It needs a cohort of faces embedded by the same model, of people never enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.errors import MfrError
from mfr.manifest import ThresholdRecord
from mfr.recognition.cohort import Cohort, cohort_of_model
from mfr.recognition.gallery import Gallery, TemplateMatrix
from mfr.recognition.score_norm import AsNormSearch
from mfr.recognition.search import TemplateSearch
from mfr.recognition.searches import make_search
from mfr.runtime.embedder import FaceEmbedder

DEFAULT_TARGET_FAR = 0.01
DEFAULT_MARGIN = 0.03
SCORES = ("raw", "as-norm")  # raw cosine with the measured table; cohort-normalised, calibrated on the gallery


@dataclass(frozen=True)
class DecisionPolicy:
    target_far: float = DEFAULT_TARGET_FAR  # share of strangers that may be named as someone
    min_margin: float = DEFAULT_MARGIN
    threshold: float | None = None  # fixed cosine threshold instead of the measured table
    score: str = "raw"  # one of SCORES
    # decisions one track may take to name a face it has not named (``track_identity``): each holds
    # target_far / looks, so all of them together name a stranger's track at most target_far (Bonferroni)
    looks: int = 1

    @property
    def decision_far(self) -> float:
        """The stranger rate one decision holds: the target shared among a track's looks."""
        return self.target_far / self.looks

    def __post_init__(self) -> None:
        if self.looks < 1:
            raise MfrError(f"a track needs at least one look to name anyone, got {self.looks}")
        if self.score not in SCORES:
            raise MfrError(f"unknown score {self.score!r}; one of {', '.join(SCORES)}")
        if self.score != "raw" and self.threshold is not None:
            raise MfrError("a fixed --threshold is a raw cosine; it cannot be combined with normalised scores")


@dataclass(frozen=True)
class Decision:
    person_id: int | None  # None: unknown
    name: str | None
    score: float  # best person's best template score (-inf for an empty gallery)
    margin: float  # over the second person (inf when there is none)
    masked: bool
    threshold: float
    threshold_far: float | None  # the per-comparison FAR the threshold stands for (None: fixed or calibrated)
    reason: str  # "accepted", "below threshold", "ambiguous", "negative match", "empty gallery"
    candidate_id: int | None = None  # the best person, accepted or not (None: empty gallery)
    scale: float = 1.0  # score units per cosine: 1 for raw scores, about 1/std for normalised ones


class Identifier:
    """The decision rule over one gallery snapshot (search index, names, negatives)."""

    @classmethod
    def for_gallery(cls, gallery: Gallery, embedder: FaceEmbedder, policy: DecisionPolicy,
                    model_dir: str, search: str = "auto", cohort: Cohort | None = None) -> Identifier:
        """The rule over ``gallery`` as it is now, for probes embedded by ``embedder``; a gallery made with
        another model is refused, naming the command that re-embeds it. ``search``: a ``searches.SEARCHES`` name
        (normalised scores search exactly). Normalised scores use ``cohort``, by default the model's own
        (``mfr thresholds --write``), less anyone enrolled under the same name."""
        gallery.check_model(embedder.fingerprint(), embedder.describe(),
                            f"mfr gallery reembed --gallery {gallery.path} --package {model_dir}")
        matrix = gallery.template_matrix()
        if policy.score == "as-norm":
            cohort = (cohort or cohort_of_model(embedder.manifest, embedder.source_sha256(), embedder.engine.source)
                      ).without(set(matrix.names.values()))
        thresholds = embedder.manifest.thresholds_for(embedder.source_sha256())
        return cls(search_for(matrix, policy, search, cohort, gallery), matrix.names, thresholds, policy,
                   gallery.negative_matrix(), model=model_dir)

    def __init__(self, search: TemplateSearch, names: dict[int, str], thresholds: ThresholdRecord | None,
                 policy: DecisionPolicy = DecisionPolicy(), negatives: tuple[np.ndarray, np.ndarray] | None = None,
                 model: str = "this model") -> None:
        calibrated = isinstance(search, AsNormSearch)
        if (policy.score == "as-norm") != calibrated:
            raise MfrError(f"score {policy.score!r} needs {'an' if policy.score == 'as-norm' else 'no'} AsNormSearch "
                           f"(search_for builds the right one)")
        if policy.threshold is None and thresholds is None and not calibrated:
            raise MfrError(f"{model} has no measured identification thresholds; measure them once with "
                           f"`mfr thresholds --package DIR --write`, or pass --threshold")
        if not 0 < policy.target_far < 1:
            raise MfrError(f"the target false-accept rate must lie between 0 and 1, got {policy.target_far}")
        self.search, self.names, self.thresholds, self.policy = search, names, thresholds, policy
        empty = (np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
        self.negative_embeddings: np.ndarray
        self.negative_people: np.ndarray
        self.negative_embeddings, self.negative_people = negatives if negatives is not None else empty
        self.calibrated: dict[bool, float] = {}
        self.scale = 1.0
        if calibrated:
            assert isinstance(search, AsNormSearch)
            self.calibrated = {m: search.stranger_threshold(m, policy.decision_far) for m in (False, True)}
            self.scale = search.margin_scale
        self.margin = policy.min_margin * self.scale

    def threshold(self, masked: bool, searched: int) -> tuple[float, float | None, float]:
        """(cosine threshold, the per-comparison FAR it stands for, offset for masked templates) for a
        probe compared with ``searched`` templates."""
        if self.policy.threshold is not None:
            return self.policy.threshold, None, 0.0
        if self.calibrated:
            return self.calibrated[masked], None, 0.0
        assert self.thresholds is not None
        table = self.thresholds.masked if masked else self.thresholds.unmasked
        pair_far = max(self.policy.decision_far / max(searched, 1), table.far[-1])
        if not masked:
            return table.at(pair_far), pair_far, 0.0
        both = self.thresholds.masked_template
        pair_far = max(pair_far, both.far[-1])
        return table.at(pair_far), pair_far, both.at(pair_far) - table.at(pair_far)

    def decide(self, probes: np.ndarray, masked: np.ndarray) -> list[Decision]:
        """``probes`` (Q, D) unit-length embeddings and their mask states -> one decision each."""
        masked = np.asarray(masked, bool)
        rules = {m: self.threshold(m, self.search.templates_searched(m)) for m in (False, True)}
        offsets = np.array([rules[bool(m)][2] for m in masked], np.float32)
        found = self.search.top_people(probes, masked, k=2, masked_template_offset=offsets)
        negative_scores = (np.asarray(probes, np.float32) @ self.negative_embeddings.T
                           if len(self.negative_people) else None)
        decisions = []
        for i in range(len(probes)):
            threshold, far, _ = rules[bool(masked[i])]
            best_id, best = int(found.person_ids[i, 0]), float(found.scores[i, 0])
            second = float(found.scores[i, 1])
            margin = best - second if np.isfinite(second) else float("inf")
            if best_id < 0:
                reason = "empty gallery"
            elif best < threshold:
                reason = "below threshold"
            elif margin < self.margin:
                reason = "ambiguous"
            elif negative_scores is not None and (negative_scores[i][self.negative_people == best_id]
                                                  > self._raw_best(probes[i], bool(masked[i]), best_id, best)).any():
                reason = "negative match"
            else:
                reason = "accepted"
            accepted = reason == "accepted"
            decisions.append(Decision(best_id if accepted else None, self.names.get(best_id) if accepted else None,
                                      best, margin, bool(masked[i]), threshold, far, reason,
                                      best_id if best_id >= 0 else None, self.scale))
        return decisions

    def _raw_best(self, probe: np.ndarray, masked: bool, person_id: int, best: float) -> float:
        """The best person's score as a raw cosine, which the negatives' scores are compared with."""
        return self.search.raw_best(probe, masked, person_id) if isinstance(self.search, AsNormSearch) else best


def search_for(matrix: TemplateMatrix, policy: DecisionPolicy, search: str = "auto",
               cohort: Cohort | None = None, gallery: Gallery | None = None) -> TemplateSearch:
    """The search the policy's score needs over ``matrix`` (read from ``gallery``): the one named ``search``
    for raw cosines, the exact normalised search for AS-norm (which needs the cohort)."""
    if policy.score == "raw":
        return make_search(matrix, search, gallery)
    if search not in ("auto", "exact"):
        raise MfrError(f"normalised scores (as-norm) search the gallery exactly; --search {search} does not apply")
    if cohort is None:
        raise MfrError("normalised scores (as-norm) need a cohort: faces of people never enrolled, embedded by "
                       "the gallery's model")
    return AsNormSearch(matrix, cohort)
