"""MEER training: one joint multi-task training of the recognition network and the restoring decoder
(see ``mfr.models.meer``).

Per step, a batch of faces, each masked with probability p in one of MaskInv's looks and mirrored with
probability 1/2, with its clean face and the pixels its mask hides (``g2d_batches.InpaintingBatches``):

- identity: 1 - cosine between the student's embedding and the frozen teacher's embedding of the same
  face unmasked (``--margin-loss`` adds ElasticFace-Arc over the training identities, as in MaskInv);
- mask map: the decoupling module's attention against the share of each 8x8-pixel cell the mask hides
  (binary cross-entropy), so the map points at the mask and the identity part keeps the visible face;
- reconstruction: the decoder restores the unmasked face from the identity part; L1, hidden pixels
  weighted ``hidden_weight``;
- identity-preserving (after ``warmup_epochs``, once the decoder draws faces): the restored face passed
  back through the recognition network must give the teacher's embedding of the real unmasked face.
  That second pass uses the batch-norm statistics as they are (eval mode), so blurred restorations do
  not shift the statistics real faces are normalised with; gradients reach both network and decoder.

Where trunk and head start (``init``): "teacher" (the default) makes them the teacher's, with its weights
(``mfr.models.split``); only the decoupling module and the decoder are new. The teacher's layers then learn
at ``teacher_lr_scale`` of the rate and keep their batch-norm statistics (as MaskInv's student does), so
the new parts' first, random outputs do not wash out what they knew. "random" is the from-scratch
reconstruction, kept as the ablation it is at this scale. The defaults are the kept recipe for "teacher"
(``recipes.MEER_RECIPES``: 6 epochs, 2 of warm-up, the margin term); the CLI gives "random" its own. A
share of the training people is set aside (``validation_people``) and the student scored on them before
training and after every epoch (``train_log.json``'s "validation"): options are chosen there, never on the
judging sets.

Ablations in the same number of epochs: ``decoupling=False`` (the head reads the trunk's features; no
mask map) and ``synthesis=False`` (no decoder: neither reconstruction nor identity-preserving loss).
AdamW with a cosine decay over the whole run; seeded by (seed, epoch, step), resumable after any epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from mfr.atomic import atomic_file
from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.errors import MfrError
from mfr.models.blocks import count_macs
from mfr.models.meer import MEERNet, MEERRestorer
from mfr.progress import Progress, no_progress
from mfr.runtime.preprocess import denormalize
from mfr.spec import PreprocessSpec
from mfr.training.distillation import DistillationSet, distillation_set
from mfr.training.face_sheet import labelled_rows, sheet_plan
from mfr.training.fit import TeacherRun, Trainer, fit
from mfr.training.g2d_batches import InpaintingBatch, InpaintingBatches
from mfr.training.g2d_losses import masked_l1
from mfr.training.looks import TRAINING_FAMILIES, TrainingLooks
from mfr.training.losses import ElasticArcFace
from mfr.training.maskinv import class_centres
from mfr.training.meer_losses import identity_loss, mask_map_iou, mask_map_loss
from mfr.training.recipes import MEER_RECIPES
from mfr.training.run_dir import (
    config_fingerprint,
    freeze_batchnorm,
    save_weights,
)
from mfr.training.schedule import cosine_lr, pretrained_groups, stage_summary
from mfr.training.teacher import INITS

STUDENT_NAME, RESTORER_NAME = "student.pt", "restorer.pt"
SHEET_PNG = "restored.png"
TERMS = ("identity", "margin", "mask_map", "reconstruction", "identity_preserving")
LOG_FIELDS = ["step", "epoch", "stage", "lr", "loss", *TERMS, "mask_iou", "cosine_masked", "cosine_unmasked",
              "seconds"]


TEACHER = MEER_RECIPES["teacher"]  # the defaults below; --init random's are in MEER_RECIPES["random"]


@dataclass(frozen=True, kw_only=True)
class MEERConfig(TeacherRun):
    init: str = "teacher"  # "teacher": trunk and head start as the teacher's; "random": the from-scratch ablation
    teacher_lr_scale: float = 0.1  # --init teacher: the teacher's layers learn at this share of --lr
    decoupling: bool = True  # False: the ablation without the mask decoupling module
    synthesis: bool = True  # False: the ablation without decoder, reconstruction and identity-preserving loss
    epochs: int = TEACHER.epochs
    warmup_epochs: int = TEACHER.warmup_epochs  # epochs before the identity-preserving loss starts
    identity_weight: float = 1.0
    margin_loss: bool = TEACHER.margin_loss
    mask_map_weight: float = 1.0
    reconstruction_weight: float = 1.0
    preserving_weight: float = 1.0
    hidden_weight: float = 5.0
    scale: float = 64.0
    margin: float = 0.5
    margin_std: float = 0.05
    lr: float = 2e-3
    weight_decay: float = 1e-4

    def problems(self) -> list[tuple[bool, str]]:
        return super().problems() + [
            (self.epochs < 1 or self.batch_size < 2, "need --epochs >= 1 and --batch-size >= 2"),
            (not 0 <= self.warmup_epochs <= self.epochs, "--warmup-epochs must be in [0, --epochs]"),
            (min(self.identity_weight, self.mask_map_weight, self.reconstruction_weight,
                 self.preserving_weight) < 0, "loss weights must be >= 0"),
            (self.identity_weight == 0 and not self.margin_loss,
             "no identity loss (--identity-weight 0 without --margin-loss): nothing to recognise with"),
            (self.hidden_weight < 1, "--hidden-weight must be >= 1"),
            (self.lr <= 0, "--lr must be positive"),
            (self.init not in INITS, f"--init must be one of {', '.join(INITS)}"),
            (not 0 < self.teacher_lr_scale <= 1, "--teacher-lr-scale must be in (0, 1]")]

    @property
    def method(self) -> str:
        """The student's registry entry (``-<teacher>`` added with ``--init teacher``)."""
        return "meer" if self.decoupling else "meer-plain"

    def schedule(self) -> list[str]:
        """The stage of every epoch: warm-up (no identity-preserving loss yet), then joint."""
        warmup = self.warmup_epochs if self.synthesis else 0
        return ["warm-up"] * warmup + ["joint"] * (self.epochs - warmup)


