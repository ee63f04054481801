"""``mfr train``: the training methods (registered in ``mfr.training.methods.TRAINERS``) and the mask
classifier. MaskInv, G2D and MEER have commands written for them; any other registered method gets one
option per field of its configuration (``generic_train_command``). Needs torch (``mfr[train]``), imported
only when a command runs."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import MfrGroup, echo_json, int_list, log, progress_bar
from mfr.training.methods import TRAINERS, TrainerEntry
from mfr.training.recipes import G2D_RECIPES, MEER_RECIPES, recipe_default_help, recipe_settings


class TrainGroup(MfrGroup):
    """Its commands: those written here, and one for every other registered training method."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *TRAINERS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in TRAINERS:
            return generic_train_command(name, TRAINERS[name])
        return command


@click.group("train", cls=TrainGroup)
def train_group() -> None:
    """Train models (needs torch: pip install 'mfr[train]')."""


def distilling_trainer_options(outputs: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options every trainer that distils a frozen teacher shares (``mfr train g2d``, ``meer``)."""
    options = [
        click.option("--teacher", type=click.Path(path_type=Path), required=True,
                     help="Frozen teacher whose embeddings of unmasked faces the student learns from: a model "
                          "package or a checkpoint (then --model)."),
        click.option("--data", type=click.Path(path_type=Path), default=None,
                     help="Aligned faces, one folder per person [default: the LFW demo split, people of folds 1-5 "
                          "and in no pair; judge on folds 6-10 and MFR2]."),
        click.option("--out", type=click.Path(path_type=Path), required=True, help=f"Output: {outputs}."),
        click.option("--model", "model_name", default="mobilefacenet", show_default=True,
                     help="Architecture of a checkpoint teacher."),
        click.option("--init", type=click.Choice(["teacher", "random"]), default="teacher", show_default=True,
                     help="teacher: the student is the teacher's trunk and head with its weights, plus the method's "
                          "own new parts (exported as <method>-<teacher>); random: the from-scratch build, an "
                          "ablation that learns identity from these few faces alone."),
        click.option("--teacher-lr-scale", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
                     help="With --init teacher: the teacher's layers learn at this share of the learning rate."),
        click.option("--validation-people", type=click.FloatRange(0, 1, max_open=True), default=0.1,
                     show_default=True,
                     help="Share of the training people set aside and scored every epoch (EERs in train_log.json; "
                          "choose options on these, never on the judging sets); 0: none."),
        click.option("--mask-probability", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                     help="Chance that a training face is masked (G2D: in stages 2 and 3)."),
        click.option("--mask-looks", default="templates,jittered,occluder", show_default=True,
                     help="Comma-separated looks a masked face is drawn in (as in mfr train maskinv)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1 ..."),
        click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
                     help="torch CPU threads (0: torch's default)."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Processes that build batches ahead of the training loop (the result does not depend "
                          "on it)."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None,
                     help="Stop after this many steps in all."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch checkpoint."),
        click.option("--no-package", is_flag=True, help="Do not export the student to OUT/package."),
        click.option("--force", is_flag=True, help="Start again in a non-empty --out."),
        click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON on stdout."),
    ]

    def apply(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def export_student(out: Path, model: str, weights: Path, method: str) -> Path:
    """The trained student exported and parity-checked into OUT/package (replacing an earlier one), its
    manifest recording how it was trained (method, init, teacher, faces)."""
    from mfr.export.package import OnnxPackageExporter
    from mfr.training.record import training_record

    package = out / "package"
    log(f"exporting the student to {package}")
    OnnxPackageExporter(model=model, out=package, weights=weights, force=True,
                        training=training_record(out, method))(log=log)
    return package


def report_staged_training(result: Any, package: Path | None, as_json: bool, **extra: Any) -> None:
    """What a G2D or MEER run did: as JSON, or a line per stage with its first and last loss."""
    summary = {"model": result.model, "steps": result.steps, "epochs": result.epochs_done, "seconds": result.seconds,
               "stages": result.stages, "parameters": result.parameters, "macs": result.macs,
               "student": str(result.student), "package": None if package is None else str(package), **extra}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"trained {result.model}: {result.steps} steps ({result.epochs_done} epochs) in {result.seconds:.0f} s; "
               f"{result.parameters / 1e6:.2f}M parameters, {result.macs / 1e6:.0f}M MACs; student {result.student}"
               + (f", package {package}" if package else ""))
    for stage, figures in result.stages.items():
        click.echo(f"  {stage}: loss {figures['first']['loss']:.4f} -> {figures['last']['loss']:.4f} "
                   f"({figures['seconds']:.0f} s)")


@train_group.command("maskinv")
@click.option("--teacher", type=click.Path(path_type=Path), required=True,
              help="Frozen teacher: a model package (from mfr-export onnx) or a checkpoint (then --model).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Aligned faces, one folder per person [default: the LFW demo split, people of folds 1-5 and "
                   "in no pair; judge the student on folds 6-10 and MFR2].")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output: student.pt, train_log.csv/.json, loss.png, train_state.pt, package/.")
@click.option("--model", "model_name", default="mobilefacenet", show_default=True,
              help="Architecture of a checkpoint teacher.")
@click.option("--from-scratch", is_flag=True, help="Initialise the student randomly instead of from the teacher.")
@click.option("--mask-probability", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Chance that a training face is given a synthetic mask.")
@click.option("--mask-looks", default="templates,jittered,occluder", show_default=True,
              help="Comma-separated looks a masked face is drawn in: templates (MaskTheFace), jittered (moved, "
                   "recoloured, textured templates), occluder (random shapes over the lower face).")
@click.option("--augment-probability", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Chance that a training face is degraded: misaligned, relit, blurred or downscaled, JPEG.")
@click.option("--distill-weight", "distill_weight", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="lambda: weight of the MSE between normalised student and teacher embeddings.")
@click.option("--unmasked-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Distillation weight of unmasked faces relative to masked ones (higher: unmasked embeddings "
                   "stay closer to the teacher's).")
@click.option("--validation-people", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of the training people (those with 2-40 faces) set aside to score the student on "
                   "before training and after each epoch; 0 trains on everyone.")
@click.option("--margin-loss/--no-margin-loss", default=True, show_default=True,
              help="ElasticFace-Arc over the training identities (switch off for data without identities).")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--lr-steps", default="8,10", show_default=True,
              help="Comma-separated epochs after which the learning rate is divided by 10.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1 ...")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes that draw masks and build batches ahead of the training loop (use several with "
                   "a GPU; the batches, and so the result, do not depend on it).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop after this many steps in all (a run stopped so resumes at the next epoch).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch checkpoint.")
@click.option("--no-package", is_flag=True, help="Do not export the student to OUT/package.")
@click.option("--force", is_flag=True, help="Start again in a non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON on stdout.")
def train_maskinv_command(teacher: Path, data: Path | None, out: Path, model_name: str, from_scratch: bool,
                          mask_probability: float, mask_looks: str, augment_probability: float,
                          distill_weight: float, unmasked_weight: float, validation_people: float,
                          margin_loss: bool, epochs: int,
                          batch_size: int, lr: float, lr_steps: str, seed: int, device: str, workers: int,
                          max_steps: int | None,
                          resume: bool, no_package: bool, force: bool, as_json: bool) -> None:
    """MaskInv: a student learns to map masked faces to the teacher's embedding of the unmasked face.

    Loss = ElasticFace-Arc (s=64, margin ~ N(0.5, 0.05)) on the student's embedding + lambda * MSE of
    the normalised student and teacher embeddings. Masked faces are drawn in several looks and faces
    degraded (--mask-looks, --augment-probability); some training people are set aside and scored
    before training and after every epoch (--validation-people), which is where options are compared.
    SGD with momentum, step schedule, gradient clipping; seeded and resumable (--resume). The student
    is exported to OUT/package with the teacher's preprocessing spec, ready for calibrate and
    build-engine.
    """
    from mfr.cli.common import require_extra

    require_extra("torch", "train")
    require_extra("matplotlib", "train")
    from mfr.training.maskinv import MaskInvConfig, MaskInvTrainer

    steps = tuple(int_list(lr_steps, "--lr-steps", "epochs"))
    config = MaskInvConfig(teacher=teacher, out=out, data=data, model=model_name, from_scratch=from_scratch,
                           mask_probability=mask_probability,
                           mask_looks=tuple(look.strip() for look in mask_looks.split(",") if look.strip()),
                           augment_probability=augment_probability, distill_weight=distill_weight,
                           unmasked_weight=unmasked_weight, validation_people=validation_people,
                           margin_loss=margin_loss,
                           epochs=epochs, batch_size=batch_size, lr=lr, lr_steps=steps, seed=seed, device=device,
                           workers=workers, max_steps=max_steps, resume=resume, force=force)
    result = MaskInvTrainer(config)(log=log, progress=progress_bar)
    package = None if no_package else export_student(out, result.model, result.student, "maskinv")
    summary = {"steps": result.steps, "epochs": result.epochs_done, "seconds": result.seconds,
               "first": result.first, "last": result.last, "student": str(result.student),
               "package": None if package is None else str(package), "validation": result.validation}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"trained {result.steps} steps ({result.epochs_done} epochs) in {result.seconds:.0f} s; "
               f"student {result.student}" + (f", package {package}" if package else ""))
    click.echo(f"cosine to the teacher's unmasked embedding, masked faces: {result.first.get('cosine_masked', 0):.4f} "
               f"-> {result.last.get('cosine_masked', 0):.4f}")
    if result.validation:
        from mfr.training.validation import format_validation

        click.echo(f"validation people, before: {format_validation(result.validation[0])}")
        click.echo(f"validation people, after:  {format_validation(result.validation[-1])}")


@train_group.command("g2d")
@distilling_trainer_options("student.pt, classifier.pt, reconstructions.png, train_log.csv/.json, loss.png, "
                            "train_state.pt, package/")
@click.option("--no-generative", is_flag=True,
              help="The ablation: skip the inpainting stage and train E with R from random weights, for the "
                   "epochs of both stages, with the same distillation.")
@click.option("--holes-epochs", type=click.IntRange(min=0), default=None,
              help="Stage 1a: inpainting pretraining on random free-form holes. "
                   + recipe_default_help(G2D_RECIPES, "holes_epochs"))
@click.option("--masks-epochs", type=click.IntRange(min=0), default=None,
              help="Stage 1b: inpainting finetuning on synthetic face masks. "
                   + recipe_default_help(G2D_RECIPES, "masks_epochs"))
@click.option("--distill-epochs", type=click.IntRange(min=1), default=None,
              help="Stage 2: the reformer learns by relational distillation. "
                   + recipe_default_help(G2D_RECIPES, "distill_epochs"))
@click.option("--classifier-epochs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Stage 3: linear + softmax classifier over the training identities, backbone frozen.")
@click.option("--hidden-weight", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="Reconstruction weight of the pixels under a mask or hole, relative to visible ones.")
@click.option("--cosine-weight", type=click.FloatRange(min=0), default=None,
              help="Add a direct cosine term towards the teacher's unmasked embedding (makes embeddings "
                   "comparable with templates the teacher enrolled); 0: relational distillation only. "
                   + recipe_default_help(G2D_RECIPES, "cosine_weight"))
@click.option("--augment-probability", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Chance that a face is degraded in stages 2 and 3 (misalignment, light, blur, JPEG).")
@click.option("--distill-encoder", type=click.Choice(["frozen", "fine-tune"]), default=None,
              help="Stage 2: E frozen (the paper's), or fine-tuned with R. "
                   + recipe_default_help(G2D_RECIPES, "distill_encoder"))
@click.option("--keep-weight", type=click.FloatRange(min=0), default=None,
              help="Stage 1 with --init teacher: weight of a term that keeps E's features of unmasked faces near the "
                   "teacher trunk's (relative squared error); 0: none. "
                   + recipe_default_help(G2D_RECIPES, "keep_weight"))
@click.option("--generative-lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--distill-lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--classifier-lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=3), default=64, show_default=True)
def train_g2d_command(teacher: Path, data: Path | None, out: Path, model_name: str, init: str,
                      teacher_lr_scale: float, validation_people: float, no_generative: bool,
                      holes_epochs: int | None, masks_epochs: int | None, distill_epochs: int | None,
                      classifier_epochs: int, hidden_weight: float, cosine_weight: float | None,
                      mask_probability: float, mask_looks: str, augment_probability: float,
                      distill_encoder: str | None, keep_weight: float | None, generative_lr: float,
                      distill_lr: float, classifier_lr: float,
                      batch_size: int, seed: int, device: str, threads: int, workers: int, max_steps: int | None,
                      resume: bool, no_package: bool, force: bool, as_json: bool) -> None:
    """G2D: a generative encoder pretrained to inpaint masked faces, a reformer distilled from the teacher.

    Three stages, one after another, each resumable and logged: (1) E + decoder reconstruct the
    uncovered face from random holes, then from synthetic masks (L1, hidden pixels weighted);
    (2) the reformer R (E frozen, or trained with it) learns from masked faces so that distances and
    angles between its embeddings match the teacher's for the same faces unmasked (relational knowledge
    distillation);
    (3) a softmax classifier over the training identities on R's output (closed set; not deployed).
    The deployed model is E -> R, exported to OUT/package with the g2d spec, ready for calibrate and
    build-engine. --no-generative trains the ablation in the same number of epochs.

    The schedule follows --init: from the teacher, the recipe kept on the validation people (1 + 1 + 4
    epochs, the keep term, E fine-tuned with R, the cosine term; about 40 min on a 2-core CPU); from
    random weights, the papers' schedule scaled to this data. Options given here override it.
    """
    from mfr.cli.common import require_extra

    require_extra("torch", "train")
    require_extra("matplotlib", "train")
    from mfr.training.g2d import G2DConfig, G2DTrainer

    schedule = recipe_settings(G2D_RECIPES, init, {
        "holes_epochs": holes_epochs, "masks_epochs": masks_epochs, "distill_epochs": distill_epochs,
        "keep_weight": keep_weight, "distill_encoder": distill_encoder, "cosine_weight": cosine_weight})
    config = G2DConfig(teacher=teacher, out=out, data=data, model=model_name, init=init,
                       teacher_lr_scale=teacher_lr_scale, validation_people=validation_people,
                       generative=not no_generative, classifier_epochs=classifier_epochs, hidden_weight=hidden_weight,
                       **schedule,
                       mask_probability=mask_probability,
                       mask_looks=tuple(look.strip() for look in mask_looks.split(",") if look.strip()),
                       augment_probability=augment_probability, generative_lr=generative_lr, distill_lr=distill_lr,
                       classifier_lr=classifier_lr, batch_size=batch_size, seed=seed, device=device, threads=threads,
                       workers=workers, max_steps=max_steps, resume=resume, force=force)
    result = G2DTrainer(config)(log=log, progress=progress_bar)
    package = None if no_package else export_student(out, result.model, result.student, "g2d")
    report_staged_training(result, package, as_json)


@train_group.command("meer")
@distilling_trainer_options("student.pt, restorer.pt, restored.png, train_log.csv/.json, train_state.pt, "
                            "package/ (with restore.onnx)")
@click.option("--no-decoupling", is_flag=True,
              help="Ablation: no mask decoupling module (the head reads the trunk's features; no mask-map loss).")
@click.option("--no-synthesis", is_flag=True,
              help="Ablation: no restoring decoder (no reconstruction, no identity-preserving loss).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help=recipe_default_help(MEER_RECIPES, "epochs"))
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs before the identity-preserving loss starts (the decoder first learns to draw faces). "
                   + recipe_default_help(MEER_RECIPES, "warmup_epochs"))
@click.option("--identity-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of 1 - cosine to the teacher's embedding of the unmasked face.")
@click.option("--margin-loss/--no-margin-loss", default=None,
              help="Add ElasticFace-Arc over the training identities. "
                   + recipe_default_help(MEER_RECIPES, "margin_loss"))
@click.option("--mask-map-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--reconstruction-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--preserving-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the identity-preserving loss on the restored face.")
@click.option("--hidden-weight", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="Reconstruction weight of the pixels under the mask, relative to visible ones.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
def train_meer_command(teacher: Path, data: Path | None, out: Path, model_name: str, init: str,
                       teacher_lr_scale: float, validation_people: float, no_decoupling: bool,
                       no_synthesis: bool, epochs: int | None, warmup_epochs: int | None, identity_weight: float,
                       margin_loss: bool | None,
                       mask_map_weight: float, reconstruction_weight: float, preserving_weight: float,
                       hidden_weight: float, mask_probability: float, mask_looks: str, lr: float, batch_size: int,
                       seed: int, device: str, threads: int, workers: int, max_steps: int | None, resume: bool,
                       no_package: bool, force: bool, as_json: bool) -> None:
    """MEER: mask decoupling and unmasked-face synthesis, learned jointly with recognition.

    One multi-task training: identity (1 - cosine to the teacher's embedding of the unmasked face;
    optionally ElasticFace-Arc), the mask-attention map against the synthetic mask's region, the
    unmasked face restored from the identity features (L1, hidden pixels weighted), and, after the
    warm-up, the identity-preserving loss on the restored face fed back through the network. Writes a
    sheet of restored faces after every epoch (restored.png: a synthesis, never evidence of identity).
    The deployed model is trunk -> decoupling -> identity head, exported to OUT/package.

    The schedule follows --init: from the teacher, the recipe kept on the validation people (6 epochs,
    2 of warm-up, the margin term; about 46 min on a 2-core CPU); from random weights, 12 epochs, 4 of
    warm-up, the paper's identity loss alone. Options given here override it.
    """
    from mfr.cli.common import require_extra

    require_extra("torch", "train")
    from mfr.training.meer import MEERConfig, MEERTrainer

    schedule = recipe_settings(MEER_RECIPES, init, {"epochs": epochs, "warmup_epochs": warmup_epochs,
                                                    "margin_loss": margin_loss})
    schedule["warmup_epochs"] = min(schedule["warmup_epochs"], schedule["epochs"])
    config = MEERConfig(teacher=teacher, out=out, data=data, model=model_name, init=init,
                        teacher_lr_scale=teacher_lr_scale, validation_people=validation_people,
                        decoupling=not no_decoupling, synthesis=not no_synthesis, **schedule,
                        identity_weight=identity_weight, mask_map_weight=mask_map_weight,
                        reconstruction_weight=reconstruction_weight, preserving_weight=preserving_weight,
                        hidden_weight=hidden_weight, mask_probability=mask_probability,
                        mask_looks=tuple(look.strip() for look in mask_looks.split(",") if look.strip()), lr=lr,
                        batch_size=batch_size, seed=seed, device=device, threads=threads, workers=workers,
                        max_steps=max_steps, resume=resume, force=force)
    result = MEERTrainer(config)(log=log, progress=progress_bar)
    package = None if no_package else export_student(out, result.model, result.student, "meer")
    if package is not None and result.restorer is not None:
        from mfr.export.restorer import add_restorer

        add_restorer(package, result.restorer, log=log)
    report_staged_training(result, package, as_json,
                           restorer=None if result.restorer is None else str(result.restorer))


@train_group.command("mask-classifier")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The classifier file to write (.npz); mfr ships one in mfr/weights/mask-classifier/.")
@click.option("--detector-package", type=click.Path(path_type=Path), default=None,
              help="RetinaFace package for MFR2's photos (default: exported once into the cache).")
@click.option("--no-mfr2", is_flag=True, help="Skip the accuracy on MFR2's real mask labels.")
@click.option("--json", "as_json", is_flag=True)
def train_mask_classifier_command(out: Path, detector_package: Path | None, no_mfr2: bool, as_json: bool) -> None:
    """The mask/no-mask classifier that picks the masked threshold in mfr identify (numpy, no torch).

    Trained on LFW people in no evaluation pair, bare and with synthetic masks; reports a validation
    accuracy on held-out people and the accuracy on MFR2's real mask labels.
    """
    from dataclasses import asdict

    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector
    from mfr.training.mask_classifier import train_mask_classifier

    detector, name = (None, "") if no_mfr2 else make_detector("retinaface", detector_package, default_cache_dir(),
                                                              log)
    report = train_mask_classifier(out, detector, name, progress=progress_bar)
    if as_json:
        echo_json(asdict(report))
        return
    mfr2 = "not measured" if report.mfr2_accuracy is None else f"{100 * report.mfr2_accuracy:.1f} % " \
        f"({report.mfr2_confusion})"
    click.echo(f"wrote {out}: {report.train_faces} training faces, validation accuracy "
               f"{100 * report.validation_accuracy:.1f} %, MFR2 real masks {mfr2}, {report.seconds:.0f} s")


# --- a command for any registered method --------------------------------------------------------------------

def _option_for(field: dataclasses.Field[Any], hint: Any) -> click.Option:
    """One option for a configuration field: its name in kebab case, its type and default."""
    flag = "--" + field.name.replace("_", "-")
    default = field.default if field.default is not dataclasses.MISSING else None
    required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    arguments = typing.get_args(hint)
    base = next((a for a in arguments if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
    if base is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", field.name], default=default, show_default=True)
    if typing.get_origin(base) is tuple:
        text = ",".join(str(v) for v in default) if default is not None else None
        return click.Option([flag, field.name], default=text, show_default=True, required=required,
                            help="Comma-separated.")
    kinds: dict[Any, Any] = {Path: click.Path(path_type=Path), int: int, float: float}
    kind = kinds.get(base, str)
    return click.Option([flag, field.name], type=kind, default=default, show_default=default is not None,
                        required=required)


def generic_train_command(name: str, entry: TrainerEntry) -> click.Command:
    """``mfr train NAME`` for a registered method: every field of its configuration is an option; the run's
    result is printed as JSON."""
    config_type, trainer_type = entry.load()
    hints = typing.get_type_hints(config_type)
    fields = dataclasses.fields(config_type)

    def run(**values: Any) -> None:
        for field in fields:
            if typing.get_origin(hints[field.name]) is tuple and isinstance(values[field.name], str):
                element = typing.get_args(hints[field.name])[0]
                values[field.name] = tuple(element(v.strip()) for v in values[field.name].split(",") if v.strip())
        result = trainer_type(config_type(**values))(log=log, progress=progress_bar)
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            result = dataclasses.asdict(result)
        click.echo(json.dumps(result if isinstance(result, dict) else {"result": str(result)}, indent=2, default=str))

    return click.Command(name, callback=run, params=[_option_for(f, hints[f.name]) for f in fields],
                         help=entry.summary)
