"""Identification thresholds measured on impostor pairs: ``mfr thresholds``.

The decision rule needs, for unmasked and for masked probes, the cosine that a given share of
different-person comparisons reaches. By default it is measured on the LFW people who appear in no
evaluation pair (1,549 images of 1,468 people): every pair of images of two different people is an
impostor pair, about 1.2 million unmasked-unmasked pairs, 2.4 million masked-probe/unmasked-template pairs
and 1.2 million masked-probe/masked-template pairs (each face's synthetic mask drawn independently), which
resolves false-accept rates down to 1e-6. Nothing judged is used: the open-set evaluation, LFW folds and
MFR2 draw on other people. Embeddings are flip-sums, as the gallery and identification compute them.

A model trained on the LFW demo split has seen those people (they are training people), and its
impostor scores on them are lower than on strangers. Its thresholds are measured on people it never
saw: the people of LFW folds 6-10 (``ThresholdFaces.of_folds``), named in the record.

A FAR is listed only where ``far * impostor_pairs >= 1``: below that no false accept is allowed at all
and the "threshold" would only be the highest impostor score seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.benchmarks.verification import CropMaker
from mfr.data.lfw import lfw_images_of_folds, lfw_images_outside_pairs, lfw_root
from mfr.data.pairs import PairDataset
from mfr.errors import DataError
from mfr.manifest import ThresholdRecord, ThresholdTable, TrainingRecord
from mfr.paths import report_path
from mfr.progress import Progress, no_progress
from mfr.recognition.cohort import Cohort
from mfr.runtime.align import is_aligned_crop
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.image_io import IMAGE_SUFFIXES, read_image_bgr

FARS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7)
_CHUNK = 256


def threshold_table(impostor_scores: np.ndarray, probe: str) -> ThresholdTable:
    """The lowest cosine accepting at most ``far`` of the impostor scores, for each resolvable FAR."""
    scores = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    count = len(scores)
    fars, thresholds = [], []
    for far in FARS:
        allowed = int(far * count)  # false accepts allowed at this rate
        if allowed < 1:
            break
        # accepting score >= t with t just above the (allowed+1)-th highest score accepts at most `allowed`
        fars.append(far)
        thresholds.append(float(np.nextafter(scores[allowed], np.inf)))
    return ThresholdTable(probe, fars, thresholds, count)


def impostor_scores(embeddings: np.ndarray, people: np.ndarray, probes: np.ndarray | None = None) -> np.ndarray:
    """Scores of every different-person pair: templates x templates (each pair once), or probes x templates."""
    if probes is None:
        scores = embeddings @ embeddings.T
        upper = np.triu(np.ones(scores.shape, bool), k=1)
        return scores[upper & (people[:, None] != people[None, :])]
    scores = probes @ embeddings.T
    return scores[people[:, None] != people[None, :]]


@dataclass(frozen=True)
class ThresholdFaces:
    """The faces impostor pairs are drawn from (``root/<person>/<image>``), and how the record names them."""

    paths: list[Path]
    what: str  # e.g. "LFW people in no evaluation pair"
    root: Path  # the folders of the people are under it (masks are drawn per path relative to it)
    aligned: bool = True  # aligned crops; False: photos, detected and aligned first

    @classmethod
    def outside_pairs(cls, root: Path | None = None) -> ThresholdFaces:
        return cls(lfw_images_outside_pairs(root), "LFW people in no evaluation pair", lfw_root(root))

    @classmethod
    def of_folds(cls, folds: tuple[int, ...], per_person: int, root: Path | None = None) -> ThresholdFaces:
        """People of the 0-based LFW ``folds``, at most ``per_person`` photos each."""
        named = ",".join(str(fold + 1) for fold in folds)
        return cls(lfw_images_of_folds(folds, per_person, root),
                   f"LFW people of folds {named} (at most {per_person} photos each)", lfw_root(root))

    @classmethod
    def of_folder(cls, root: Path, per_person: int) -> ThresholdFaces:
        """The user's own faces of people who will not be enrolled, one folder per person: aligned 112x112
        crops, or photos (then every image is detected and aligned)."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (expected one sub-folder of face images per person)")
        paths = [image for person in sorted(p for p in root.iterdir() if p.is_dir())
                 for image in sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:per_person]]
        people = {path.parent.name for path in paths}
        if len(people) < 2:
            raise DataError(f"{root}: found {len(paths)} images of {len(people)} people; impostor pairs need at "
                            f"least 2 people, one sub-folder of face images ({', '.join(IMAGE_SUFFIXES)}) each")
        aligned = all(is_aligned_crop(read_image_bgr(path)) for path in paths)
        return cls(paths, f"the people of {root} (at most {per_person} photos each)", root, aligned)

    @property
    def people(self) -> list[str]:
        """The people's names (their folders), sorted."""
        return sorted({path.parent.name for path in self.paths})

    def spread(self, images: int | None) -> ThresholdFaces:
        """``images`` of the faces, spread evenly over the list (a quick, coarser table)."""
        if images is None or images >= len(self.paths):
            return self
        keep = np.linspace(0, len(self.paths) - 1, images).round().astype(int)
        return replace(self, paths=[self.paths[i] for i in keep])


