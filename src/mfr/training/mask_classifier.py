"""``mfr train mask-classifier``: the mask/no-mask classifier of ``mfr.recognition.mask_state``.

Trained on synthetic masks only: the LFW people in no evaluation pair (1,549 aligned faces), each once
bare and once with a mask from the same generator the evaluation uses (a different seed). 20 % of those
people are held out for a validation figure; MFR2's real mask labels (269 photos, detected and
aligned as ``mfr eval`` does) then measure how it transfers to real masks. numpy only, no torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.benchmarks.verification import CropMaker
from mfr.data.lfw import lfw_images_outside_pairs, lfw_root
from mfr.data.mfr2 import read_mask_labels, read_mfr2
from mfr.progress import Progress, no_progress
from mfr.recognition.mask_state import fit_logistic, mask_features
from mfr.registry import MODELS
from mfr.runtime.align import aligned_crop_landmarks, estimate_similarity
from mfr.runtime.detection import FaceDetector
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import warp_face

SPEC = MODELS["mobilefacenet"].spec  # 112x112 ArcFace-template crops, as every recognition model here uses


@dataclass(frozen=True)
class MaskClassifierReport:
    train_faces: int
    validation_accuracy: float
    mfr2_accuracy: float | None
    mfr2_confusion: dict[str, int]  # masked/unmasked x predicted
    seconds: float


def _lfw_crops(mask_seed: int, progress: Progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    paths = lfw_images_outside_pairs()
    masks, root = MaskGenerator(seed=mask_seed), lfw_root()
    crops, labels, people = [], [], []
    for path in progress(paths, len(paths), "synthetic training faces"):
        image = read_image_bgr(path)
        points = aligned_crop_landmarks(*image.shape[:2])
        matrix = estimate_similarity(points, SPEC)
        crops += [warp_face(image, matrix, SPEC),
                  warp_face(masks.apply(image, points, key=f"mask-classifier/{path.relative_to(root)}"), matrix, SPEC)]
        labels += [0, 1]
        people += [path.parent.name] * 2
    return np.stack(crops), np.array(labels), np.array(people)


def _mfr2_crops(detector: FaceDetector, detector_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every MFR2 photo with a real mask label, detected and aligned as the evaluation does."""
    labels = read_mask_labels()
    maker = CropMaker(read_mfr2(), SPEC, detector, detector_name, "center", None)
    paths = sorted(labels)
    crops = np.stack([maker.crop(path, masked=False) for path in paths])
    return crops, np.array([labels[p] != "no-mask" for p in paths])


def train_mask_classifier(out: Path, detector: FaceDetector | None, detector_name: str = "", mask_seed: int = 7,
                          seed: int = 0, progress: Progress = no_progress) -> MaskClassifierReport:
    started = time.perf_counter()
    crops, labels, people = _lfw_crops(mask_seed, progress)
    features = mask_features(crops)
    names = np.unique(people)
    held = set(np.random.default_rng(seed).choice(names, size=len(names) // 5, replace=False))
    validation = np.array([p in held for p in people])
    check = fit_logistic(features[~validation], labels[~validation])
    validation_accuracy = float((check.predict(crops[validation]) == labels[validation]).mean())
    classifier = fit_logistic(features, labels)
    mfr2_accuracy, confusion = None, {}
    if detector is not None:
        real_crops, real = _mfr2_crops(detector, detector_name)
        predicted = classifier.predict(real_crops)
        mfr2_accuracy = float((predicted == real).mean())
        confusion = {"masked_as_masked": int((predicted & real).sum()), "masked_as_unmasked": int((~predicted & real)
                                                                                                     .sum()),
                     "unmasked_as_masked": int((predicted & ~real).sum()),
                     "unmasked_as_unmasked": int((~predicted & ~real).sum())}
    report = MaskClassifierReport(len(crops), validation_accuracy, mfr2_accuracy, confusion,
                                  round(time.perf_counter() - started, 1))
    about: dict[str, Any] = {"trained_on": f"{len(crops)} LFW faces of people in no evaluation pair, half with "
                                           f"synthetic masks (seed {mask_seed})",
                             "validation_accuracy": validation_accuracy, "mfr2_accuracy": mfr2_accuracy,
                             "mfr2_confusion": confusion, "detector": detector_name,
                             "trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    replace(classifier, about=about).save(out)
    return report