@dataclass
class MEERResult:
    model: str  # the registry entry of the student, for exporting it
    steps: int
    epochs_done: int
    seconds: float
    stages: dict[str, dict[str, Any]]
    student: Path
    restorer: Path | None
    parameters: int
    macs: int
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    validation: list[dict[str, Any]] = field(default_factory=list)  # before training, then per epoch


class MEERTrainer(Trainer):
    outputs = (STUDENT_NAME, RESTORER_NAME, SHEET_PNG)
    config: MEERConfig

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> MEERResult:
        config, out = self.config, Path(self.config.out)
        teacher = self.begin()
        torch.manual_seed(config.seed)
        entry, net = teacher.student_on(config.method, config.init)
        assert isinstance(net, MEERNet)
        spec = entry.spec
        start = distillation_set(teacher, config.data, spec, out, config.device, log, progress, spec.embedding_dim,
                                 config.validation_people, config.seed)
        restorer = MEERRestorer(net.channels, net.stride) if config.synthesis else None
        head = (ElasticArcFace(start.targets.shape[2], len(start.data.people), config.scale, config.margin,
                               config.margin_std, class_centres(start.targets, start.data.labels,
                                                                len(start.data.people)))
                if config.margin_loss else None)
        modules = nn.ModuleDict({"net": net, **({"restorer": restorer} if restorer else {}),
                                 **({"head": head} if head else {})}).to(config.device)
        looks = TrainingLooks(config.mask_looks, config.seed,
                              TRAINING_FAMILIES if start.validator is not None else DEFAULT_FAMILIES)
        method = MEERMethod(config, net, restorer, modules, start, looks, spec)
        validator = start.validator
        record = fit(method, self.fit_options(len(start.data), config_fingerprint(config)),
                     (lambda: validator(net, config.device)) if validator is not None else None, log, progress)
        student_path, restorer_path = out / STUDENT_NAME, out / RESTORER_NAME
        save_weights(net, student_path)
        if restorer is not None:
            save_weights(restorer, restorer_path)
        parameters = sum(p.numel() for p in net.parameters())
        macs = count_macs(net.cpu())
        stages = stage_summary(record.rows)
        self.write_logs(record, LOG_FIELDS, start.teacher, start.data, schedule=method.schedule, stages=stages,
                        student={"model": entry.name, "init": config.init, "parameters": parameters, "macs": macs})
        log(f"wrote {student_path} after {record.steps} steps in {record.seconds:.0f} s")
        return MEERResult(entry.name, record.steps, record.epochs_done, record.seconds, stages, student_path,
                          restorer_path if restorer is not None else None, parameters, macs, record.rows,
                          record.validation)


