"""G2D training: three modules learned greedily, one after another (see ``mfr.models.g2d``).

1. generative (stages ``holes`` then ``masks``): E + the inpainting decoder learn to reconstruct the
   uncovered face, first from random free-form holes (pretraining on general inpainting), then from
   synthetic face masks (finetuning); L1 with extra weight on the hidden pixels. A sheet of covered
   faces, reconstructions and originals is written after every generative epoch.
2. discriminative (``distill``): E frozen; the reformer R learns from faces masked with probability p so
   that the relations between its embeddings (pairwise distances, triplet angles: relational knowledge
   distillation) match those between the frozen teacher's embeddings of the same faces *unmasked*.
   Both sides are L2-normalised first, so the relations are those of the hypersphere the embeddings are
   compared on. Optionally (``cosine_weight``) a direct cosine term pulls the student's embedding to the
   teacher's, which makes it comparable with templates the teacher enrolled; it is logged on its own.
3. classifier (``classifier``): a linear layer + softmax over the training identities on R's output, E
   and R frozen. Closed-set only: the deployed model is E -> R and its embedding.

Where E and R start (``init``): "teacher" (the default) makes them the teacher's trunk and head with its
weights (``mfr.models.split``), so stage 1 adapts features that already know identity to inpainting and
stage 2 starts from a reformer that already maps them to the teacher's space; the teacher's layers learn
at ``teacher_lr_scale`` of each stage's rate and keep their batch-norm statistics (as MaskInv's student
does). ``keep_weight`` adds, in stage 1, a term that keeps E's map of unmasked faces near the teacher
trunk's (whether inpainting destroys what E knew is measured with and without it);
``distill_encoder="fine-tune"`` trains E with R in stage 2 instead of freezing it. "random" is the
from-scratch reconstruction, kept as the ablation it is at this scale. The schedule defaults are the
kept recipe for "teacher" (``recipes.G2D_RECIPES``: 1 + 1 + 4 epochs, keep term, E fine-tuned, cosine term);
the CLI gives "random" the from-scratch schedule.

The ablation (``generative=False``) skips stage 1 and trains E and R together with the same
distillation, for as many epochs as the generative run spends in stages 1 and 2, so what the inpainting
pretraining adds is measured, not assumed. A share of the training people is set aside
(``validation_people``) and the student scored on them before training and after every epoch
(``train_log.json``'s "validation"): options are chosen there, never on the judging sets.

Every stage is resumable: a checkpoint after each epoch holds every module, the stage's optimizer and
the log; batches and learning rates depend only on (seed, epoch, step), so a resumed run continues as
the uninterrupted one would (compare ``maskinv``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfr.atomic import atomic_file
from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.errors import MfrError
from mfr.models.blocks import count_macs
from mfr.models.g2d import G2DInpainter, G2DNet
from mfr.models.split import split_recognizer
from mfr.progress import Progress, no_progress
from mfr.runtime.preprocess import denormalize
from mfr.spec import PreprocessSpec
from mfr.training.batches import Batch, TrainingBatches
from mfr.training.distillation import DistillationSet, distillation_set
from mfr.training.face_sheet import labelled_rows, sheet_plan
from mfr.training.fit import TeacherRun, Trainer, fit
from mfr.training.g2d_batches import InpaintingBatch, InpaintingBatches
from mfr.training.g2d_losses import ANGLE_WEIGHT, DISTANCE_WEIGHT, masked_l1, rkd_angle_loss, rkd_distance_loss
from mfr.training.looks import TRAINING_FAMILIES, TrainingLooks
from mfr.training.recipes import G2D_RECIPES
from mfr.training.run_dir import (
    config_fingerprint,
    freeze_batchnorm,
    save_figure,
    save_weights,
)
from mfr.training.schedule import cosine_lr, pretrained_groups, stage_summary
from mfr.training.teacher import INITS

METHOD = "g2d"  # the student's registry entry (``-<teacher>`` added with ``--init teacher``)
STAGES = ("holes", "masks", "distill", "classifier")
STUDENT_NAME, CLASSIFIER_NAME = "student.pt", "classifier.pt"
LOSS_PNG, SHEET_PNG = "loss.png", "reconstructions.png"
LOG_FIELDS = ["step", "epoch", "stage", "lr", "loss", "reconstruction", "hidden_l1", "keep", "rkd_distance",
              "rkd_angle", "cosine_loss", "cosine_masked", "cosine_unmasked", "accuracy", "seconds"]
TEACHER = G2D_RECIPES["teacher"]  # the defaults below; --init random's are in G2D_RECIPES["random"]


@dataclass(frozen=True, kw_only=True)
class G2DConfig(TeacherRun):
    init: str = "teacher"  # "teacher": E and R start as the teacher's trunk and head; "random": from scratch
    teacher_lr_scale: float = 0.1  # --init teacher: the teacher's layers learn at this share of a stage's rate
    distill_encoder: str = TEACHER.distill_encoder  # stage 2: E "frozen" (the paper's) or "fine-tune"d with R
    keep_weight: float = TEACHER.keep_weight  # stage 1, --init teacher: E's unmasked map kept near the teacher's
    generative: bool = True  # False: the ablation (no stage 1; E trained with R from random weights)
    holes_epochs: int = TEACHER.holes_epochs
    masks_epochs: int = TEACHER.masks_epochs
    distill_epochs: int = TEACHER.distill_epochs
    classifier_epochs: int = 1
    hidden_weight: float = 5.0  # reconstruction weight of hidden pixels relative to visible ones
    generative_lr: float = 2e-3
    distill_lr: float = 2e-3
    classifier_lr: float = 1e-2
    weight_decay: float = 1e-4
    cosine_weight: float = TEACHER.cosine_weight  # direct cosine term towards the teacher's embedding (0: RKD only)
    augment_probability: float = 0.5

    def problems(self) -> list[tuple[bool, str]]:
        return super().problems() + [
            (min(self.holes_epochs, self.masks_epochs, self.classifier_epochs) < 0 or self.distill_epochs < 1,
             "need --distill-epochs >= 1 and the other stages' epochs >= 0"),
            (self.batch_size < 3, "--batch-size must be >= 3 (relational distillation needs triplets)"),
            (not 0 <= self.augment_probability <= 1, "--augment-probability must be in [0, 1]"),
            (min(self.generative_lr, self.distill_lr, self.classifier_lr) <= 0, "learning rates must be > 0"),
            (self.cosine_weight < 0 or self.hidden_weight < 1, "--cosine-weight >= 0, --hidden-weight >= 1"),
            (self.init not in INITS, f"--init must be one of {', '.join(INITS)}"),
            (not 0 < self.teacher_lr_scale <= 1, "--teacher-lr-scale must be in (0, 1]"),
            (self.distill_encoder not in ("frozen", "fine-tune"), "--distill-encoder: frozen or fine-tune"),
            (self.keep_weight < 0 or (self.keep_weight > 0 and self.init != "teacher"),
             "--keep-weight must be >= 0, and needs --init teacher (features to keep)")]

    def schedule(self) -> list[str]:
        """The stage of every epoch, in order."""
        if not self.generative:
            return ["distill"] * (self.holes_epochs + self.masks_epochs + self.distill_epochs) + \
                ["classifier"] * self.classifier_epochs
        return ["holes"] * self.holes_epochs + ["masks"] * self.masks_epochs + ["distill"] * self.distill_epochs + \
            ["classifier"] * self.classifier_epochs

    def base_lr(self, stage: str) -> float:
        return {"holes": self.generative_lr, "masks": self.generative_lr, "distill": self.distill_lr,
                "classifier": self.classifier_lr}[stage]


@dataclass
class G2DResult:
    model: str  # the registry entry of the student, for exporting it
    steps: int
    epochs_done: int
    seconds: float
    stages: dict[str, dict[str, Any]]  # per stage: first and last logged rows, seconds
    student: Path
    parameters: int
    macs: int
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    validation: list[dict[str, Any]] = field(default_factory=list)  # before training, then per epoch


@dataclass
class G2DModules:
    """Everything trained: the deployed network (E -> R), the decoder (through ``inpainter``), the head."""

    net: G2DNet
    inpainter: G2DInpainter
    head: nn.Linear

    def state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "decoder": self.inpainter.decoder.state_dict(),
                "head": self.head.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"], strict=True)
        self.inpainter.decoder.load_state_dict(state["decoder"], strict=True)
        self.head.load_state_dict(state["head"], strict=True)

    def trained_in(self, stage: str, config: G2DConfig) -> list[dict[str, Any]]:
        """The parameter groups ``stage`` trains; with ``--init teacher`` E's and R's at the teacher's scale."""
        encoder, reformer = list(self.net.encoder.parameters()), list(self.net.reformer.parameters())
        if stage in ("holes", "masks"):
            new, old = list(self.inpainter.decoder.parameters()), encoder
        elif stage == "distill":
            new, old = [], (reformer if config.generative and config.distill_encoder == "frozen"
                            else encoder + reformer)
        else:
            new, old = list(self.head.parameters()), []
        if config.init != "teacher":
            new, old = new + old, []
        return pretrained_groups(new, old, config.teacher_lr_scale)


