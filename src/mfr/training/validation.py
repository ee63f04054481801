"""A validation split carved from the training people, for choosing training options.

The judging sets (LFW folds 6-10, MFR2, the procedural renderer) must never steer a training choice, so
options are compared here instead: some training people are set aside (person-disjoint from what the
student trains on), their faces paired (same-person pairs up to a cap per person, five times as many
different-person pairs), and the student is scored on them unmasked (U-U), masked against unmasked (M-U)
and masked against masked (M-M), with masks of two kinds: the training templates under another seed, and
the template family no training look uses (``looks.VALIDATION_FAMILY``), which shows whether a gain
transfers to a mask the student never saw. EERs on a few hundred same-person pairs move in steps of a
quarter point, so two finer measures go with them: the mean cosine between the student's embedding of
each unmasked validation face and the teacher's ("unmasked faces unchanged"), and of each masked face
and the teacher's embedding of it unmasked (the distillation objective, on people and a mask family the
training never saw).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch import nn

from mfr.augment.masks import MaskGenerator
from mfr.metrics import eer
from mfr.progress import Progress
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec
from mfr.training.data import TrainingSet
from mfr.training.looks import TRAINING_FAMILIES, validation_masks
from mfr.training.teacher import Teacher

MAX_IMAGES_PER_PERSON = 12  # a person with hundreds of photos would dominate the pairs
MAX_SAME_PAIRS_PER_PERSON = 15
DIFFERENT_PER_SAME = 5  # different-person pairs are cheap; more of them steady the EER
_BATCH = 128


@dataclass(frozen=True)
class ValidationSplit:
    train: TrainingSet
    validation: TrainingSet
    same: np.ndarray  # (P,) pair labels
    pairs: np.ndarray  # (P, 2) indices into validation


def carve_validation(data: TrainingSet, fraction: float, seed: int) -> ValidationSplit | None:
    """Set aside ``fraction`` of the people with 2 to 40 images; None when ``fraction`` is 0."""
    if fraction <= 0:
        return None
    counts = np.bincount(data.labels, minlength=len(data.people))
    eligible = np.flatnonzero((counts >= 2) & (counts <= 40))
    rng = np.random.default_rng([seed, 17])
    chosen = set(rng.choice(eligible, size=max(2, round(fraction * len(eligible))), replace=False).tolist())
    keep = np.array([label not in chosen for label in data.labels])
    train = _subset(data, keep, "training people")
    validation = _subset(data, ~keep, "validation people", MAX_IMAGES_PER_PERSON)
    same_pairs: list[tuple[int, int]] = []
    for label in np.unique(validation.labels):
        members = np.flatnonzero(validation.labels == label)
        candidates = list(combinations(members.tolist(), 2))
        picked = rng.permutation(len(candidates))[:MAX_SAME_PAIRS_PER_PERSON]
        same_pairs += [candidates[i] for i in picked]
    different: list[tuple[int, int]] = []
    while len(different) < DIFFERENT_PER_SAME * len(same_pairs):
        left, right = rng.integers(len(validation), size=2)
        if validation.labels[left] != validation.labels[right]:
            different.append((int(left), int(right)))
    pairs = np.array(same_pairs + different, np.int64)
    same = np.array([True] * len(same_pairs) + [False] * len(different))
    return ValidationSplit(train, validation, same, pairs)


def set_aside_validation(data: TrainingSet, fraction: float, seed: int, teacher: Teacher, spec: PreprocessSpec,
                         device: str, log: Callable[[str], None],
                         progress: Progress) -> tuple[TrainingSet, Validator | None]:
    """The faces to train on and the validator of the people set aside from ``data`` (``carve_validation``;
    None and all of ``data`` when ``fraction`` is 0), their faces read for a student of ``spec``."""
    split = carve_validation(data, fraction, seed)
    if split is None:
        return data, None
    log(f"validation: {len(split.validation)} faces of {len(split.validation.people)} people set aside, "
        f"{int(split.same.sum())} same-person and {int((~split.same).sum())} different-person pairs")
    held = split.validation.load_images(spec, progress)
    return split.train, Validator(split, held, teacher.raw_embeddings(held, teacher.entry.spec, device), spec, seed)


def format_validation(row: dict[str, float]) -> str:
    """One validation row (``Validator.__call__``) as a log line."""
    return (f"EER U-U {row['uu_eer']:.2f} %, M-U {row['mu_eer_seen']:.2f} % (seen masks) / "
            f"{row['mu_eer_unseen']:.2f} % (unseen), M-M {row['mm_eer_seen']:.2f} % / {row['mm_eer_unseen']:.2f} %; "
            f"cosine to the teacher's unmasked embedding: unmasked {row['unmasked_cosine_to_teacher']:.4f}, masked "
            f"{row['masked_cosine_to_teacher_seen']:.4f} (seen) / {row['masked_cosine_to_teacher_unseen']:.4f} "
            f"(unseen)")


def _subset(data: TrainingSet, keep: np.ndarray, what: str, cap: int | None = None) -> TrainingSet:
    indices = np.flatnonzero(keep)
    if cap is not None:
        indices = np.concatenate([indices[data.labels[indices] == label][:cap]
                                  for label in np.unique(data.labels[indices])])
    people = sorted({data.people[label] for label in data.labels[indices]})
    index = {person: i for i, person in enumerate(people)}
    labels = np.array([index[data.people[data.labels[i]]] for i in indices], np.int64)
    return TrainingSet(f"{data.source}: {what}", people, [data.paths[i] for i in indices], labels)


class Validator:
    """Scores a student on a validation split; the masked faces are drawn once and reused every epoch."""

    def __init__(self, split: ValidationSplit, images: np.ndarray, teacher_unmasked: np.ndarray,
                 spec: PreprocessSpec, seed: int) -> None:
        points = np.array(spec.template)  # the images are aligned to it
        keys = split.validation.keys()
        seen = MaskGenerator(seed=seed + 1000, families=TRAINING_FAMILIES)
        unseen = validation_masks(seed + 1000)
        self.split, self.spec = split, spec
        self.inputs = {"unmasked": images,
                       "seen": np.stack([seen.apply(im, points, k) for im, k in zip(images, keys, strict=True)]),
                       "unseen": np.stack([unseen.apply(im, points, k) for im, k in zip(images, keys, strict=True)])}
        self.teacher = teacher_unmasked / np.linalg.norm(teacher_unmasked, axis=1, keepdims=True)

    def __call__(self, student: nn.Module, device: str) -> dict[str, float]:
        was_training = student.training
        student.eval()
        embeddings = {name: self._embed(student, faces, device) for name, faces in self.inputs.items()}
        student.train(was_training)
        left, right = self.split.pairs[:, 0], self.split.pairs[:, 1]

        def pair_eer(a: np.ndarray, b: np.ndarray) -> float:
            return round(100 * eer((a[left] * b[right]).sum(1), self.split.same), 3)

        plain = embeddings["unmasked"]
        result = {"uu_eer": pair_eer(plain, plain),
                  "unmasked_cosine_to_teacher": round(float((plain * self.teacher).sum(1).mean()), 5)}
        for kind in ("seen", "unseen"):
            masked = embeddings[kind]
            result[f"mu_eer_{kind}"] = pair_eer(masked, plain)
            result[f"mm_eer_{kind}"] = pair_eer(masked, masked)
            result[f"masked_cosine_to_teacher_{kind}"] = round(float((masked * self.teacher).sum(1).mean()), 5)
        return result

    def _embed(self, student: nn.Module, faces: np.ndarray, device: str) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(faces), _BATCH):
                batch = torch.from_numpy(normalize(faces[start:start + _BATCH], self.spec)).to(device)
                out.append(nn.functional.normalize(student(batch)).cpu().numpy())
        return np.concatenate(out)