class MEERMethod:
    """MEER for ``fit``: one joint training (after a warm-up without the identity-preserving loss), one AdamW
    (the teacher's layers at ``teacher_lr_scale``) with a cosine decay over the whole run."""

    fresh_optimizer_per_stage = False
    clip_grad = None

    def __init__(self, config: MEERConfig, net: MEERNet, restorer: MEERRestorer | None, modules: nn.ModuleDict,
                 start: DistillationSet, looks: TrainingLooks, spec: PreprocessSpec) -> None:
        self.config, self.net, self.restorer, self.modules, self.start = config, net, restorer, modules, start
        self.looks, self.spec = looks, spec
        self.schedule = config.schedule()
        self.training_batches = InpaintingBatches(start.images, start.keys(), looks, spec, "masks", config.seed,
                                                  config.mask_probability)

    def state(self) -> dict[str, Any]:
        return self.modules.state_dict()

    def load(self, state: dict[str, Any]) -> None:
        self.modules.load_state_dict(state, strict=True)

    def optimizer(self, stage: str) -> torch.optim.Optimizer:
        config, net = self.config, self.net
        pretrained = [*net.trunk.parameters(), *net.head.parameters()] if config.init == "teacher" else []
        taken = {id(p) for p in pretrained}
        new = [p for p in self.modules.parameters() if id(p) not in taken]
        return torch.optim.AdamW(pretrained_groups(new, pretrained, config.teacher_lr_scale), lr=config.lr,
                                 weight_decay=config.weight_decay)

    def learning_rate(self, epoch: int, number: int, per_epoch: int) -> float:
        config = self.config
        return cosine_lr(config.lr, (epoch * per_epoch + number) / (config.epochs * per_epoch))

    def batches(self, stage: str) -> InpaintingBatches:
        return self.training_batches

    def begin_epoch(self, stage: str) -> None:
        pass

    def end_epoch(self, stage: str) -> None:
        write_sheet(Path(self.config.out) / SHEET_PNG, self.net, self.restorer, self.start, self.looks, self.spec,
                    self.config)

    def describe(self, row: dict[str, Any]) -> str:
        return f"loss {row.get('loss', float('nan')):.4f}, mask-map IoU {row.get('mask_iou', float('nan')):.3f}"

    def losses(self, stage: str, batch: InpaintingBatch, at: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted terms on ``batch`` at (epoch, step); identity-preserving in the joint stage."""
        config, device, net, modules, start = self.config, self.config.device, self.net, self.modules, self.start
        modules.train()
        if config.init == "teacher":  # the teacher's layers keep the statistics they were trained with (MaskInv's)
            freeze_batchnorm(net.trunk)
            freeze_batchnorm(net.head)
        inputs, clean, hidden = batch.inputs.to(device), batch.targets.to(device), batch.hidden.to(device)
        teacher = torch.from_numpy(start.targets[batch.indices, batch.mirrored.astype(np.int64)]).to(device)
        parts = net.parts(inputs)
        terms: dict[str, torch.Tensor] = {"identity": identity_loss(parts.embedding, teacher)}
        figures: dict[str, float] = {}
        if "head" in modules:
            labels = torch.from_numpy(start.data.labels[batch.indices]).to(device)
            margins = torch.Generator().manual_seed(int(np.random.default_rng([config.seed, *at, 6]).integers(2**62)))
            terms["margin"] = modules["head"](parts.embedding, labels, margins)
        if parts.mask_logits is not None:
            terms["mask_map"] = mask_map_loss(parts.mask_logits, hidden)
            figures["mask_iou"] = mask_map_iou(parts.mask_logits.detach(), hidden)
        if "restorer" in modules:
            restored = modules["restorer"](parts.identity)
            terms["reconstruction"] = masked_l1(restored, clean, hidden, config.hidden_weight)
            if stage == "joint":
                net.eval()  # the batch-norm statistics stay those of real faces
                terms["identity_preserving"] = identity_loss(net(restored), teacher)
                net.train()
        weights = {"identity": config.identity_weight, "margin": 1.0, "mask_map": config.mask_map_weight,
                   "reconstruction": config.reconstruction_weight, "identity_preserving": config.preserving_weight}
        loss = sum((weights[name] * value for name, value in terms.items()), torch.zeros((), device=device))
        with torch.no_grad():
            cosine = nn.functional.cosine_similarity(parts.embedding, teacher).cpu().numpy()
        covered = batch.covered
        return loss, {**{name: value.item() for name, value in terms.items()}, **figures,
                      "cosine_masked": float(cosine[covered].mean()) if covered.any() else float("nan"),
                      "cosine_unmasked": float(cosine[~covered].mean()) if (~covered).any() else float("nan")}


def write_sheet(path: Path, net: MEERNet, restorer: MEERRestorer | None, start: DistillationSet,
                looks: TrainingLooks, spec: PreprocessSpec, config: MEERConfig) -> None:
    """Masked training faces, where the mask map points, the restored faces (a synthesis), the originals."""
    batch = InpaintingBatches(start.images, start.keys(), looks, spec, "masks", config.seed)[
        sheet_plan(len(start.images), config.seed)]
    net.eval()
    with torch.no_grad():
        parts = net.parts(batch.inputs.to(config.device))
        restored = None if restorer is None else restorer.eval()(parts.identity).cpu().numpy()
    masked = denormalize(batch.inputs.numpy(), spec)
    rows: list[tuple[str, np.ndarray]] = [("masked", masked)]
    if parts.mask_logits is not None:
        heat = torch.sigmoid(parts.mask_logits).cpu().numpy()[:, 0]
        size = masked.shape[1:3][::-1]
        overlays = [cv2.addWeighted(face, 0.5, cv2.applyColorMap(
            cv2.resize((255 * h).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_JET), 0.5, 0)
            for face, h in zip(masked, heat, strict=True)]
        rows.append(("mask map", np.stack(overlays)))
    if restored is not None:
        rows.append(("restored\n(a synthesis)", denormalize(restored, spec)))
    rows.append(("original", denormalize(batch.targets.numpy(), spec)))
    with atomic_file(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), labelled_rows(rows)):
            raise MfrError(f"could not write {path}")
