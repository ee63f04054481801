"""One training loop for every method: epochs by stage, the learning rate per step, a checkpoint after every
epoch, resuming, logs, validation.

A method (MaskInv, G2D, MEER) keeps only what is its own: its modules, optimisers, learning-rate
schedule, batches and losses, behind ``TrainingMethod``. ``fit`` runs it:

- each epoch belongs to a stage (``method.schedule``); its batches come from ``epoch_plan`` (seeded by
  seed, epoch and step, so a resumed run draws what the uninterrupted one would have);
- the optimiser is the method's, made at the first epoch run and again at every new stage when
  ``fresh_optimizer_per_stage`` (G2D's stages train different parts);
- per step: the learning rate, the method's losses, backward, optional gradient clipping, the step; a log
  row every ``log_every`` steps and at the first step of every epoch;
- after every epoch: the method's end-of-epoch work (e.g. a sheet of faces), validation, and an atomic
  checkpoint of the modules, the optimiser, the log and the options that shape the result, from which
  ``resume`` continues (refused if the options differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from mfr.atomic import write_json_atomic
from mfr.errors import MfrError
from mfr.progress import Progress, no_progress
from mfr.training.batches import FACES_OUTPUTS, epoch_plan, iterate_batches
from mfr.training.looks import LOOKS
from mfr.training.run_dir import (
    LOG_CSV,
    LOG_JSON,
    STATE_NAME,
    config_summary,
    load_state,
    prepare_out_dir,
    save_atomic,
    write_log_csv,
)
from mfr.training.schedule import set_lr
from mfr.training.teacher import Teacher, load_teacher
from mfr.training.validation import format_validation

Row = dict[str, Any]


class TrainingMethod(Protocol):
    @property
    def schedule(self) -> list[str]:
        """The stage of every epoch."""
        ...

    @property
    def fresh_optimizer_per_stage(self) -> bool:
        ...

    @property
    def clip_grad(self) -> float | None:
        """The largest gradient norm (None: no clipping)."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything trained, for the checkpoint."""
        ...

    def load(self, state: dict[str, Any]) -> None:
        ...

    def optimizer(self, stage: str) -> torch.optim.Optimizer:
        ...

    def learning_rate(self, epoch: int, number: int, per_epoch: int) -> float:
        """The rate at step ``number`` of ``epoch`` (an epoch has ``per_epoch`` steps)."""
        ...

    def batches(self, stage: str) -> Any:
        """What ``iterate_batches`` draws the stage's batches from."""
        ...

    def begin_epoch(self, stage: str) -> None:
        ...

    def losses(self, stage: str, batch: Any, at: tuple[int, int]) -> tuple[torch.Tensor, Row]:
        """The loss to minimise on ``batch`` at (epoch, step), and the figures to log with it."""
        ...

    def end_epoch(self, stage: str) -> None:
        ...

    def describe(self, row: Row) -> str:
        """The end of an epoch's log line: the figures worth watching."""
        ...


