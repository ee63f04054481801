"""Batches of covered faces, the clean faces they hide, and where they hide them: G2D's generative stage,
and MEER's joint training (which also leaves a share of faces uncovered, ``mask_probability`` < 1).

Each face of a step is covered either by free-form holes (``phase="holes"``, the general inpainting the
encoder is pretrained on) or by a face mask of the training looks (``phase="masks"``, the finetuning),
mirrored or not with its clean target, and the hidden pixels are recorded for the weighted
reconstruction loss. Like ``batches.TrainingBatches``, every choice comes from a generator seeded by
(seed, epoch, step), so a batch is the same pixels in the training process or a DataLoader worker and
a resumed run sees what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec
from mfr.training.batches import BatchPlan
from mfr.training.holes import apply_holes, free_form_holes, hidden_region
from mfr.training.looks import TrainingLooks

PHASES = ("holes", "masks")


@dataclass
class InpaintingBatch:
    inputs: torch.Tensor  # (B, 3, H, W) covered faces, normalised by the spec
    targets: torch.Tensor  # (B, 3, H, W) the same faces uncovered, normalised
    hidden: torch.Tensor  # (B, 1, H, W) 1.0 where the cover hid the face
    indices: np.ndarray
    covered: np.ndarray  # (B,) bool: the face was covered (always, unless mask_probability < 1)
    mirrored: np.ndarray  # (B,) bool: input and target were mirrored


class InpaintingBatches(torch.utils.data.Dataset[InpaintingBatch]):
    """``batches[plan]`` -> the :class:`InpaintingBatch` of a :class:`BatchPlan` in ``phase``."""

    def __init__(self, images: np.ndarray, keys: list[str], looks: TrainingLooks, spec: PreprocessSpec,
                 phase: str, seed: int, mask_probability: float = 1.0) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown inpainting phase {phase!r}; one of {', '.join(PHASES)}")
        self.images, self.keys, self.looks, self.spec, self.phase, self.seed = images, keys, looks, spec, phase, seed
        self.mask_probability = mask_probability
        self.points = np.array(spec.template)  # the images are aligned to it

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, plan: BatchPlan) -> InpaintingBatch:
        rng = np.random.default_rng([self.seed, plan.epoch, plan.step, 3])
        # a generator of its own, so the draws of the covers and mirrors are those of mask_probability = 1
        kept = np.random.default_rng([self.seed, plan.epoch, plan.step, 5]).random(len(plan.indices))
        covers = kept < self.mask_probability
        covered, clean, hidden, mirrored = [], [], [], []
        for index, cover_it in zip(plan.indices, covers, strict=True):
            face = np.ascontiguousarray(self.images[index])
            if not cover_it:
                cover = face
            elif self.phase == "holes":
                holes_rng = np.random.default_rng([self.seed, plan.epoch, plan.step, int(index), 4])
                cover = apply_holes(face, free_form_holes(holes_rng, face.shape[:2]), holes_rng)
            else:
                cover = self.looks.apply(face, self.points, key=f"{self.keys[index]}:{plan.epoch}")
            region = hidden_region(face, cover)
            mirror = rng.random() < 0.5
            if mirror:
                face, cover, region = face[:, ::-1], cover[:, ::-1], region[:, ::-1]
            covered.append(cover)
            clean.append(face)
            hidden.append(region)
            mirrored.append(mirror)
        return InpaintingBatch(torch.from_numpy(normalize(np.stack(covered), self.spec)),
                               torch.from_numpy(normalize(np.stack(clean), self.spec)),
                               torch.from_numpy(np.stack(hidden).astype(np.float32)[:, None]), plan.indices,
                               covers, np.asarray(mirrored, bool))
