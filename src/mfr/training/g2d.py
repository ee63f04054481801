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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfr.atomic import atomic_file, write_json_atomic
from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.errors import MfrError
from mfr.models.blocks import count_macs
from mfr.models.g2d import G2DInpainter, G2DNet
from mfr.models.split import split_recognizer
from mfr.progress import Progress, no_progress
from mfr.runtime.preprocess import denormalize
from mfr.spec import PreprocessSpec
from mfr.training.batches import FACES_NAME, Batch, TrainingBatches, epoch_plan, iterate_batches
from mfr.training.data import TrainingSet
from mfr.training.distillation import distillation_set
from mfr.training.face_sheet import labelled_rows, sheet_plan
from mfr.training.g2d_batches import InpaintingBatch, InpaintingBatches
from mfr.training.g2d_losses import ANGLE_WEIGHT, DISTANCE_WEIGHT, masked_l1, rkd_angle_loss, rkd_distance_loss
from mfr.training.looks import LOOKS, TRAINING_FAMILIES, TrainingLooks
from mfr.training.recipes import G2D_RECIPES
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
from mfr.training.schedule import cosine_lr, pretrained_groups, set_lr, stage_summary
from mfr.training.teacher import INITS, Teacher, load_teacher
from mfr.training.validation import format_validation

METHOD = "g2d"  # the student's registry entry (``-<teacher>`` added with ``--init teacher``)
STAGES = ("holes", "masks", "distill", "classifier")
STUDENT_NAME, CLASSIFIER_NAME = "student.pt", "classifier.pt"
LOSS_PNG, SHEET_PNG = "loss.png", "reconstructions.png"
LOG_FIELDS = ["step", "epoch", "stage", "lr", "loss", "reconstruction", "hidden_l1", "keep", "rkd_distance",
              "rkd_angle", "cosine_loss", "cosine_masked", "cosine_unmasked", "accuracy", "seconds"]
TEACHER = G2D_RECIPES["teacher"]  # the defaults below; --init random's are in G2D_RECIPES["random"]


@dataclass(frozen=True)
class G2DConfig:
    teacher: Path  # a model package (its export weights are used) or a checkpoint
    out: Path
    data: Path | None = None  # aligned ImageFolder; None: the LFW demo split
    model: str = "mobilefacenet"  # architecture of a checkpoint teacher
    init: str = "teacher"  # "teacher": E and R start as the teacher's trunk and head; "random": from scratch
    teacher_lr_scale: float = 0.1  # --init teacher: the teacher's layers learn at this share of a stage's rate
    validation_people: float = 0.1  # share of eligible training people set aside for validation (0: none)
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
    mask_probability: float = 0.5  # share of masked faces in stages 2 and 3
    mask_looks: tuple[str, ...] = LOOKS
    augment_probability: float = 0.5
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    workers: int = 0
    max_steps: int | None = None  # stop after this many steps in all (tests, trials)
    log_every: int = 10
    resume: bool = False
    force: bool = False

    def check(self) -> None:
        problems = [(min(self.holes_epochs, self.masks_epochs, self.classifier_epochs) < 0 or self.distill_epochs < 1,
                     "need --distill-epochs >= 1 and the other stages' epochs >= 0"),
                    (self.batch_size < 3, "--batch-size must be >= 3 (relational distillation needs triplets)"),
                    (not 0 <= self.mask_probability <= 1, "--mask-probability must be in [0, 1]"),
                    (not 0 <= self.augment_probability <= 1, "--augment-probability must be in [0, 1]"),
                    (not self.mask_looks or any(look not in LOOKS for look in self.mask_looks),
                     f"--mask-looks must name some of {', '.join(LOOKS)}"),
                    (min(self.generative_lr, self.distill_lr, self.classifier_lr) <= 0, "learning rates must be > 0"),
                    (self.cosine_weight < 0 or self.hidden_weight < 1, "--cosine-weight >= 0, --hidden-weight >= 1"),
                    (self.workers < 0, "--workers must be >= 0"),
                    (self.init not in INITS, f"--init must be one of {', '.join(INITS)}"),
                    (not 0 < self.teacher_lr_scale <= 1, "--teacher-lr-scale must be in (0, 1]"),
                    (not 0 <= self.validation_people < 1, "--validation-people must be in [0, 1)"),
                    (self.distill_encoder not in ("frozen", "fine-tune"), "--distill-encoder: frozen or fine-tune"),
                    (self.keep_weight < 0 or (self.keep_weight > 0 and self.init != "teacher"),
                     "--keep-weight must be >= 0, and needs --init teacher (features to keep)")]
        for failed, message in problems:
            if failed:
                raise MfrError(message)

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