class G2DTrainer(Trainer):
    outputs = (STUDENT_NAME, CLASSIFIER_NAME, LOSS_PNG, SHEET_PNG)
    config: G2DConfig

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> G2DResult:
        config, out = self.config, Path(self.config.out)
        teacher = self.begin()
        torch.manual_seed(config.seed)
        entry, net = teacher.student_on(METHOD, config.init)
        assert isinstance(net, G2DNet)
        spec = entry.spec
        start = distillation_set(teacher, config.data, spec, out, config.device, log, progress,
                                 spec.embedding_dim if config.cosine_weight > 0 else None, config.validation_people,
                                 config.seed)
        data = start.data
        modules = G2DModules(net, G2DInpainter(net), nn.Linear(spec.embedding_dim or 128, len(data.people)))
        for module in (modules.net, modules.inpainter, modules.head):
            module.to(config.device)
        # what E must keep (--keep-weight): the teacher's own trunk, frozen
        kept = (split_recognizer(teacher.model())[0].to(config.device).eval().requires_grad_(False)
                if config.keep_weight > 0 else None)
        looks = TrainingLooks(config.mask_looks, config.seed,
                              TRAINING_FAMILIES if start.validator is not None else DEFAULT_FAMILIES)
        method = G2DMethod(config, modules, start, looks, spec, kept)
        validator = start.validator
        record = fit(method, self.fit_options(len(data), config_fingerprint(config)),
                     (lambda: validator(net, config.device)) if validator is not None else None, log, progress)
        student_path = out / STUDENT_NAME
        save_weights(modules.net, student_path)
        save_weights(modules.head, out / CLASSIFIER_NAME, people=data.people)
        parameters = sum(p.numel() for p in modules.net.parameters())
        macs = count_macs(modules.net.cpu())
        stages = stage_summary(record.rows)
        self.write_logs(record, LOG_FIELDS, teacher, data, schedule=config.schedule(), stages=stages,
                        student={"model": entry.name, "init": config.init, "parameters": parameters, "macs": macs})
        plot_stages(record.rows, out / LOSS_PNG)
        log(f"wrote {student_path} after {record.steps} steps in {record.seconds:.0f} s")
        return G2DResult(entry.name, record.steps, record.epochs_done, record.seconds, stages, student_path,
                         parameters, macs, record.rows, record.validation)

