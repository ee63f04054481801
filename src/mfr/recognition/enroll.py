"""Enrolment: photos of a person -> checked, aligned faces -> templates in the gallery.

Each photo is read, its faces detected (the largest is used when there are several, and that is said),
checked by the ``QualityGate``, aligned by the model's spec and embedded (flip-sum, as identification
does). A photo that is already an aligned crop (112x112 on the ArcFace template, LFW-style) is taken as
aligned and warped to the model's own template. Optionally each photo also gets a synthetic-masked
template, drawn by the same mask generator the evaluation uses on the photo before alignment, so masked
probes have a masked template to meet.

Before anything is written, every face is searched in the gallery: a face that another enrolled person
matches (above the identification threshold for unmasked faces) is refused as a likely duplicate or
wrong label unless forced. Enrolling many people at once (``plan_many``) also searches each person's
faces among the other people of the same run, so two folders of one person are caught before either
is written. A person's templates are written in one transaction: after a crash the
person is either fully enrolled or absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.errors import DataError, GalleryError
from mfr.manifest import ThresholdRecord
from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.gallery import AddResult, Gallery, NewTemplate, TemplateMatrix
from mfr.recognition.quality import FaceQuality, QualityGate
from mfr.recognition.search import ExactSearch
from mfr.runtime.align import aligned_crop_landmarks, estimate_similarity, is_aligned_crop
from mfr.runtime.detection import FaceDetector, largest_face
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.image_io import IMAGE_SUFFIXES, MAX_PIXELS, read_image_bgr
from mfr.runtime.preprocess import warp_face
from mfr.spec import PreprocessSpec


@dataclass(frozen=True)
class FaceInPhoto:
    source: Path
    sha256: str
    crop: np.ndarray  # aligned uint8 BGR
    masked_crop: np.ndarray | None  # the same face with a synthetic mask, aligned
    quality: FaceQuality
    faces_found: int  # > 1: the largest was used


@dataclass(frozen=True)
class Unusable:
    source: Path
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A face of the person being enrolled that someone else matches."""

    source: Path
    other: str
    score: float
    in_this_run: bool = False  # the other person is enrolled by the same run, not yet in the gallery

    def describe(self) -> str:
        where = "who is enrolled in the same run" if self.in_this_run else "who is already enrolled"
        return f"{self.source}: matches {self.other!r} (score {self.score:.3f}), {where}"


@dataclass
class EnrolmentPlan:
    """What enrolling one person would write, and what stands in the way."""

    name: str
    faces: list[FaceInPhoto]
    embeddings: np.ndarray  # (F, D) of the faces
    masked_embeddings: np.ndarray  # (F, D) of the masked crops (empty without masked templates)
    unusable: list[Unusable] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def problems(self) -> list[str]:
        return ([f"{u.source}: {u.reason}" for u in self.unusable]
                + [d.describe() for d in self.duplicates])


def photo_files(inputs: Iterable[Path]) -> list[Path]:
    """Image files among ``inputs``: files as given, folders searched recursively; none is an error."""
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{item}: no photos ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item} not found")
    return files


def find_face(path: Path, detector: FaceDetector | None, spec: PreprocessSpec, gate: QualityGate,
              masks: MaskGenerator | None, max_pixels: int = MAX_PIXELS) -> FaceInPhoto | Unusable:
    """The one face of a photo, aligned and checked, or why there is none to use."""
    try:
        image = read_image_bgr(path, max_pixels)
        data = Path(path).read_bytes()
    except (DataError, OSError) as exc:
        return Unusable(path, str(exc).replace(f"{path}: ", ""))
    digest = hashlib.sha256(data).hexdigest()
    height, width = image.shape[:2]
    if is_aligned_crop(image):
        landmarks = aligned_crop_landmarks(height, width)
        box, count = np.array([0.0, 0.0, width, height]), 1
    else:
        if detector is None:
            return Unusable(path, "not an aligned 112x112 crop, and no detector was given")
        faces = detector.detect(image)
        face = largest_face(faces)
        if face is None:
            return Unusable(path, "no face found")
        landmarks, box, count = face.landmarks, face.box, len(faces)
    matrix = estimate_similarity(landmarks, spec)
    crop = warp_face(image, matrix, spec)
    quality = gate.assess(image.shape, box, landmarks, crop)
    if not quality.ok:
        return Unusable(path, "; ".join(quality.problems))
    masked = None
    if masks is not None:
        masked = warp_face(masks.apply(image, landmarks, key=f"enrol/{digest}"), matrix, spec)
    return FaceInPhoto(path, digest, crop, masked, quality, count)


