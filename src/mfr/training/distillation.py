"""What the distilling trainers (G2D, MEER) start from: the frozen teacher, the training faces, the
teacher's embeddings of every face unmasked and mirrored, computed once before training, and the validator
of the training people set aside (``validation.py``, as MaskInv's), which every choice is made on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.progress import Progress
from mfr.spec import PreprocessSpec
from mfr.training.batches import load_faces
from mfr.training.data import TrainingSet, lfw_demo_split, read_image_folder
from mfr.training.teacher import Teacher
from mfr.training.validation import Validator, set_aside_validation


@dataclass(frozen=True)
class DistillationSet:
    teacher: Teacher
    data: TrainingSet
    images: np.ndarray  # (N, H, W, 3) uint8 BGR, aligned
    targets: np.ndarray  # (N, 2, D) the teacher's raw embeddings of each face and of its mirror image
    validator: Validator | None = None  # scores a student on the people set aside (None: none set aside)

    def keys(self) -> list[str]:
        return self.data.keys()


def distillation_set(teacher: Teacher, data_dir: Path | None, spec: PreprocessSpec, out: Path,
                     device: str, log: Callable[[str], None], progress: Progress,
                     embedding_dim: int | None = None, validation_people: float = 0.0,
                     seed: int = 0) -> DistillationSet:
    """The teacher (``training.teacher.load_teacher``), the faces of ``data_dir`` (None: the LFW demo split)
    read for a student of ``spec``, and the targets. ``embedding_dim``: the size the student compares with
    the teacher's directly, if it does. ``validation_people``: the share of people set aside (0: none)."""
    if teacher.entry.spec.input_size != spec.input_size:
        raise MfrError(f"the teacher takes {teacher.entry.spec.input_size} faces, the student {spec.input_size}")
    data = read_image_folder(data_dir) if data_dir is not None else lfw_demo_split()
    data, validator = set_aside_validation(data, validation_people, seed, teacher, spec, device, log, progress)
    log(f"training data: {len(data)} faces of {len(data.people)} people from {data.source}")
    images = load_faces(data, spec, out, progress)
    log("teacher embeddings of the unmasked faces (and their mirror images)")
    targets = teacher.raw_embeddings_and_mirrors(images, teacher.entry.spec, device, progress)
    if embedding_dim is not None and targets.shape[2] != embedding_dim:
        raise MfrError(f"the teacher's embeddings have {targets.shape[2]} dimensions, the student's {embedding_dim}; "
                       f"comparing them directly needs the same size")
    return DistillationSet(teacher, data, images, targets, validator)
