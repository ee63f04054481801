"""Enrolment photos/s and identification faces/s: ``mfr bench recognition``.

Enrolment: each photo through ``Enroller.plan`` and ``commit`` (read, detect, quality gate, align, flip-sum
embedding of the face and of its synthetic-masked copy, duplicate search, one SQLite transaction) into
a fresh gallery, each photo its own person. Identification: each photo's faces detected, aligned,
mask-classified, embedded and decided against that gallery, as ``mfr identify`` does. Models and the
gallery are opened before the clock starts; the photos are read from disk inside it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfr.augment.masks import MaskGenerator
from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.enroll import Enroller
from mfr.recognition.gallery import Gallery
from mfr.recognition.mask_state import MaskClassifier, classifier_crops
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.machine import cpu_label, fingerprint
from mfr.runtime.preprocess import align_faces


@dataclass
class RecognitionSpeed:
    photos: int
    rounds: int
    enrol_photos_per_s: float
    identify_faces: int
    identify_faces_per_s: float
    detector: str
    model: str
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"enrolment {self.enrol_photos_per_s:.1f} photos/s, identification {self.identify_faces_per_s:.1f} "
                f"faces/s ({self.photos} photos, {self.identify_faces} faces per round, {self.rounds} rounds; "
                f"{self.model}, detector {self.detector}; {cpu_label(self.machine)})")


def measure_recognition_speed(embedder: FaceEmbedder, detector: FaceDetector, detector_name: str,
                              photos: list[Path], rounds: int = 3) -> RecognitionSpeed:
    spec = embedder.manifest.spec
    classifier = MaskClassifier.load()
    enrol_seconds = identify_seconds = 0.0
    faces = 0
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(rounds):
            with Gallery.open(Path(folder) / f"g{round_index}.db", create=True) as gallery:
                enroller = Enroller(gallery, embedder, detector, DecisionPolicy(threshold=0.99), masks=MaskGenerator())
                started = time.perf_counter()
                for index, photo in enumerate(photos):
                    plan = enroller.plan(f"person {index}", [photo])
                    if plan.faces:  # a photo without a usable face costs its checks, and is not enrolled
                        enroller.commit(plan, force=True, skip_unusable=True)
                enrol_seconds += time.perf_counter() - started
                identifier = Identifier.for_gallery(gallery, embedder, DecisionPolicy(threshold=0.5),
                                                    str(embedder.engine.source))
                started = time.perf_counter()
                for photo in photos:
                    image = read_image_bgr(photo)
                    found = detector.detect(image)
                    if not found:
                        continue
                    landmarks = [f.landmarks for f in found]
                    crops = align_faces(image, landmarks, spec)
                    masked = classifier.predict(classifier_crops(image, landmarks, spec, crops))
                    identifier.decide(embedder.embed_crops(crops, flip=True), masked)
                    faces += len(found)
                identify_seconds += time.perf_counter() - started
    return RecognitionSpeed(len(photos), rounds, round(len(photos) * rounds / enrol_seconds, 2),
                            faces // rounds, round(faces / identify_seconds, 2), detector_name, embedder.describe())