class Enroller:
    """Plans and commits enrolments into one gallery with one model."""

    def __init__(self, gallery: Gallery, embedder: FaceEmbedder, detector: FaceDetector | None,
                 policy: DecisionPolicy | None = None, gate: QualityGate | None = None,
                 masks: MaskGenerator | None = None, log: Callable[[str], None] = lambda _: None,
                 max_pixels: int = MAX_PIXELS) -> None:
        self.gallery, self.embedder, self.detector = gallery, embedder, detector
        self.policy, self.gate = policy or DecisionPolicy(), gate or QualityGate()
        self.masks, self.log, self.max_pixels = masks, log, max_pixels
        self.fingerprint, self.model = embedder.fingerprint(), embedder.describe()
        gallery.check_model(self.fingerprint, self.model, f"mfr gallery reembed --gallery {gallery.path} "
                                                          f"--package {embedder.engine.source}")

    def plan(self, name: str, photos: list[Path]) -> EnrolmentPlan:
        """What enrolling ``name`` from ``photos`` would write, checked against the gallery."""
        plan = self._faces_of(name, photos)
        plan.duplicates = self._duplicates(plan, self.gallery.template_matrix())
        return plan

    def _faces_of(self, name: str, photos: list[Path]) -> EnrolmentPlan:
        """The usable faces of ``photos`` and their embeddings; no duplicate check yet."""
        found = [find_face(p, self.detector, self.embedder.manifest.spec, self.gate, self.masks, self.max_pixels)
                 for p in photos]
        faces = [f for f in found if isinstance(f, FaceInPhoto)]
        unusable = [f for f in found if isinstance(f, Unusable)]
        for face in faces:
            if face.faces_found > 1:
                self.log(f"{face.source}: {face.faces_found} faces, the largest enrolled")
        embeddings = self.embedder.embed_crops(np.stack([f.crop for f in faces]), flip=True) if faces else \
            np.zeros((0, 0), np.float32)
        masked = [f.masked_crop for f in faces if f.masked_crop is not None]
        masked_embeddings = self.embedder.embed_crops(np.stack(masked), flip=True) if masked else \
            np.zeros((0, 0), np.float32)
        return EnrolmentPlan(name, faces, embeddings, masked_embeddings, unusable)

    def plan_many(self, people: list[tuple[str, list[Path]]],
                  progress: Callable[[Iterable[tuple[str, list[Path]]]], Iterable[tuple[str, list[Path]]]] = iter,
                  ) -> list[EnrolmentPlan]:
        """Plans for several people: each checked against the gallery and against the others of the run."""
        plans = [self._faces_of(name, photos) for name, photos in progress(people)]
        enrolled = self.gallery.template_matrix()  # read once: planning writes nothing
        for plan in plans:
            plan.duplicates = self._duplicates(plan, enrolled)
        pending = [p for p in plans if p.faces]
        if len(pending) < 2:
            return plans
        first_id = max([0, *enrolled.person_ids.tolist()]) + 1
        ids = {plan.name: first_id + i for i, plan in enumerate(pending)}
        run = TemplateMatrix(np.concatenate([p.embeddings for p in pending]),
                             np.concatenate([np.full(len(p.faces), ids[p.name], np.int64) for p in pending]),
                             np.zeros(sum(len(p.faces) for p in pending), bool),
                             {pid: name for name, pid in ids.items()})
        for plan in pending:
            plan.duplicates += self._duplicates(plan, run, in_this_run=True)
        return plans

    def _duplicates(self, plan: EnrolmentPlan, candidates: TemplateMatrix,
                    in_this_run: bool = False) -> list[Duplicate]:
        """Faces of the plan that another person among ``candidates`` matches above the identification
        threshold (the rule identification uses, for that many templates)."""
        others = np.array([candidates.names.get(int(pid)) != plan.name for pid in candidates.person_ids], bool)
        if not plan.faces or not others.any():
            return []
        matrix = TemplateMatrix(candidates.embeddings[others], candidates.person_ids[others],
                                candidates.masked[others], candidates.names)
        identifier = Identifier(ExactSearch(matrix), matrix.names, self.thresholds(), self.policy, model=self.model)
        decisions = identifier.decide(plan.embeddings, np.zeros(len(plan.faces), bool))
        return [Duplicate(face.source, matrix.names[d.person_id], d.score, in_this_run)
                for face, d in zip(plan.faces, decisions, strict=True) if d.person_id is not None]

    def thresholds(self) -> ThresholdRecord | None:
        return self.embedder.manifest.thresholds_for(self.embedder.source_sha256())

    def commit(self, plan: EnrolmentPlan, force: bool = False, skip_unusable: bool = False) -> AddResult:
        """Write the plan's templates in one transaction; refuse on problems unless allowed."""
        if plan.duplicates and not force:
            raise GalleryError(f"not enrolling {plan.name!r}:\n  " + "\n  ".join(plan.problems())
                               + "\n(--force enrols faces that match someone else; --skip-unusable skips the "
                                 "unusable photos)")
        if plan.unusable and not skip_unusable:
            raise GalleryError(f"not enrolling {plan.name!r}, unusable photos:\n  " + "\n  ".join(plan.problems())
                               + "\n(--skip-unusable enrols the usable ones)")
        if not plan.faces:
            raise GalleryError(f"not enrolling {plan.name!r}: no usable face in {len(plan.unusable)} photo(s)")
        templates = [NewTemplate(e, f.crop, f.sha256, masked=False, quality=f.quality.score)
                     for f, e in zip(plan.faces, plan.embeddings, strict=True)]
        masked_faces = [f for f in plan.faces if f.masked_crop is not None]
        templates += [NewTemplate(e, f.masked_crop, f.sha256, masked=True, synthetic=True, quality=f.quality.score)
                      for f, e in zip(masked_faces, plan.masked_embeddings, strict=True) if f.masked_crop is not None]
        return self.gallery.add_templates(plan.name, templates, self.fingerprint, self.model)