class G2DMethod:
    """G2D for ``fit``: four stages (inpainting with holes, then with masks; distillation; the classifier),
    each with an AdamW of its own over the parts it trains and a cosine decay within the stage."""

    fresh_optimizer_per_stage = True
    clip_grad = None

    def __init__(self, config: G2DConfig, modules: G2DModules, start: DistillationSet, looks: TrainingLooks,
                 spec: PreprocessSpec, kept: nn.Module | None) -> None:
        self.config, self.modules, self.start, self.looks, self.spec = config, modules, start, looks, spec
        self.kept = kept  # the teacher's trunk, frozen, with --keep-weight
        self.schedule = config.schedule()
        keys = start.keys()
        distill = TrainingBatches(start.images, keys, looks, spec, config.mask_probability, config.augment_probability,
                                  config.seed)
        self.datasets: dict[str, Any] = {
            "holes": InpaintingBatches(start.images, keys, looks, spec, "holes", config.seed),
            "masks": InpaintingBatches(start.images, keys, looks, spec, "masks", config.seed),
            "distill": distill, "classifier": distill}

    def state(self) -> dict[str, Any]:
        return self.modules.state()

    def load(self, state: dict[str, Any]) -> None:
        self.modules.load(state)

    def optimizer(self, stage: str) -> torch.optim.Optimizer:
        config = self.config
        return torch.optim.AdamW(self.modules.trained_in(stage, config), lr=config.base_lr(stage),
                                 weight_decay=config.weight_decay)

    def learning_rate(self, epoch: int, number: int, per_epoch: int) -> float:
        stage = self.schedule[epoch]
        stage_epochs, in_stage = self.schedule.count(stage), epoch - self.schedule.index(stage)
        return cosine_lr(self.config.base_lr(stage), (in_stage * per_epoch + number) / (stage_epochs * per_epoch))

    def batches(self, stage: str) -> Any:
        return self.datasets[stage]

    def begin_epoch(self, stage: str) -> None:
        pass

    def end_epoch(self, stage: str) -> None:
        if stage in ("holes", "masks"):
            write_sheet(Path(self.config.out) / SHEET_PNG, self.modules.inpainter, self.start.images, self.start.keys(),
                        self.looks, self.spec, self.config)

    def describe(self, row: dict[str, Any]) -> str:
        return f"loss {row.get('loss', float('nan')):.4f}"

    def losses(self, stage: str, batch: Any, at: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        if stage in ("holes", "masks"):
            losses = self.generative_losses(batch)
        elif stage == "distill":
            losses = self.distillation_losses(batch)
        else:
            losses = self.classifier_losses(batch)
        loss = losses.pop("loss")
        assert isinstance(loss, torch.Tensor)
        return loss, {k: float(v) for k, v in losses.items()}

    def generative_losses(self, batch: InpaintingBatch) -> dict[str, Any]:
        config, device, modules = self.config, self.config.device, self.modules
        modules.inpainter.train()
        self.keep_teacher_statistics(modules.net.encoder)
        hidden = batch.hidden.to(device)
        prediction = modules.inpainter(batch.inputs.to(device))
        target = batch.targets.to(device)
        reconstruction = masked_l1(prediction, target, hidden, config.hidden_weight)
        with torch.no_grad():
            inside = ((prediction - target).abs() * hidden).sum() / (hidden.sum() * 3).clamp_min(1)
        out = {"reconstruction": reconstruction.item(), "hidden_l1": inside.item()}
        loss = reconstruction
        if self.kept is not None:  # E's map of the unmasked face stays near the teacher trunk's
            with torch.no_grad():
                wanted = self.kept(target)
            keep = F.mse_loss(modules.net.encoder(target), wanted) / wanted.pow(2).mean().clamp_min(1e-8)
            loss = loss + config.keep_weight * keep
            out["keep"] = keep.item()
        return {"loss": loss, **out}

    def keep_teacher_statistics(self, module: nn.Module) -> None:
        """With --init teacher, the teacher's layers normalise with the statistics they were trained with (as
        MaskInv's student does): a few thousand masked faces would otherwise shift them."""
        if self.config.init == "teacher":
            freeze_batchnorm(module)

    def distillation_losses(self, batch: Batch) -> dict[str, Any]:
        config, net = self.config, self.modules.net
        inputs = batch.inputs.to(config.device)
        if config.generative and config.distill_encoder == "frozen":
            net.reformer.train()
            net.encoder.eval()
            with torch.no_grad():
                features = net.encoder(inputs)
            self.keep_teacher_statistics(net.reformer)
            embeddings = net.reformer(features)
        else:
            net.train()
            self.keep_teacher_statistics(net)
            embeddings = net(inputs)
        targets = self.start.targets
        teacher = torch.from_numpy(targets[batch.indices, batch.mirrored.astype(np.int64)]).to(config.device)
        student, teacher = F.normalize(embeddings), F.normalize(teacher)
        distance, angle = rkd_distance_loss(student, teacher), rkd_angle_loss(student, teacher)
        cosine = (student * teacher).sum(1)
        cosine_loss = (1 - cosine).mean()
        loss = DISTANCE_WEIGHT * distance + ANGLE_WEIGHT * angle + config.cosine_weight * cosine_loss
        values = cosine.detach().cpu().numpy()
        masked = batch.masked
        return {"loss": loss, "rkd_distance": distance.item(), "rkd_angle": angle.item(),
                "cosine_loss": cosine_loss.item(),
                "cosine_masked": float(values[masked].mean()) if masked.any() else float("nan"),
                "cosine_unmasked": float(values[~masked].mean()) if (~masked).any() else float("nan")}

    def classifier_losses(self, batch: Batch) -> dict[str, Any]:
        device, modules = self.config.device, self.modules
        modules.net.eval()
        modules.head.train()
        with torch.no_grad():
            embeddings = modules.net(batch.inputs.to(device))
        target = torch.from_numpy(self.start.data.labels[batch.indices]).to(device)
        logits = modules.head(embeddings)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy.item()}


