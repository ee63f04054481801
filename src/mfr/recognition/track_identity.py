"""Who a track is: when to embed its face, how its observations add up, and when the answer changes.

A single frame is weak evidence (blur, a turned head, a mask pulled up); a track gives many looks at one
face. Three rules turn them into one answer:

- **when to embed** (``EmbedSchedule``): a face that passes the quality gate is embedded when the track
  has no embedding yet, when its quality beats the track's best so far by ``improve_ratio`` (a closer or
  sharper look), or when ``interval`` seconds have passed (``recheck`` once the track is named; an
  unknown track keeps looking at ``interval``: its evidence grows toward its next look, and its best
  crop improves). Most
  face-frames are never embedded: the embedder is the most expensive stage per face.
- **aggregation**: embeddings weighted by face quality, summed and normalised: at a look (below) all of
  them since the track began or was last re-verified; for a named track the last ``window`` (not the
  whole track), which lets a swap of identities between crossing tracks show up;
- **decision** (``TrackIdentity.decide``): the gallery's rule (``Identifier``) on the aggregate. A track
  that holds no name (undecided, unknown, or re-verifying) takes at most ``looks`` decisions (the
  decision policy's), when its evidence reaches ``min_observations`` embeddings and then each time it
  doubles (3, 6, 12, ...): each holds ``target_far / looks``, so a stranger's track is named with at most
  ``target_far`` over all its looks, one stranger rate per track instead of one per embedding (which
  every further look at the same stranger would spend again). Each look rests on more evidence than the
  last; after the last the track stays unknown until it is re-verified. The answer is sticky: a named
  track keeps its name while its person stays best and scores within ``hysteresis`` below the threshold,
  and changes (to another name or to unknown) only after ``switch_after`` decisions in a row say so.
- **re-verification** (``contest`` / ``release``): where two faces cross, or a face is found again after
  a gap, the tracker may have put a track on the other face; a sticky name would then follow a stranger.
  So while a track overlaps another it is *contested*: no embedding (its detection may be the other
  face), its name withheld from what is shown. When the overlap ends (or after a gap) the window is
  cleared and the track is *verifying*: its name stays withheld until ``min_observations`` fresh
  embeddings decide again, and that fresh decision stands at once (it rests on new evidence only).
  A person who walks past someone loses the label for about a second; a swapped track never shows
  the other person's name.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mfr.recognition.decision import Decision, Identifier
from mfr.runtime.similarity import l2_normalize

DEFAULT_LOOKS = 1  # decisions a track holding no name takes (mfr watch --looks): chosen on clips of seeds 1-4


@dataclass(frozen=True)
class EmbedSchedule:
    interval: float = 0.3  # seconds between embeddings while the track is undecided
    recheck: float = 2.0  # seconds between embeddings once it is decided
    improve_ratio: float = 1.25  # quality this much above the best so far: embed now
    min_gap: float = 0.1  # never two embeddings of one track closer than this


@dataclass(frozen=True)
class DecisionConfig:
    min_observations: int = 3
    window: int = 8
    hysteresis: float = 0.03
    switch_after: int = 2
    contest_overlap: float = 0.2  # boxes overlapping this much (of the smaller) contest each other
    regain_misses: int = 1  # a track found again after missing this many detection frames is re-verified


@dataclass(frozen=True)
class Observation:
    embedding: np.ndarray
    quality: float
    mask_probability: float
    time: float


@dataclass(frozen=True)
class Evidence:
    """Every embedding of a track since it began or was last re-verified, quality-weighted and summed."""

    count: int = 0
    weighted_sum: np.ndarray | None = None
    weight: float = 0.0
    masked_weight: float = 0.0  # the weight of the mask probabilities: masked when half the weight or more

    def add(self, embedding: np.ndarray, quality: float, mask_probability: float) -> Evidence:
        weight = max(quality, 1e-3)
        before = np.zeros(embedding.shape, np.float64) if self.weighted_sum is None else self.weighted_sum
        return Evidence(self.count + 1, before + weight * embedding, self.weight + weight,
                        self.masked_weight + weight * mask_probability)

    def aggregate(self) -> tuple[np.ndarray, bool]:
        assert self.weighted_sum is not None, "no evidence yet"
        return l2_normalize(self.weighted_sum[None].astype(np.float32))[0], self.masked_weight / self.weight >= 0.5


@dataclass
class TrackIdentity:
    """The identity state of one track."""

    track_id: int
    config: DecisionConfig = DecisionConfig()
    observations: deque[Observation] = field(default_factory=deque)
    total_observations: int = 0
    best_quality: float = 0.0
    last_embedded: float = float("-inf")
    decided: bool = False
    name: str | None = None  # None while undecided or when unknown
    person_id: int | None = None
    last_decision: Decision | None = None
    _challenges: int = 0
    best_crop: np.ndarray | None = None
    contested: bool = False  # overlapping another track now: its face may be the other one
    verifying: bool = False  # since the last contest, gathering fresh evidence before showing a name
    evidence: Evidence = Evidence()  # since the track began or was last re-verified: its looks decide on it

    @property
    def shown_name(self) -> str | None:
        """The name to show now: withheld while contested or verifying."""
        return None if self.contested or self.verifying else self.name

    @property
    def settled(self) -> bool:
        """Decided, and not being re-verified: what is shown is an answer, not a pending one."""
        return self.decided and not (self.contested or self.verifying)

    def contest(self) -> None:
        """The track overlaps another now (or was found again after a gap): stop trusting its face."""
        self.contested = True

    def release(self) -> None:
        """The overlap is over: start afresh from new embeddings."""
        if self.contested:
            self.contested, self.verifying = False, True
            self.observations.clear()
            self._challenges = 0
            self.evidence = Evidence()

    def wants_embedding(self, quality: float, now: float, schedule: EmbedSchedule) -> bool:
        if self.contested or now - self.last_embedded < schedule.min_gap:
            return False
        if self.verifying or not self.observations or quality >= self.best_quality * schedule.improve_ratio:
            return True  # re-verification takes every look it can (its name is withheld meanwhile)
        named = self.settled and self.name is not None
        return now - self.last_embedded >= (schedule.recheck if named else schedule.interval)

    def observe(self, embedding: np.ndarray, quality: float, mask_probability: float, now: float,
                crop: np.ndarray | None = None) -> None:
        self.observations.append(Observation(embedding, quality, mask_probability, now))
        while len(self.observations) > self.config.window:
            self.observations.popleft()
        self.total_observations += 1
        self.evidence = self.evidence.add(embedding, quality, mask_probability)
        self.last_embedded = now
        if quality > self.best_quality or self.best_crop is None:
            self.best_quality = quality
            self.best_crop = crop

    def aggregate(self, all_evidence: bool = False) -> tuple[np.ndarray, bool]:
        """The window's quality-weighted embedding and its mask state (the weighted vote); with
        ``all_evidence``, of every embedding since the track began or was last re-verified."""
        if all_evidence:
            return self.evidence.aggregate()
        weights = np.array([max(o.quality, 1e-3) for o in self.observations])
        summed = (weights[:, None] * np.stack([o.embedding for o in self.observations])).sum(axis=0)
        masked = float(np.average([o.mask_probability for o in self.observations], weights=weights)) >= 0.5
        return l2_normalize(summed[None])[0], masked

    def decide(self, identifier: Identifier) -> str | None:
        """Apply the rule if there is enough evidence; returns the event kind this causes
        ("identified" for the first answer, "identity_changed"), or None."""
        if self.contested or self.evidence.count < self.config.min_observations:
            return None
        holds_name = self.decided and self.person_id is not None and not self.verifying
        if not holds_name and not self.is_look(self.evidence.count, identifier.policy.looks):
            return None
        embedding, masked = self.aggregate(all_evidence=not holds_name)
        decision = identifier.decide(embedding[None], np.array([masked]))[0]
        self.last_decision = decision
        self.verifying = False
        if not self.decided:
            self.decided, self.name, self.person_id = True, decision.name, decision.person_id
            return "identified"
        if self._keeps(decision):
            self._challenges = 0
            return None
        if holds_name:  # a name is taken away (or swapped) only after switch_after decisions in a row
            self._challenges += 1
            if self._challenges < self.config.switch_after:
                return None
        self._challenges = 0
        self.name, self.person_id = decision.name, decision.person_id
        return "identity_changed"

    def is_look(self, evidence: int, looks: int) -> bool:
        """Whether a track holding no name decides at this much evidence: at ``min_observations``
        embeddings and each doubling after it, ``looks`` times in all."""
        return any(evidence == self.config.min_observations * 2 ** k for k in range(looks))

    def _keeps(self, decision: Decision) -> bool:
        """The decision confirms the current answer, or (hysteresis) the named person still leads, just
        less clearly."""
        if decision.person_id == self.person_id:
            return True
        return (self.person_id is not None and decision.reason in ("below threshold", "ambiguous")
                and decision.candidate_id == self.person_id
                and decision.score >= decision.threshold - self.config.hysteresis * decision.scale)