class G2DTrainer:
    """Loader-style: the constructor stores the configuration, ``__call__`` trains and writes ``out``."""

    def __init__(self, config: G2DConfig) -> None:
        config.check()
        self.config = config
        self.kept: nn.Module | None = None  # the teacher's trunk, frozen, with --keep-weight

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> G2DResult:
        config, out = self.config, Path(self.config.out)
        prepare_out_dir(out, config.resume, config.force,
                        (STUDENT_NAME, CLASSIFIER_NAME, LOG_CSV, LOG_JSON, LOSS_PNG, SHEET_PNG, FACES_NAME,
                         FACES_NAME + ".sha256"))
        if config.threads:
            torch.set_num_threads(config.threads)
        teacher = load_teacher(config.teacher, config.model)
        torch.manual_seed(config.seed)
        entry, net = teacher.student_on(METHOD, config.init)
        assert isinstance(net, G2DNet)
        spec = entry.spec
        start = distillation_set(teacher, config.data, spec, out, config.device, log, progress,
                                 spec.embedding_dim if config.cosine_weight > 0 else None, config.validation_people,
                                 config.seed)
        data, images, targets = start.data, start.images, start.targets
        modules = G2DModules(net, G2DInpainter(net), nn.Linear(spec.embedding_dim or 128, len(data.people)))
        for module in (modules.net, modules.inpainter, modules.head):
            module.to(config.device)
        # what E must keep (--keep-weight): the teacher's own trunk, frozen
        self.kept = (split_recognizer(teacher.model())[0].to(config.device).eval().requires_grad_(False)
                     if config.keep_weight > 0 else None)
        schedule = config.schedule()
        keys = start.keys()
        looks = TrainingLooks(config.mask_looks, config.seed,
                              TRAINING_FAMILIES if start.validator is not None else DEFAULT_FAMILIES)
        datasets: dict[str, Any] = {
            "holes": InpaintingBatches(images, keys, looks, spec, "holes", config.seed),
            "masks": InpaintingBatches(images, keys, looks, spec, "masks", config.seed),
            "distill": TrainingBatches(images, keys, looks, spec, config.mask_probability,
                                       config.augment_probability, config.seed)}
        datasets["classifier"] = datasets["distill"]
        rows, validation, start_epoch, step, optimizer_state = self.restore(out, modules, log)
        if start.validator is not None and not validation:
            validation.append({"epoch": 0, **start.validator(net, config.device)})
            log(f"validation before training: {format_validation(validation[-1])}")
        started = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
        done = start_epoch
        optimizer: torch.optim.Optimizer | None = None
        for epoch in range(start_epoch, len(schedule)):
            stage = schedule[epoch]
            if epoch == start_epoch or schedule[epoch - 1] != stage:
                optimizer = torch.optim.AdamW(modules.trained_in(stage, config), lr=config.base_lr(stage),
                                              weight_decay=config.weight_decay)
                if optimizer_state is not None and epoch > 0 and schedule[epoch - 1] == stage:
                    optimizer.load_state_dict(optimizer_state)
                optimizer_state = None
            assert optimizer is not None
            plans = epoch_plan(config.seed, epoch, len(data), config.batch_size, step, config.max_steps)
            stage_epochs, in_stage = schedule.count(stage), epoch - schedule.index(stage)
            label = f"epoch {epoch + 1}/{len(schedule)} ({stage})"
            per_epoch = max(len(data) // config.batch_size, 1)  # steps of a whole epoch (epoch_plan's count)
            for number, batch in enumerate(progress(iterate_batches(datasets[stage], plans, config.workers),
                                                    len(plans), label)):
                lr = cosine_lr(config.base_lr(stage), (in_stage * per_epoch + number) / (stage_epochs * per_epoch))
                set_lr(optimizer, lr)
                row = self.step(stage, modules, optimizer, batch, targets, data.labels)
                step += 1
                if step % config.log_every == 0 or number == 0:
                    rows.append({"step": step, "epoch": epoch, "stage": stage, "lr": lr, **row,
                                 "seconds": round(time.perf_counter() - started, 2)})
                if config.max_steps is not None and step >= config.max_steps:
                    break
            done = epoch + 1
            if stage in ("holes", "masks"):
                write_sheet(out / SHEET_PNG, modules.inpainter, images, keys, looks, spec, config)
            if start.validator is not None:
                validation.append({"epoch": done, "stage": stage, **start.validator(net, config.device)})
            save_atomic({**modules.state(), "optimizer": optimizer.state_dict(), "epoch": done, "step": step,
                         "log": rows, "validation": validation, "config": config_fingerprint(config)},
                        out / STATE_NAME)
            last = rows[-1] if rows else {}
            log(f"epoch {done}/{len(schedule)} ({stage}): step {step}, loss {last.get('loss', float('nan')):.4f}")
            if start.validator is not None:
                log(f"validation after epoch {done}: {format_validation(validation[-1])}")
            if config.max_steps is not None and step >= config.max_steps:
                break
        seconds = round(time.perf_counter() - started, 2)
        student_path = out / STUDENT_NAME
        save_weights(modules.net, student_path)
        save_weights(modules.head, out / CLASSIFIER_NAME, people=data.people)
        parameters = sum(p.numel() for p in modules.net.parameters())
        macs = count_macs(modules.net.cpu())
        stages = stage_summary(rows)
        self.write_logs(out, rows, stages, data, teacher, seconds, step, entry.name, parameters, macs, validation)
        log(f"wrote {student_path} after {step} steps in {seconds:.0f} s")
        return G2DResult(entry.name, step, done, seconds, stages, student_path, parameters, macs, rows, validation)

    def restore(self, out: Path, modules: G2DModules, log: Callable[[str], None]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int, dict[str, Any] | None]:
        if not self.config.resume:
            return [], [], 0, 0, None
        state = load_state(out, config_fingerprint(self.config), self.config.device)
        modules.load(state)
        log(f"resuming after epoch {state['epoch']} (step {state['step']})")
        return (list(state["log"]), list(state.get("validation", [])), int(state["epoch"]), int(state["step"]),
                state["optimizer"])

    def step(self, stage: str, modules: G2DModules, optimizer: torch.optim.Optimizer, batch: Any,
             targets: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        if stage in ("holes", "masks"):
            losses = self.generative_losses(modules, batch)
        elif stage == "distill":
            losses = self.distillation_losses(modules, batch, targets)
        else:
            losses = self.classifier_losses(modules, batch, labels)
        loss = losses.pop("loss")
        assert isinstance(loss, torch.Tensor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), **{k: float(v) for k, v in losses.items()}}

    def generative_losses(self, modules: G2DModules, batch: InpaintingBatch) -> dict[str, Any]:
        config, device = self.config, self.config.device
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

    def distillation_losses(self, modules: G2DModules, batch: Batch, targets: np.ndarray) -> dict[str, Any]:
        config, net = self.config, modules.net
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

    def classifier_losses(self, modules: G2DModules, batch: Batch, labels: np.ndarray) -> dict[str, Any]:
        device = self.config.device
        modules.net.eval()
        modules.head.train()
        with torch.no_grad():
            embeddings = modules.net(batch.inputs.to(device))
        target = torch.from_numpy(labels[batch.indices]).to(device)
        logits = modules.head(embeddings)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy.item()}

    def write_logs(self, out: Path, rows: list[dict[str, Any]], stages: dict[str, dict[str, Any]], data: TrainingSet,
                   teacher: Teacher, seconds: float, steps: int, model: str, parameters: int, macs: int,
                   validation: list[dict[str, Any]]) -> None:
        write_log_csv(out / LOG_CSV, rows, LOG_FIELDS)
        write_json_atomic(out / LOG_JSON, {
            "config": config_summary(self.config), "teacher": teacher.describe(),
            "data": data.summary(),
            "schedule": self.config.schedule(), "steps": steps, "seconds": seconds, "stages": stages,
            "validation": validation,
            "student": {"model": model, "init": self.config.init, "parameters": parameters, "macs": macs}})
        plot_stages(rows, out / LOSS_PNG)


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
    figure.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