def write_sheet(path: Path, inpainter: G2DInpainter, images: np.ndarray, keys: list[str], looks: TrainingLooks,
                spec: PreprocessSpec, config: G2DConfig) -> None:
    """Faces of the training set covered by holes and by masks, what the inpainter draws, the originals."""
    plan = sheet_plan(len(images), config.seed)
    rows: list[tuple[str, np.ndarray]] = []
    inpainter.eval()
    for phase in ("holes", "masks"):
        batch = InpaintingBatches(images, keys, looks, spec, phase, config.seed)[plan]
        with torch.no_grad():
            drawn = inpainter(batch.inputs.to(config.device)).cpu().numpy()
        rows += [(f"covered\n({phase})", denormalize(batch.inputs.numpy(), spec)),
                 ("reconstructed", denormalize(drawn, spec))]
    rows.append(("original", denormalize(batch.targets.numpy(), spec)))
    sheet = labelled_rows(rows)
    with atomic_file(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), sheet):
            raise MfrError(f"could not write {path}")


def plot_stages(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [stage for stage in STAGES if any(r["stage"] == stage for r in rows)]
    if not stages:
        return
    figure, axes = plt.subplots(1, len(stages), figsize=(4 * len(stages), 3.5), squeeze=False)
    for axis, stage in zip(axes[0], stages, strict=True):
        picked = [r for r in rows if r["stage"] == stage]
        steps = [r["step"] for r in picked]
        axis.plot(steps, [r["loss"] for r in picked], label="loss")
        if stage == "distill":
            axis.plot(steps, [r["cosine_loss"] for r in picked], label="1 - cosine to teacher")
        if stage == "classifier":
            axis.plot(steps, [r["accuracy"] for r in picked], label="accuracy")
        axis.set_title(stage)
        axis.set_xlabel("step")
        axis.legend()
    save_figure(figure, path)
