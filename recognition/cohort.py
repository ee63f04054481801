"""A cohort: faces of people who will never be enrolled, embedded by the gallery's model.

Two uses, both in ``recognition.score_norm``: the cohort tells how high a template (or a probe) scores
against strangers in general, which normalises its scores (some faces are "close to everyone"), and its
faces play strangers against the actual gallery, which calibrates the threshold for the gallery as it is
instead of bounding it pair by pair. Each face is held twice, bare and wearing a synthetic mask, because
a probe's mask state changes both.

The cohort must hold nobody who is enrolled or judged (they would be strangers to themselves) and, for a
trained model, nobody it trained on (their scores against each other are lower than a stranger's): the
caller checks both against the names in ``people_names``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mfr.errors import DataError


@dataclass(frozen=True)
class Cohort:
    bare: np.ndarray  # (C, D) unit rows: the faces without a mask
    masked: np.ndarray  # (C, D) unit rows: the same faces with a synthetic mask
    people: np.ndarray  # (C,) int64: which cohort person each face is (a face never plays against its own)
    people_names: tuple[str, ...]  # the names behind ``people`` (index = id)
    what: str  # e.g. "LFW people in no evaluation pair: 1,549 images of 1,468 people"

    def __post_init__(self) -> None:
        if not len(self.bare) == len(self.masked) == len(self.people):
            raise DataError(f"cohort {self.what}: {len(self.bare)} bare, {len(self.masked)} masked faces and "
                            f"{len(self.people)} person labels: they must be one per face")

    def faces(self, masked: bool) -> np.ndarray:
        return self.masked if masked else self.bare

    def same_person(self) -> np.ndarray:
        """(C, C) True where two cohort faces are of one person."""
        return self.people[:, None] == self.people[None, :]

    def overlap(self, names: set[str]) -> list[str]:
        """The cohort's people among ``names`` (enrolled, judged or trained-on people), sorted. Names are
        compared by their letters only: datasets spell one person "Ben_Affleck" and "BenAffleck"."""
        return self.overlap_of(self.people_names, names)

    @staticmethod
    def overlap_of(cohort_people: Sequence[str], names: set[str]) -> list[str]:
        wanted = {person_key(name) for name in names}
        return sorted(name for name in cohort_people if person_key(name) in wanted)


def person_key(name: str) -> str:
    """A person's name as compared across datasets: lower-case letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())
