"""MaskInv training: a student learns to give a masked face the embedding the frozen teacher gives it unmasked.

Per step: a batch of aligned faces; each is masked with probability p in one of the training looks
(``looks.TrainingLooks``: MaskTheFace templates, jittered and retextured templates, random occluders),
else left as is, optionally degraded (``looks.degrade``: misalignment, light, blur, JPEG) and mirrored
with probability 1/2. The teacher's embedding of the clean *unmasked* face (of the same mirror state) is
the target: those are computed once before training (the teacher is frozen and sees no random
augmentation but the mirror). Loss = ElasticFace-Arc on the student's embedding over the training
identities (optional) + lambda * MSE of the normalised embeddings, unmasked faces weighted by
``unmasked_weight`` (holding the unmasked embedding to the teacher's keeps unmasked accuracy).

Some training people are set aside as a validation split (``validation.py``); the student is scored on
them before training and after every epoch, which is where training options are compared.

BatchNorm layers keep the teacher's running statistics (eval mode, affine parameters trainable): batch
statistics of 64 faces, half of them masked, would shift how the network treats unmasked faces, and
the unmasked accuracy must not drop.

Determinism and resuming: the epoch order, the mask decisions and the margins come from generators
seeded by (seed, epoch, step), so a run resumed from its last epoch checkpoint continues as the
uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.errors import DataError
from mfr.progress import Progress, no_progress
from mfr.training.batches import Batch, TrainingBatches, load_faces
from mfr.training.data import TrainingSet, lfw_demo_split, read_image_folder
from mfr.training.fit import TeacherRun, Trainer, fit
from mfr.training.looks import TRAINING_FAMILIES, TrainingLooks
from mfr.training.losses import ElasticArcFace, distillation_loss
from mfr.training.run_dir import (
    config_fingerprint,
    freeze_batchnorm,
    save_figure,
    save_weights,
)
from mfr.training.teacher import Teacher
from mfr.training.validation import Validator, set_aside_validation

STUDENT_NAME = "student.pt"
LOSS_PNG = "loss.png"
LOG_FIELDS = ["step", "epoch", "stage", "lr", "loss", "distill", "margin", "cosine_masked", "cosine_unmasked",
              "seconds"]


@dataclass(frozen=True, kw_only=True)
class MaskInvConfig(TeacherRun):
    from_scratch: bool = False  # student initialised randomly instead of from the teacher
    augment_probability: float = 0.5  # share of faces degraded by looks.degrade
    distill_weight: float = 100.0  # lambda
    unmasked_weight: float = 1.0  # distillation weight of unmasked faces relative to masked ones
    margin_loss: bool = True
    scale: float = 64.0
    margin: float = 0.5
    margin_std: float = 0.05
    epochs: int = 12
    lr: float = 0.01
    lr_steps: tuple[int, ...] = (8, 10)  # epochs after which the learning rate is divided by 10
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_grad: float = 5.0

    def problems(self) -> list[tuple[bool, str]]:
        return super().problems() + [
            (self.distill_weight < 0, "--distill-weight must be >= 0"),
            (self.unmasked_weight < 0, "--unmasked-weight must be >= 0"),
            (not 0 <= self.augment_probability <= 1, "--augment-probability must be in [0, 1]"),
            (self.distill_weight == 0 and not self.margin_loss, "both losses are off: nothing to learn"),
            (self.epochs < 1 or self.batch_size < 2, "need --epochs >= 1 and --batch-size >= 2"),
            (self.lr <= 0, "--lr must be positive")]


@dataclass
class TrainingResult:
    model: str  # the architecture (the teacher's), for exporting the student
    steps: int
    epochs_done: int
    seconds: float
    first: dict[str, float]
    last: dict[str, float]
    student: Path
    log: list[dict[str, float]] = field(default_factory=list, repr=False)
    validation: list[dict[str, float]] = field(default_factory=list)  # before training, then per epoch


def learning_rate(config: MaskInvConfig, epoch: int) -> float:
    return config.lr * 0.1 ** sum(epoch >= boundary for boundary in config.lr_steps)


class MaskInvTrainer(Trainer):
    outputs = (STUDENT_NAME, LOSS_PNG)
    config: MaskInvConfig

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> TrainingResult:
        config, out = self.config, Path(self.config.out)
        teacher = self.begin()
        spec = teacher.entry.spec
        data, validator = self.training_and_validation(teacher, log, progress)
        log(f"training data: {len(data)} faces of {len(data.people)} people from {data.source}")
        images = load_faces(data, spec, out, progress)
        log("teacher embeddings of the unmasked faces (and their mirror images)")
        targets = teacher.raw_embeddings_and_mirrors(images, spec, config.device, progress)
        student = teacher.student(from_scratch=config.from_scratch).to(config.device)
        head = ElasticArcFace(targets.shape[2], len(data.people), config.scale, config.margin, config.margin_std,
                              centres=class_centres(targets, data.labels, len(data.people))).to(config.device)
        looks = TrainingLooks(config.mask_looks, config.seed,
                              TRAINING_FAMILIES if validator is not None else DEFAULT_FAMILIES)
        batches = TrainingBatches(images, data.keys(), looks, spec, config.mask_probability,
                                  config.augment_probability, config.seed)
        method = MaskInvMethod(config, student, head, batches, targets, data.labels)
        record = fit(method, self.fit_options(len(data), maskinv_fingerprint(config)),
                     (lambda: validator(student, config.device)) if validator is not None else None, log, progress)
        student_path = out / STUDENT_NAME
        save_weights(student, student_path)
        self.write_logs(record, LOG_FIELDS, teacher, data, first=record.first or None, last=record.last or None)
        plot_losses(record.rows, out / LOSS_PNG)
        log(f"wrote {student_path} after {record.steps} steps in {record.seconds:.0f} s")
        return TrainingResult(teacher.entry.name, record.steps, record.epochs_done, record.seconds, record.first,
                              record.last, student_path, record.rows, record.validation)

    def training_and_validation(self, teacher: Teacher, log: Callable[[str], None],
                                progress: Progress) -> tuple[TrainingSet, Validator | None]:
        """The training faces, and the validator of the people set aside from them (None without)."""
        config = self.config
        data = read_image_folder(config.data) if config.data is not None else lfw_demo_split()
        return set_aside_validation(data, config.validation_people, config.seed, teacher, teacher.entry.spec,
                                    config.device, log, progress)

@dataclass
class MaskInvMethod:
    """MaskInv for ``fit``: one stage, SGD with step decay, the student's embedding held to the teacher's
    embedding of the unmasked face (plus the margin loss)."""

    config: MaskInvConfig
    student: nn.Module
    head: ElasticArcFace
    training_batches: TrainingBatches
    targets: np.ndarray  # (faces, 2, D): the teacher's embeddings of each face and its mirror image
    labels: np.ndarray
    fresh_optimizer_per_stage: bool = False

    @property
    def schedule(self) -> list[str]:
        return ["train"] * self.config.epochs

    @property
    def clip_grad(self) -> float | None:
        return self.config.clip_grad

    def state(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "head": self.head.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"], strict=True)
        self.head.load_state_dict(state["head"], strict=True)

    def optimizer(self, stage: str) -> torch.optim.Optimizer:
        config = self.config
        return torch.optim.SGD([*self.student.parameters(), *self.head.parameters()], lr=config.lr,
                               momentum=config.momentum, weight_decay=config.weight_decay)

    def learning_rate(self, epoch: int, number: int, per_epoch: int) -> float:
        return learning_rate(self.config, epoch)

    def batches(self, stage: str) -> TrainingBatches:
        return self.training_batches

    def begin_epoch(self, stage: str) -> None:
        self.student.train()
        freeze_batchnorm(self.student)

    def end_epoch(self, stage: str) -> None:
        pass

    def losses(self, stage: str, batch: Batch, at: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        config = self.config
        indices, masked, mirrored = batch.indices, batch.masked, batch.mirrored
        inputs = batch.inputs.to(config.device)
        target = torch.from_numpy(self.targets[indices, mirrored.astype(np.int64)]).to(config.device)
        labels = torch.from_numpy(self.labels[indices]).to(config.device)
        margins = torch.Generator().manual_seed(batch.margin_seed)  # the per-sample margins
        embeddings = self.student(inputs)
        weights = torch.from_numpy(np.where(masked, 1.0, config.unmasked_weight).astype(np.float32)).to(config.device)
        distill = distillation_loss(embeddings, target, weights)
        margin = (self.head(embeddings, labels, margins) if config.margin_loss
                  else torch.zeros((), device=inputs.device))
        with torch.no_grad():
            cosine = (nn.functional.normalize(embeddings) * nn.functional.normalize(target)).sum(1).cpu().numpy()
        return config.distill_weight * distill + margin, {
            "distill": distill.item(), "margin": margin.item(),
            "cosine_masked": float(cosine[masked].mean()) if masked.any() else float("nan"),
            "cosine_unmasked": float(cosine[~masked].mean()) if (~masked).any() else float("nan")}

    def describe(self, row: dict[str, Any]) -> str:
        return (f"loss {row.get('loss', float('nan')):.4f}, distill {row.get('distill', float('nan')):.5f}, cosine "
                f"to teacher masked {row.get('cosine_masked', float('nan')):.4f} / unmasked "
                f"{row.get('cosine_unmasked', float('nan')):.4f}")


def maskinv_fingerprint(config: MaskInvConfig) -> dict[str, Any]:
    """The options a resumed run must share with the run it continues (it may train more epochs)."""
    return config_fingerprint(config, also_skip=("epochs",))


def class_centres(targets: np.ndarray, labels: np.ndarray, classes: int) -> torch.Tensor:
    """Each identity's mean normalised teacher embedding: the margin head starts where the teacher is."""
    normalised = targets / np.linalg.norm(targets, axis=2, keepdims=True)
    sums = np.zeros((classes, targets.shape[2]), np.float64)
    np.add.at(sums, labels, normalised.sum(axis=1))
    if not np.all(np.isfinite(sums)):
        raise DataError("teacher embeddings of the training faces are not finite")
    return torch.from_numpy((sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32))


def plot_losses(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    steps = [r["step"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps, [r["loss"] for r in rows], label="total")
    left.plot(steps, [r["margin"] for r in rows], label="ElasticFace-Arc")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    right.plot(steps, [r["cosine_masked"] for r in rows], label="masked faces")
    right.plot(steps, [r["cosine_unmasked"] for r in rows], label="unmasked faces")
    right.set_xlabel("step")
    right.set_ylabel("cosine student vs teacher (unmasked)")
    right.legend()
    save_figure(figure, path)
