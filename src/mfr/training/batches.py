"""Training batches, built the same way in the training process or in DataLoader worker processes.

Drawing masks and degrading faces is CPU work in Python and OpenCV, about as costly per face as the
student's forward and backward pass on a small CPU and far more costly than it on a GPU; at scale
(``--workers N``) it runs in N worker processes while the device trains. Every random choice of a
batch comes from a generator seeded by (seed, epoch, step), so a batch is the same pixels whichever
process builds it and however many workers there are: a run is reproducible and resumable either way.

A large training set is not held in memory: above ``IN_MEMORY_FACES`` the decoded faces go once into
a memory-mapped file in the output directory (reused by ``--resume``), and the page cache keeps what fits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from mfr.atomic import atomic_file
from mfr.progress import Progress, no_progress
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec
from mfr.training.data import TrainingSet
from mfr.training.looks import TrainingLooks, degrade

IN_MEMORY_FACES = 100_000  # 3.8 GB of 112x112 faces; above this they are memory-mapped from disk
FACES_NAME = "faces.u8.npy"
FACES_OUTPUTS = (FACES_NAME, FACES_NAME + ".sha256")  # the decoded faces a run caches, and their stamp
T = TypeVar("T")


@dataclass(frozen=True)
class BatchPlan:
    """One step: its epoch, global step number and the indices of its faces."""

    epoch: int
    step: int
    indices: np.ndarray


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, 3, H, W) float32, normalised by the spec
    indices: np.ndarray
    masked: np.ndarray  # (B,) bool
    mirrored: np.ndarray  # (B,) bool
    margin_seed: int  # seeds the per-sample ElasticFace margins of this step


def epoch_plan(seed: int, epoch: int, faces: int, batch_size: int, first_step: int,
               max_steps: int | None = None) -> list[BatchPlan]:
    """The batches of one epoch: a seeded permutation cut into full batches (the remainder is dropped); with
    ``max_steps``, only those before the run's step limit."""
    order = np.random.default_rng([seed, epoch]).permutation(faces)
    count = faces // batch_size or 1
    if max_steps is not None:
        count = min(count, max(0, max_steps - first_step))
    return [BatchPlan(epoch, first_step + i, order[i * batch_size:(i + 1) * batch_size]) for i in range(count)]


class TrainingBatches(torch.utils.data.Dataset[Batch]):
    """``batches[plan]`` -> the augmented batch of a :class:`BatchPlan` (see the module docstring)."""

    def __init__(self, images: np.ndarray, keys: list[str], looks: TrainingLooks, spec: PreprocessSpec,
                 mask_probability: float, augment_probability: float, seed: int) -> None:
        self.images, self.keys, self.looks, self.spec = images, keys, looks, spec
        self.mask_probability, self.augment_probability, self.seed = mask_probability, augment_probability, seed
        self.points = np.array(spec.template)  # the images are aligned to it

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, plan: BatchPlan) -> Batch:
        rng = np.random.default_rng([self.seed, plan.epoch, plan.step, 1])
        count = len(plan.indices)
        masked = rng.random(count) < self.mask_probability
        mirrored = rng.random(count) < 0.5
        degraded = rng.random(count) < self.augment_probability
        margin_seed = int(rng.integers(2**62))
        faces = []
        for index, mask, mirror, worse in zip(plan.indices, masked, mirrored, degraded, strict=True):
            face = self.images[index]
            if mask:
                face = self.looks.apply(face, self.points, key=f"{self.keys[index]}:{plan.epoch}")
            if worse:
                face = degrade(face, np.random.default_rng([self.seed, plan.epoch, plan.step, int(index), 2]))
            faces.append(face[:, ::-1] if mirror else face)
        inputs = torch.from_numpy(normalize(np.stack(faces), self.spec))
        return Batch(inputs, plan.indices, masked, mirrored, margin_seed)


def iterate_batches(batches: torch.utils.data.Dataset[T], plans: list[BatchPlan], workers: int) -> Iterator[T]:
    """The batches of ``plans`` in order; built by ``workers`` processes ahead of the loop (0: inline)."""
    if workers == 0:
        return (batches[plan] for plan in plans)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=plans, num_workers=workers,
                                         collate_fn=lambda batch: batch, prefetch_factor=4,
                                         persistent_workers=False, multiprocessing_context="fork")
    return iter(loader)


def load_faces(data: TrainingSet, spec: PreprocessSpec, out: Path, progress: Progress = no_progress) -> np.ndarray:
    """The training faces as uint8 (N, H, W, 3): in memory, or memory-mapped from OUT/faces.u8.npy when
    there are more than ``IN_MEMORY_FACES`` (written once; reused while it holds the same file list, aligned
    for the same spec)."""
    if len(data) <= IN_MEMORY_FACES:
        return data.load_images(spec, progress)
    path, stamp = out / FACES_NAME, out / (FACES_NAME + ".sha256")
    listing = "\n".join([json.dumps(spec.to_dict(), sort_keys=True), *map(str, data.paths)])
    digest = hashlib.sha256(listing.encode()).hexdigest()
    if path.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return np.load(path, mmap_mode="r")
    height, width = spec.input_size or (0, 0)
    with atomic_file(path, suffix=".npy") as tmp:
        faces = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(data), height, width, 3))
        data.load_images_into(faces, spec, progress)
        faces.flush()
        del faces
    with atomic_file(stamp) as tmp:
        tmp.write_text(digest + "\n")
    return np.load(path, mmap_mode="r")
