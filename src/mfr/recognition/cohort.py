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

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.atomic import sha256_file, write_bytes_atomic
from mfr.errors import DataError, ManifestError, MfrError
from mfr.manifest import Manifest


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

    def without(self, names: set[str]) -> Cohort:
        """This cohort less the faces of ``names`` (people enrolled or judged), its people renumbered."""
        drop = set(self.overlap(names))
        keep = np.array([self.people_names[p] not in drop for p in self.people], bool)
        kept_names = tuple(n for n in self.people_names if n not in drop)
        index = {name: i for i, name in enumerate(kept_names)}
        people = np.array([index[self.people_names[p]] for p in self.people[keep]], np.int64)
        what = self.what if not drop else f"{self.what}, less {len(drop)} of the people judged"
        return Cohort(self.bare[keep], self.masked[keep], people, kept_names, what)

    def save(self, path: Path) -> str:
        """Write the cohort to ``path`` (numpy .npz, no pickles) through a rename; returns its sha256."""
        buffer = io.BytesIO()
        np.savez(buffer, bare=self.bare.astype(np.float32), masked=self.masked.astype(np.float32),
                 people=self.people.astype(np.int64), people_names=np.array(self.people_names, dtype=str),
                 what=np.array(self.what))
        write_bytes_atomic(path, buffer.getvalue(), private=True)  # templates of real people: 0600
        return sha256_file(path)

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> Cohort:
        """The cohort written by ``save``; ``sha256`` (from the manifest) must match when given."""
        if not path.is_file():
            raise ManifestError(f"{path}: the cohort file the manifest names is missing; measure it again with "
                                f"`mfr thresholds --package {path.parent} --write`")
        if sha256 is not None and sha256_file(path) != sha256:
            raise ManifestError(f"{path}: sha256 differs from the manifest's: the cohort was changed or damaged; "
                                f"measure it again with `mfr thresholds --package {path.parent} --write`")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["bare"], data["masked"], data["people"],
                           tuple(str(n) for n in data["people_names"]), str(data["what"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ManifestError(f"{path}: not a cohort file ({exc})") from None

    def overlap(self, names: set[str]) -> list[str]:
        """The cohort's people among ``names`` (enrolled, judged or trained-on people), sorted. Names are
        compared by their letters only: datasets spell one person "Ben_Affleck" and "BenAffleck"."""
        return people_among(self.people_names, names)


def person_key(name: str) -> str:
    """A person's name as compared across datasets: lower-case letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def people_among(people: Iterable[str], names: Iterable[str]) -> list[str]:
    """Those of ``people`` who are among ``names``, sorted, names compared by ``person_key``."""
    wanted = {person_key(name) for name in names}
    return sorted(name for name in people if person_key(name) in wanted)


def cohort_of_model(manifest: Manifest, model_sha256: str, directory: Path | str) -> Cohort:
    """The cohort measured with the model file ``model_sha256`` (``mfr thresholds --write`` keeps it beside
    the manifest of the package or engine at ``directory``)."""
    record = manifest.thresholds_for(model_sha256)
    if not isinstance(directory, Path):
        raise MfrError(f"{directory}: normalised scores need the model's cohort file; a served model has none here "
                       f"(use its package or engine directory)")
    if record is None or record.cohort_file is None:
        raise MfrError(f"{directory} holds no cohort for normalised scores (as-norm); measure it once with "
                       f"`mfr thresholds --package {directory} --write`, on people who will never be enrolled")
    return Cohort.load(directory / record.cohort_file, record.cohort_sha256)
