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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfr.atomic import atomic_file, write_json_atomic
from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.errors import DataError, MfrError
from mfr.progress import Progress, no_progress
from mfr.training.batches import FACES_NAME, Batch, TrainingBatches, epoch_plan, iterate_batches, load_faces
from mfr.training.data import TrainingSet, lfw_demo_split, read_image_folder
from mfr.training.looks import LOOKS, TRAINING_FAMILIES, TrainingLooks
from mfr.training.losses import ElasticArcFace, distillation_loss
from mfr.training.run_dir import (
    LOG_CSV,
    LOG_JSON,
    STATE_NAME,
    config_fingerprint,
    config_summary,
    freeze_batchnorm,
    load_state,
    prepare_out_dir,
    save_atomic,
    save_weights,
    write_log_csv,
)
from mfr.training.schedule import set_lr
from mfr.training.teacher import Teacher, load_teacher
from mfr.training.validation import Validator, format_validation, set_aside_validation

STUDENT_NAME = "student.pt"
LOSS_PNG = "loss.png"
LOG_FIELDS = ["step", "epoch", "lr", "loss", "distill", "margin", "cosine_masked", "cosine_unmasked", "seconds"]


@dataclass(frozen=True)
class MaskInvConfig:
    teacher: Path  # a model package (its export weights are used) or a checkpoint
    out: Path
    data: Path | None = None  # aligned ImageFolder; None: the LFW demo split
    model: str = "mobilefacenet"  # architecture of a checkpoint teacher (a package names its own)
    from_scratch: bool = False  # student initialised randomly instead of from the teacher
    mask_probability: float = 0.5
    mask_looks: tuple[str, ...] = LOOKS  # drawn uniformly per masked face
    augment_probability: float = 0.5  # share of faces degraded by looks.degrade
    distill_weight: float = 100.0  # lambda
    unmasked_weight: float = 1.0  # distillation weight of unmasked faces relative to masked ones
    validation_people: float = 0.1  # share of eligible training people set aside for validation (0: none)
    margin_loss: bool = True
    scale: float = 64.0
    margin: float = 0.5
    margin_std: float = 0.05
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.01
    lr_steps: tuple[int, ...] = (8, 10)  # epochs after which the learning rate is divided by 10
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_grad: float = 5.0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch CPU threads (0: torch's default)
    workers: int = 0  # processes building batches ahead of the training loop (0: built inline)
    max_steps: int | None = None  # stop after this many steps in all (tests, trials); resumes at the next epoch
    log_every: int = 10
    resume: bool = False
    force: bool = False

    def check(self) -> None:
        problems = [(not 0 <= self.mask_probability <= 1, "--mask-probability must be in [0, 1]"),
                     (self.distill_weight < 0, "--distill-weight must be >= 0"),
                     (self.unmasked_weight < 0, "--unmasked-weight must be >= 0"),
                     (not 0 <= self.augment_probability <= 1, "--augment-probability must be in [0, 1]"),
                     (not 0 <= self.validation_people < 1, "--validation-people must be in [0, 1)"),
                     (not self.mask_looks or any(look not in LOOKS for look in self.mask_looks),
                      f"--mask-looks must name some of {', '.join(LOOKS)}"),
                     (self.distill_weight == 0 and not self.margin_loss, "both losses are off: nothing to learn"),
                     (self.epochs < 1 or self.batch_size < 2, "need --epochs >= 1 and --batch-size >= 2"),
                     (self.workers < 0, "--workers must be >= 0"),
                     (self.lr <= 0, "--lr must be positive")]
        for failed, message in problems:
            if failed:
                raise MfrError(message)


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


class MaskInvTrainer:
    """Loader-style: the constructor stores the configuration, ``__call__`` trains and writes ``out``."""

    def __init__(self, config: MaskInvConfig) -> None:
        config.check()
        self.config = config

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> TrainingResult:
        config, out = self.config, Path(self.config.out)
        self.prepare_out_dir(out)
        if config.threads:
            torch.set_num_threads(config.threads)
        teacher = load_teacher(config.teacher, config.model)
        spec = teacher.entry.spec
        data, validator = self.training_and_validation(teacher, log, progress)
        log(f"training data: {len(data)} faces of {len(data.people)} people from {data.source}")
        images = load_faces(data, spec, out, progress)
        log("teacher embeddings of the unmasked faces (and their mirror images)")
        targets = teacher.raw_embeddings_and_mirrors(images, spec, config.device, progress)
        student = teacher.student(from_scratch=config.from_scratch).to(config.device)
        head = ElasticArcFace(targets.shape[2], len(data.people), config.scale, config.margin, config.margin_std,
                              centres=class_centres(targets, data.labels, len(data.people))).to(config.device)
        optimizer = torch.optim.SGD([*student.parameters(), *head.parameters()], lr=config.lr,
                                    momentum=config.momentum, weight_decay=config.weight_decay)
        rows, validation, start_epoch, step = self.restore(out, student, head, optimizer, log)
        if validator is not None and not validation:
            validation.append({"epoch": 0, **validator(student, config.device)})
            log(f"validation before training: {format_validation(validation[-1])}")
        looks = TrainingLooks(config.mask_looks, config.seed,
                              TRAINING_FAMILIES if validator is not None else DEFAULT_FAMILIES)
        batches = TrainingBatches(images, data.keys(), looks, spec, config.mask_probability,
                                  config.augment_probability, config.seed)
        started = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
        done = start_epoch
        for epoch in range(start_epoch, config.epochs):
            set_lr(optimizer, learning_rate(config, epoch))
            plans = epoch_plan(config.seed, epoch, len(data), config.batch_size, step, config.max_steps)
            student.train()
            freeze_batchnorm(student)
            label = f"epoch {epoch + 1}/{config.epochs}"
            for batch in progress(iterate_batches(batches, plans, config.workers), len(plans), label):
                row = self.step(student, head, optimizer, batch, targets, data.labels)
                step += 1
                if step % config.log_every == 0 or step == 1:
                    rows.append({"step": step, "epoch": epoch, "lr": learning_rate(config, epoch), **row,
                                 "seconds": round(time.perf_counter() - started, 2)})
                if config.max_steps is not None and step >= config.max_steps:
                    break
            done = epoch + 1
            if validator is not None:
                validation.append({"epoch": done, **validator(student, config.device)})
            self.checkpoint(out, student, head, optimizer, done, step, rows, validation)
            log(f"epoch {epoch + 1}: step {step}, loss {rows[-1]['loss']:.4f}, distill {rows[-1]['distill']:.5f}, "
                f"cosine to teacher masked {rows[-1]['cosine_masked']:.4f} / unmasked "
                f"{rows[-1]['cosine_unmasked']:.4f}")
            if validator is not None:
                log(f"validation after epoch {done}: {format_validation(validation[-1])}")
            if config.max_steps is not None and step >= config.max_steps:
                break
        seconds = round(time.perf_counter() - started, 2)
        student_path = out / STUDENT_NAME
        save_weights(student, student_path)
        self.write_logs(out, rows, validation, data, teacher, seconds, step)
        log(f"wrote {student_path} after {step} steps in {seconds:.0f} s")
        return TrainingResult(teacher.entry.name, step, done, seconds, rows[0] if rows else {},
                              rows[-1] if rows else {}, student_path, rows, validation)

    def training_and_validation(self, teacher: Teacher, log: Callable[[str], None],
                                progress: Progress) -> tuple[TrainingSet, Validator | None]:
        """The training faces, and the validator of the people set aside from them (None without)."""
        config = self.config
        data = read_image_folder(config.data) if config.data is not None else lfw_demo_split()
        return set_aside_validation(data, config.validation_people, config.seed, teacher, teacher.entry.spec,
                                    config.device, log, progress)

    def prepare_out_dir(self, out: Path) -> None:
        prepare_out_dir(out, self.config.resume, self.config.force,
                        (STUDENT_NAME, LOG_CSV, LOG_JSON, LOSS_PNG, FACES_NAME, FACES_NAME + ".sha256"))

    def step(self, student: nn.Module, head: ElasticArcFace, optimizer: torch.optim.Optimizer, batch: Batch,
             targets: np.ndarray, all_labels: np.ndarray) -> dict[str, float]:
        config = self.config
        indices, masked, mirrored = batch.indices, batch.masked, batch.mirrored
        inputs = batch.inputs.to(config.device)
        target = torch.from_numpy(targets[indices, mirrored.astype(np.int64)]).to(config.device)
        labels = torch.from_numpy(all_labels[indices]).to(config.device)
        margins = torch.Generator().manual_seed(batch.margin_seed)  # the per-sample margins
        embeddings = student(inputs)
        weights = torch.from_numpy(np.where(masked, 1.0, config.unmasked_weight).astype(np.float32)).to(config.device)
        distill = distillation_loss(embeddings, target, weights)
        margin = (head(embeddings, labels, margins) if config.margin_loss
                  else torch.zeros((), device=inputs.device))
        loss = config.distill_weight * distill + margin
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.clip_grad)
        optimizer.step()
        with torch.no_grad():
            cosine = (nn.functional.normalize(embeddings) * nn.functional.normalize(target)).sum(1).cpu().numpy()
        return {"loss": loss.item(), "distill": distill.item(), "margin": margin.item(),
                "cosine_masked": float(cosine[masked].mean()) if masked.any() else float("nan"),
                "cosine_unmasked": float(cosine[~masked].mean()) if (~masked).any() else float("nan")}

    def restore(self, out: Path, student: nn.Module, head: nn.Module, optimizer: torch.optim.Optimizer,
                log: Callable[[str], None]) -> tuple[list[dict[str, float]], list[dict[str, float]], int, int]:
        if not self.config.resume:
            return [], [], 0, 0
        state = load_state(out, maskinv_fingerprint(self.config), self.config.device)
        student.load_state_dict(state["student"], strict=True)
        head.load_state_dict(state["head"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        log(f"resuming after epoch {state['epoch']} (step {state['step']})")
        return list(state["log"]), list(state["validation"]), int(state["epoch"]), int(state["step"])

    def checkpoint(self, out: Path, student: nn.Module, head: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                   step: int, rows: list[dict[str, float]], validation: list[dict[str, float]]) -> None:
        save_atomic({"student": student.state_dict(), "head": head.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "step": step, "log": rows, "validation": validation,
                     "config": maskinv_fingerprint(self.config)}, out / STATE_NAME)

    def write_logs(self, out: Path, rows: list[dict[str, float]], validation: list[dict[str, float]],
                   data: TrainingSet, teacher: Teacher, seconds: float, steps: int) -> None:
        write_log_csv(out / LOG_CSV, rows, LOG_FIELDS)
        summary = {"config": config_summary(self.config),
                   "teacher": teacher.describe(), "data": data.summary(),
                   "steps": steps, "seconds": seconds, "first": rows[0] if rows else None,
                   "last": rows[-1] if rows else None, "validation": validation}
        write_json_atomic(out / LOG_JSON, summary)
        plot_losses(rows, out / LOSS_PNG)


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
    figure.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