@dataclass(frozen=True, kw_only=True)
class TeacherRun:
    """The options of every training run that learns from a frozen teacher, whatever its method (each
    method's configuration adds its own): where from and to, the masked looks, how it runs."""

    teacher: Path  # a model package (its export weights are used) or a checkpoint
    out: Path
    data: Path | None = None  # aligned ImageFolder; None: the LFW demo split
    model: str = "mobilefacenet"  # architecture of a checkpoint teacher (a package names its own)
    validation_people: float = 0.1  # share of eligible training people set aside for validation (0: none)
    mask_probability: float = 0.5  # share of training faces masked
    mask_looks: tuple[str, ...] = LOOKS  # drawn uniformly per masked face
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch CPU threads (0: torch's default)
    workers: int = 0  # processes building batches ahead of the training loop (0: built inline)
    max_steps: int | None = None  # stop after this many steps in all (tests, trials); resumes at the next epoch
    log_every: int = 10
    resume: bool = False
    force: bool = False

    def problems(self) -> list[tuple[bool, str]]:
        """(failed, message) for each check; a method's configuration adds its own to these."""
        return [(not 0 <= self.mask_probability <= 1, "--mask-probability must be in [0, 1]"),
                (not self.mask_looks or any(look not in LOOKS for look in self.mask_looks),
                 f"--mask-looks must name some of {', '.join(LOOKS)}"),
                (not 0 <= self.validation_people < 1, "--validation-people must be in [0, 1)"),
                (self.workers < 0, "--workers must be >= 0")]

    def check(self) -> None:
        for failed, message in self.problems():
            if failed:
                raise MfrError(message)


class Trainer:
    """Loader-style, as every trainer is: the constructor checks and stores the configuration, calling the
    trainer trains and writes ``config.out``. ``outputs`` are the method's own files a new run removes from
    ``out`` (besides the logs, the cached faces and the checkpoint, which every run writes)."""

    outputs: tuple[str, ...] = ()

    def __init__(self, config: TeacherRun) -> None:
        config.check()
        self.config = config

    def begin(self) -> Teacher:
        """What every run does first: its output folder (new, or one to resume), torch's threads, the teacher."""
        config: TeacherRun = self.config
        prepare_out_dir(Path(config.out), config.resume, config.force,
                        (*self.outputs, LOG_CSV, LOG_JSON, *FACES_OUTPUTS))
        if config.threads:
            torch.set_num_threads(config.threads)
        return load_teacher(config.teacher, config.model)

    def write_logs(self, record: FitRecord, fields: list[str], teacher: Teacher, data: Any, **summary: Any) -> None:
        """train_log.csv (a row per logged step, columns ``fields``) and train_log.json (the options, the
        teacher, the data, the run, the method's ``summary``, the validation), which an exported package
        records (``mfr.training.record``)."""
        out = Path(self.config.out)
        write_log_csv(out / LOG_CSV, record.rows, fields)
        write_json_atomic(out / LOG_JSON, {"config": config_summary(self.config), "teacher": teacher.describe(),
                                           "data": data.summary(), "steps": record.steps, "seconds": record.seconds,
                                           **summary, "validation": record.validation})

    def fit_options(self, items: int, fingerprint: dict[str, Any]) -> FitOptions:
        config: TeacherRun = self.config
        return FitOptions(Path(config.out), items, config.batch_size, config.seed, fingerprint, config.device,
                          config.workers, config.max_steps, config.log_every, config.resume)


@dataclass(frozen=True)
class FitOptions:
    out: Path
    items: int  # training faces: an epoch is items // batch_size steps
    batch_size: int
    seed: int
    fingerprint: dict[str, Any]  # the options a resumed run must share (run_dir.config_fingerprint)
    device: str = "cpu"
    workers: int = 0
    max_steps: int | None = None
    log_every: int = 10
    resume: bool = False


@dataclass
class FitRecord:
    rows: list[Row]
    validation: list[Row]
    epochs_done: int
    steps: int
    seconds: float
    first: Row = field(default_factory=dict)
    last: Row = field(default_factory=dict)


@dataclass
class _RunState:
    rows: list[Row]
    validation: list[Row]
    epoch: int  # epochs done
    step: int
    optimizer_state: dict[str, Any] | None


def fit(method: TrainingMethod, options: FitOptions, validate: Callable[[], Row] | None = None,
        log: Callable[[str], None] = print, progress: Progress = no_progress) -> FitRecord:
    """Train ``method`` from its first epoch or, with ``options.resume``, from its last checkpoint;
    ``validate`` scores the model on the people set aside, before training and after every epoch."""
    state = _restore(method, options, log)
    if validate is not None and not state.validation:
        state.validation.append({"epoch": 0, **validate()})
        log(f"validation before training: {format_validation(state.validation[-1])}")
    schedule = method.schedule
    started = time.perf_counter() - (state.rows[-1]["seconds"] if state.rows else 0.0)
    done, step = state.epoch, state.step
    optimizer: torch.optim.Optimizer | None = None
    for epoch in range(state.epoch, len(schedule)):
        stage = schedule[epoch]
        if optimizer is None or (method.fresh_optimizer_per_stage and schedule[epoch - 1] != stage):
            optimizer = method.optimizer(stage)
            continues = not method.fresh_optimizer_per_stage or (epoch > 0 and schedule[epoch - 1] == stage)
            if state.optimizer_state is not None and continues:
                optimizer.load_state_dict(state.optimizer_state)
            state.optimizer_state = None
        step = _run_epoch(method, options, optimizer, epoch, step, state.rows, started, progress)
        done = epoch + 1
        method.end_epoch(stage)
        if validate is not None:
            state.validation.append({"epoch": done, "stage": stage, **validate()})
        save_atomic({"modules": method.state(), "optimizer": optimizer.state_dict(), "epoch": done, "step": step,
                     "log": state.rows, "validation": state.validation, "config": options.fingerprint},
                    options.out / STATE_NAME)
        log(f"epoch {done}/{len(schedule)} ({stage}): step {step}, "
            + method.describe(state.rows[-1] if state.rows else {}))
        if validate is not None:
            log(f"validation after epoch {done}: {format_validation(state.validation[-1])}")
        if options.max_steps is not None and step >= options.max_steps:
            break
    rows = state.rows
    return FitRecord(rows, state.validation, done, step, round(time.perf_counter() - started, 2),
                     rows[0] if rows else {}, rows[-1] if rows else {})


def _run_epoch(method: TrainingMethod, options: FitOptions, optimizer: torch.optim.Optimizer, epoch: int, step: int,
               rows: list[Row], started: float, progress: Progress) -> int:
    """The steps of one epoch; returns the step count after it."""
    stage = method.schedule[epoch]
    plans = epoch_plan(options.seed, epoch, options.items, options.batch_size, step, options.max_steps)
    per_epoch = max(options.items // options.batch_size, 1)  # steps of a whole epoch (epoch_plan's count)
    method.begin_epoch(stage)
    label = f"epoch {epoch + 1}/{len(method.schedule)} ({stage})"
    batches = iterate_batches(method.batches(stage), plans, options.workers)
    for number, batch in enumerate(progress(batches, len(plans), label)):
        lr = method.learning_rate(epoch, number, per_epoch)
        set_lr(optimizer, lr)
        loss, figures = method.losses(stage, batch, (epoch, step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if method.clip_grad is not None:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], method.clip_grad)
        optimizer.step()
        step += 1
        if step % options.log_every == 0 or number == 0:
            rows.append({"step": step, "epoch": epoch, "stage": stage, "lr": lr, "loss": loss.item(), **figures,
                         "seconds": round(time.perf_counter() - started, 2)})
        if options.max_steps is not None and step >= options.max_steps:
            break
    return step


def _restore(method: TrainingMethod, options: FitOptions, log: Callable[[str], None]) -> _RunState:
    if not options.resume:
        return _RunState([], [], 0, 0, None)
    state = load_state(options.out, options.fingerprint, options.device)
    if "modules" not in state:
        raise MfrError(f"{options.out / STATE_NAME} was written by an older mfr, whose checkpoints this one does not "
                       f"read; train again without --resume")
    method.load(state["modules"])
    log(f"resuming after epoch {state['epoch']} (step {state['step']})")
    return _RunState(list(state["log"]), list(state.get("validation", [])), int(state["epoch"]), int(state["step"]),
                     state["optimizer"])
