"""Who a track is: when to embed its face, how its observations add up, and when the answer changes.

A single frame is weak evidence (blur, a turned head, a mask pulled up); a track gives many looks at one
face. Three rules turn them into one answer:

- **when to embed** (``EmbedSchedule``): a face that passes the quality gate is embedded when the track
  has no embedding yet, when its quality beats the track's best so far by ``improve_ratio`` (a closer or
  sharper look), or when ``interval`` seconds have passed (``recheck`` once the track is named; an
  unknown track keeps looking at ``interval``: unknown is the answer while evidence is short). Most
  face-frames are never embedded: the embedder is the most expensive stage per face.
- **aggregation**: the last ``window`` embeddings, weighted by face quality, summed and normalised; the
  window (not the whole track) lets a swap of identities between crossing tracks show up;
- **decision** (``TrackIdentity.decide``): the gallery's rule (``Identifier``) on the aggregate, only after
  ``min_observations`` embeddings; the answer is sticky: a named track keeps its name while its person
  stays best and scores within ``hysteresis`` below the threshold, and changes (to another name or to
  unknown) only after ``switch_after`` decisions in a row say so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mfr.recognition.decision import Decision, Identifier
from mfr.runtime.similarity import l2_normalize


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


@dataclass(frozen=True)
class Observation:
    embedding: np.ndarray
    quality: float
    mask_probability: float
    time: float


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

    def wants_embedding(self, quality: float, now: float, schedule: EmbedSchedule) -> bool:
        if now - self.last_embedded < schedule.min_gap:
            return False
        if self.total_observations == 0 or quality >= self.best_quality * schedule.improve_ratio:
            return True
        named = self.decided and self.name is not None
        return now - self.last_embedded >= (schedule.recheck if named else schedule.interval)

    def observe(self, embedding: np.ndarray, quality: float, mask_probability: float, now: float,
                crop: np.ndarray | None = None) -> None:
        self.observations.append(Observation(embedding, quality, mask_probability, now))
        while len(self.observations) > self.config.window:
            self.observations.popleft()
        self.total_observations += 1
        self.last_embedded = now
        if quality > self.best_quality or self.best_crop is None:
            self.best_quality = quality
            self.best_crop = crop

    def aggregate(self) -> tuple[np.ndarray, bool]:
        """The window's quality-weighted embedding and its mask state (the weighted vote)."""
        weights = np.array([max(o.quality, 1e-3) for o in self.observations])
        summed = (weights[:, None] * np.stack([o.embedding for o in self.observations])).sum(axis=0)
        masked = float(np.average([o.mask_probability for o in self.observations], weights=weights)) >= 0.5
        return l2_normalize(summed[None])[0], masked

    def decide(self, identifier: Identifier) -> str | None:
        """Apply the rule if there is enough evidence; returns the event kind this causes
        ("identified" for the first answer, "identity_changed"), or None."""
        if self.total_observations < self.config.min_observations:
            return None
        embedding, masked = self.aggregate()
        decision = identifier.decide(embedding[None], np.array([masked]))[0]
        self.last_decision = decision
        if not self.decided:
            self.decided, self.name, self.person_id = True, decision.name, decision.person_id
            return "identified"
        if decision.person_id == self.person_id:
            self._challenges = 0
            return None
        if self.person_id is not None and decision.reason in ("below threshold", "ambiguous"):
            # the named person may still lead, just less clearly: hysteresis keeps the name
            if decision.candidate_id == self.person_id and \
                    decision.score >= decision.threshold - self.config.hysteresis:
                self._challenges = 0
                return None
        self._challenges += 1
        if self._challenges < self.config.switch_after:
            return None
        self._challenges = 0
        self.name, self.person_id = decision.name, decision.person_id
        return "identity_changed"