def seen_by_training(faces: ThresholdFaces, training: TrainingRecord | None, allow_seen: bool) -> int | None:
    """How many of ``faces``' people the model was trained on (None: its package does not record them).
    Thresholds measured on them would be too low (a model scores the people it learned apart lower against
    each other than strangers), so a set that holds any is refused unless ``allow_seen``."""
    if training is None or not training.trained_people:
        return None
    trained = set(training.trained_people)
    seen = sorted(set(faces.people) & trained)
    if seen and not allow_seen:
        raise DataError(
            f"{len(seen)} of the {len(faces.people)} people of {faces.what} are among the {len(trained)} "
            f"the model was trained on ({', '.join(seen[:3])}{', ...' if len(seen) > 3 else ''}; training data: "
            f"{training.data}): thresholds measured on them would name strangers more often than they say. Measure "
            f"on people it never saw (--folds 6,7,8,9,10 for a model trained on the LFW demo split, or --people "
            f"DIR), or pass --allow-seen to measure anyway with the overlap in the record")
    return len(seen)


def embed_cohort(embedder: FaceEmbedder, faces: ThresholdFaces, mask_seed: int = 0,
                 detector: FaceDetector | None = None, detector_name: str = "none",
                 progress: Progress = no_progress) -> Cohort:
    """``faces`` embedded bare and with a synthetic mask (flip-sums, as the gallery computes them): the
    impostor faces of ``thresholds_of_cohort``, and the cohort of normalised scores. Photos need ``detector``."""
    paths = faces.paths
    base = faces.root
    crops = CropMaker(PairDataset(base.name, base, [], aligned=faces.aligned), embedder.manifest.spec, detector,
                      detector_name, "fail", MaskGenerator(seed=mask_seed))
    unmasked, masked = [], []
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    for chunk in progress(chunks, len(chunks), "embedding faces of people never enrolled"):
        unmasked.append(embedder.embed_crops(np.stack([crops.crop(p, masked=False) for p in chunk]), flip=True))
        masked.append(embedder.embed_crops(np.stack([crops.crop(p, masked=True) for p in chunk]), flip=True))
    names, people = np.unique([path.parent.name for path in paths], return_inverse=True)
    return Cohort(np.concatenate(unmasked), np.concatenate(masked), people.astype(np.int64),
                  tuple(str(n) for n in names),
                  f"{faces.what}: {len(paths):,} images of {len(names):,} people ({report_path(base)}); masked by "
                  f"the synthetic generator, seed {mask_seed}")


def thresholds_of_cohort(embedder: FaceEmbedder, cohort: Cohort, images: int,
                         seen_people: int | None = None) -> ThresholdRecord:
    """Threshold tables from every different-person pair of the embedded faces of ``cohort``."""
    templates, probes, people = cohort.bare, cohort.masked, cohort.people
    return ThresholdRecord(
        model_sha256=embedder.source_sha256(),
        data=cohort.what,
        images=images,
        people=len(cohort.people_names),
        seen_people=seen_people,
        flip=True,
        measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        unmasked=threshold_table(impostor_scores(templates, people), "unmasked"),
        masked=threshold_table(impostor_scores(templates, people, probes), "masked"),
        masked_template=threshold_table(impostor_scores(probes, people), "masked-template"),
    )
