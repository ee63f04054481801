"""``mfr``: use model packages: list models, inspect packages, evaluate, benchmark, train."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import (
    MODEL_LOCATION,
    HiddenAliases,
    ReportOutput,
    SectionedGroup,
    echo_json,
    int_list,
    local_only,
    log,
    progress_bar,
    refuse_options_outside,
    report_options,
)
from mfr.cli.gallery_cli import looks_option
from mfr.manifest import load_manifest
from mfr.recognition.decision import SCORES
from mfr.recognition.fusion import FUSIONS
from mfr.registry import DEFAULT_RECOGNITION_MODEL, MODELS, recognition_model_names
from mfr.runtime.detectors import DETECTORS
from mfr.runtime.engine_triton import redacted
from mfr.runtime.machine import cpu_label


class MfrCommands(SectionedGroup):
    sections = {
        "Deploy a model (mfr-export: onnx, calibrate, build-engine)": ["thresholds", "info", "models", "doctor"],
        "Recognise people": ["gallery", "identify", "watch", "serve"],
        "Measure": ["eval", "bench", "report"],
        "Train": ["train", "restore", "mask-sheet"],
    }


@click.group(cls=MfrCommands)
@click.version_option(package_name="mfr")
def cli() -> None:
    """Masked face recognition at the edge: inspect, evaluate and run model packages."""


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_command(as_json: bool) -> None:
    """List the registered models with their preprocessing specs."""
    if as_json:
        echo_json({name: {"kind": e.kind, "description": e.description, "spec": e.spec.to_dict(),
                          "default_weights": None if e.default_weights is None else str(e.default_weights)}
                   for name, e in MODELS.items()})
        return
    width = max(map(len, MODELS))
    for name, entry in MODELS.items():
        size = "any size" if entry.spec.input_size is None else "x".join(map(str, entry.spec.input_size))
        weights = "shipped weights" if entry.default_weights else "bring your own weights"
        click.echo(f"{name:{width}s} {entry.kind:12s} {size:9s} {entry.spec.color_order}  {weights}  - "
                   f"{entry.description}")


@cli.command("info")
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
def info_command(package: Path, as_json: bool) -> None:
    """Show what a model package holds: model, spec, tensors and measured figures."""
    manifest = load_manifest(package)
    if as_json:
        echo_json(manifest.to_dict())
        return
    click.echo(f"model     {manifest.model} ({manifest.kind}), files {manifest.files}")
    click.echo(f"spec      {manifest.spec.to_dict()}")
    for label, tensors in (("input", manifest.inputs), ("output", manifest.outputs)):
        for t in tensors:
            click.echo(f"{label:9s} {t.name} {t.shape} {t.dtype}")
    if manifest.parity is not None:
        click.echo(f"parity    min cosine {manifest.parity.min_cosine:.7f}, max abs diff "
                   f"{manifest.parity.max_abs_diff:.3g} on {manifest.parity.data}")
    record = manifest.engine
    if record is not None:
        where = record.device + (f" (compute capability {record.compute_capability})"
                                 if record.compute_capability else "")
        click.echo(f"engine    {record.precision} {record.backend} {record.backend_version} on {where}, batch "
                   f"{record.profile.min}/{record.profile.opt}/{record.profile.max}, built {record.built} from "
                   f"{record.source_package}/{record.source_file}")


def openset(packages: tuple[Path | str, ...], dataset: str, precision: str | None, detector: Any, detector_name: str,
            folds: tuple[int, ...] | None, mask_seed: int, cache_dir: Path | None, sizes: list[int], target_far: float,
            min_margin: float | None, masked_templates: bool, output: ReportOutput,
            enrol_photos: tuple[int, ...] = (1,), fusion: str = "templates", scores: tuple[str, ...] = ("raw",),
            cohort_faces: Any = None) -> None:
    """``mfr eval --dataset lfw-openset|mfr2-openset``: every package (and precision, and score) in one run;
    ``cohort_faces`` (``ThresholdFaces``) are embedded by each model for normalised scores."""
    from functools import partial

    from mfr.benchmarks.openset import (
        check_cohort_people,
        judged_people,
        lfw_openset,
        markdown_table,
        mfr2_openset,
        run_openset,
    )
    from mfr.benchmarks.thresholds import embed_cohort, seen_by_training
    from mfr.recognition.decision import DEFAULT_MARGIN, DecisionPolicy
    from mfr.runtime.embedder import FaceEmbedder

    if "as-norm" in scores:
        check_cohort_people(cohort_faces.people, cohort_faces.what, *judged_people(dataset, folds))
    runs = [(package, p) for package in packages for p in (("fp32", "int8") if precision == "both" else (precision,))]
    reports = []
    for package, chosen in runs:
        embedder = FaceEmbedder.open(package, chosen)
        cohort = None
        if "as-norm" in scores:
            seen_by_training(cohort_faces, embedder.manifest.stages.training, allow_seen=False)
            cohort = embed_cohort(embedder, cohort_faces, mask_seed, progress=progress_bar)
        for score in scores:
            policy = DecisionPolicy(target_far, DEFAULT_MARGIN if min_margin is None else min_margin, score=score)
            chosen_cohort = cohort if score == "as-norm" else None
            if dataset == "lfw-openset":
                job = partial(lfw_openset, embedder, sizes, policy, folds, mask_seed=mask_seed, cache_dir=cache_dir,
                              masked_templates=masked_templates, enrol_photos=enrol_photos, fusion=fusion,
                              cohort=chosen_cohort, progress=progress_bar)
            else:
                job = partial(mfr2_openset, embedder, detector, detector_name, policy, cohort=chosen_cohort,
                              progress=progress_bar)
            reports.append(run_openset(embedder, package, dataset, policy, job))
            output.text(markdown_table(reports[-1]) + "\n")
    output.data({"reports": [r.to_dict() for r in reports]})


def cohort_faces(folds: str | None, people: Path | None) -> Any:
    """The faces of ``--cohort-folds`` / ``--cohort-people``, by default the LFW people in no pair."""
    from mfr.benchmarks.thresholds import ThresholdFaces

    if folds and people is not None:
        raise click.BadParameter("give the cohort once: --cohort-folds or --cohort-people",
                                 param_hint="--cohort-people")
    if people is not None:
        faces = ThresholdFaces.of_folder(people, per_person=4)
        if not faces.aligned:
            raise click.BadParameter(f"{people}: the cohort must be aligned 112x112 faces",
                                     param_hint="--cohort-people")
        return faces
    if folds:
        return ThresholdFaces.of_folds(tuple(f - 1 for f in int_list(folds, "--cohort-folds", "fold numbers")), 4)
    return ThresholdFaces.outside_pairs()


def rebuild_engines_that_do_not_fit(directories: list[Path]) -> None:
    """``--rebuild-on-mismatch``: rebuild, in place, each engine directory built for another machine (the
    runtime itself only refuses such engines; building is the export stage's job)."""
    from mfr.export.engine_package import rebuild_if_mismatched

    for directory in directories:
        rebuild_if_mismatched(directory, log)


def video_detector_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The face detector of the camera loop and the loop's shape, as mfr watch chooses them."""
    from mfr.cli.watch_cli import loop_options

    command = loop_options(command)
    command = click.option("--detector-package", type=MODEL_LOCATION, default=None,
                           help="Detector package, calibrated package or engine directory, as mfr watch "
                                "--detector-package.")(command)
    return click.option("--detector", type=click.Choice(list(DETECTORS)), default="yunet", show_default=True,
                        help="Face detector, as mfr watch --detector.")(command)


def loop_detector(detector: str, package: Path | str | None, precision: str | None, detect_size: int,
                  pipeline: bool, detect_workers: int) -> tuple[Any, str, Any]:
    """The video detector (one thread per call in the pipelined loop), its name, and the loop's settings."""
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_video_detector
    from mfr.cli.watch_cli import frame_loop

    loop = frame_loop(pipeline, detect_workers)
    face_detector, name = make_video_detector(detector, package, detect_size, default_cache_dir(), log, precision,
                                              threads=1 if loop is not None else 0)
    return face_detector, name, loop


VERIFICATION = ("lfw", "lfw-masked", "mfr2")
OPENSET = ("lfw-openset", "mfr2-openset")
# the --dataset values each mfr eval option applies to (the others refuse it rather than ignore it)
EVAL_SCOPES: dict[str, tuple[str, ...]] = {
    "flip": VERIFICATION, "data_dir": VERIFICATION, "bootstrap": VERIFICATION, "plots": VERIFICATION,
    "errors_out": VERIFICATION, "mask_renderer": ("lfw-masked",), "no_face": ("mfr2",),
    "detector": ("mfr2", "mfr2-openset"), "detector_package": ("mfr2", "mfr2-openset"),
    "detector_precision": ("mfr2", "mfr2-openset"),
    "gallery_sizes": ("lfw-openset",), "masked_templates": ("lfw-openset",), "enrol_photos": ("lfw-openset",),
    "fusion": ("lfw-openset",), "target_far": OPENSET, "min_margin": OPENSET, "scores": OPENSET,
    "cohort_folds": OPENSET, "cohort_people": OPENSET, "clip_seeds": ("detection",),
    "detect_size": ("detection",)}


@cli.command("eval")
@click.option("--model", "--package", "packages", cls=HiddenAliases, type=MODEL_LOCATION, required=True, multiple=True,
              help="Recognition model package, an engine directory from mfr-export build-engine, or a served "
                   "model (triton://HOST:PORT/MODEL, see mfr serve). Repeat to compare models side by side on "
                   "the same pairs (e.g. teacher and student).")
@click.option("--dataset", type=click.Choice(["lfw", "lfw-masked", "mfr2", "lfw-openset", "mfr2-openset", "detection"]),
              required=True,
              help="lfw: View 2, 6,000 pairs; lfw-masked: the same pairs with synthetic masks (U-U, M-U, M-M); "
                   "mfr2: 848 pairs of real masked faces (detected and re-aligned); lfw-openset / mfr2-openset: "
                   "open-set identification (enrol people, probe them and strangers; see --gallery-size); "
                   "detection: a face detector package (--model) on generated clips against their boxes, and "
                   "against its FP32 model on MFR2 and the demo photos (--precision both: FP32 and INT8).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8", "both"]), default=None,
              help="Which model of a package: fp32 (default), fp16 (model.fp16.onnx), int8, or both (fp32 and int8) "
                   "in one run, with the accuracy drop and embedding cosine between them. An engine directory runs "
                   "its own precision.")
@click.option("--rebuild-on-mismatch", is_flag=True,
              help="Rebuild an engine built for another machine from its source ONNX instead of failing.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Sum the embeddings of each face and its mirror image.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: <data root>/lfw-112x112 or mfr2; data root from $MFR_DATA_DIR).")
@click.option("--detector", type=click.Choice(list(DETECTORS)), default="retinaface", show_default=True,
              help="Face detector for unaligned photos (MFR2).")
@click.option("--detector-package", type=MODEL_LOCATION, default=None,
              help="Detector package, calibrated package, engine or served model (default: YuNet's shipped package; "
                   "RetinaFace's exported once into the cache).")
@click.option("--detector-precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="Which model of the detector package aligns the photos: fp32 (default) or int8 (a calibrated "
                   "package).")
@click.option("--no-face", type=click.Choice(["fail", "center"]), default="fail", show_default=True,
              help="When no face is found: stop, or use a centred crop (counted in the report).")
@click.option("--seed", "--mask-seed", "mask_seed", cls=HiddenAliases, type=int, default=0, show_default=True,
              help="Seed of the synthetic masks.")
@click.option("--mask-renderer", type=click.Choice(["templates", "procedural"]), default="templates",
              show_default=True,
              help="lfw-masked: MaskTheFace templates (what training uses) or procedural shapes no training sees "
                   "(surgical, cloth, N95, scarf, hand), to judge whether a masked-face gain transfers.")
@click.option("--folds", default=None, help="Comma-separated 1-based folds to evaluate (default: all).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples for the EER confidence interval (0: none).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Embedding cache (default: $MFR_CACHE_DIR or ~/.cache/mfr).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached embeddings.")
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Write ROC and DET PNGs here.")
@report_options
@click.option("--errors", "errors_out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the pairs the 10-fold accuracy counts wrong (every package, protocol and precision) as "
                   "CSV: the two photos, same person or not, the score and the threshold it was judged at.")
@click.option("--gallery-size", "gallery_sizes", default="100,1000", show_default=True,
              help="Open-set only: comma-separated numbers of enrolled LFW people.")
@click.option("--far", "target_far", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Open-set only: largest share of strangers to be named as someone.")
@click.option("--margin", "min_margin", type=click.FloatRange(0, 2), default=None,
              help="Open-set only: smallest lead of the best person over the second [default: as mfr identify].")
@click.option("--masked-templates/--no-masked-templates", default=True, show_default=True,
              help="lfw-openset only: enrol a synthetic-masked template beside each photo, as mfr gallery does.")
@click.option("--enrol-photos", default="1", show_default=True,
              help="lfw-openset only: comma-separated numbers of photos enrolled per known person (e.g. 1,2,3); "
                   "the known people are then those with more photos than the largest number, probed with the "
                   "same later photos for every number.")
@click.option("--fusion", type=click.Choice(list(FUSIONS)), default="templates",
              show_default=True,
              help="lfw-openset only: several photos of a person as one template each (the best decides), their "
                   "mean embedding, or their mean weighted by photo quality.")
@click.option("--score", "scores", type=click.Choice(list(SCORES)), multiple=True, default=("raw",),
              show_default=True,
              help="Open-set only: raw cosine with the manifest's thresholds (union bound over the templates), or "
                   "as-norm: scores normalised against a cohort of strangers and the threshold calibrated on the "
                   "gallery itself, the cohort playing strangers. Repeat to compare on the same probes.")
@click.option("--cohort-folds", default=None,
              help="Open-set with as-norm: the cohort is the people of these LFW folds (1-based, e.g. 6,7) instead "
                   "of the LFW people in no pair (for a model trained on those); never the judged people.")
@click.option("--cohort-people", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Open-set with as-norm: your own cohort, one sub-folder of aligned 112x112 faces per person, "
                   "people never enrolled.")
@click.option("--clip-seeds", default="0,1,2", show_default=True,
              help="detection only: seeds of the generated clips judged on (calibration never uses these).")
@click.option("--detect-size", type=click.IntRange(160, 4096), default=640, show_default=True,
              help="detection only: the longest side frames are fitted to, as mfr watch --detect-size.")
def eval_command(packages: tuple[Path | str, ...], dataset: str, precision: str | None, rebuild_on_mismatch: bool,
                 flip: bool, data_dir: Path | None, detector: str, detector_package: Path | str | None,
                 detector_precision: str | None, no_face: str,
                 mask_seed: int, mask_renderer: str, folds: str | None, bootstrap: int, cache_dir: Path | None,
                 no_cache: bool, plots: Path | None, output: ReportOutput, errors_out: Path | None,
                 gallery_sizes: str, target_far: float, min_margin: float | None, masked_templates: bool,
                 enrol_photos: str, fusion: str, scores: tuple[str, ...], cohort_folds: str | None,
                 cohort_people: Path | None, clip_seeds: str, detect_size: int) -> None:
    """Verification accuracy of a model package: 10-fold accuracy, EER, TAR@FAR, FNMR@FMR; or, with an
    -openset dataset, open-set identification: DIR, strangers named, rank-1 (thresholds from the manifest,
    measured by mfr thresholds)."""
    from functools import partial

    from mfr.benchmarks.verification import Evaluation
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector

    refuse_options_outside(click.get_current_context(), "dataset", EVAL_SCOPES)
    if len(packages) > 1 and precision == "both":
        raise click.BadParameter("--precision both compares the precisions of one package; give one --model",
                                 param_hint="--precision")
    if (cohort_folds or cohort_people) and "as-norm" not in scores:
        raise click.BadParameter("a cohort is used by normalised scores only: add --score as-norm",
                                 param_hint="--cohort-folds/--cohort-people")
    cache_root = cache_dir or default_cache_dir()
    if dataset == "detection":
        detection(packages, precision, cache_root, tuple(int_list(clip_seeds, "--clip-seeds", "seeds")), detect_size,
                  output)
        return
    face_detector, detector_name = (None, "none")
    if dataset in ("mfr2", "mfr2-openset"):
        face_detector, detector_name = make_detector(detector, detector_package, cache_root, log, detector_precision)
    fold_list = tuple(f - 1 for f in int_list(folds, "--folds", "fold numbers")) if folds else None
    if rebuild_on_mismatch:
        rebuild_engines_that_do_not_fit(local_only(packages))
    if dataset.endswith("-openset"):
        openset(packages, dataset, precision, face_detector, detector_name, fold_list, mask_seed,
                None if no_cache else cache_root, int_list(gallery_sizes, "--gallery-size", "sizes", positive=True),
                target_far, min_margin, masked_templates, output,
                tuple(int_list(enrol_photos, "--enrol-photos", "photo counts", positive=True)), fusion,
                tuple(dict.fromkeys(scores)),
                cohort_faces(cohort_folds, cohort_people) if "as-norm" in scores else None)
        return
    evaluation = partial(Evaluation, dataset=dataset, flip=flip, data_dir=data_dir, detector=face_detector,
                         detector_name=detector_name, no_face=no_face,  # type: ignore[arg-type]
                         mask_seed=mask_seed,
                         mask_renderer=mask_renderer, folds=fold_list, cache_dir=None if no_cache else cache_root,
                         bootstrap=bootstrap)
    runs = [(packages[0], p) for p in ("fp32", "int8")] if precision == "both" else \
        [(package, precision) for package in packages]
    verification([evaluation(package=package, precision=chosen)(progress=progress_bar) for package, chosen in runs],
                 precision == "both", output, plots, errors_out)


def detection(packages: tuple[Path | str, ...], precision: str | None, cache_dir: Path, seeds: tuple[int, ...],
              detect_size: int, output: ReportOutput) -> None:
    """``mfr eval --dataset detection``: each detector package at its precision(s), one table."""
    from mfr.benchmarks.detection_eval import evaluate_detector, markdown_table

    precisions = ["fp32", "int8"] if precision == "both" else [precision or "fp32"]
    reports = [evaluate_detector(package, precisions, cache_dir, seeds, detect_size, log=log, progress=progress_bar)
               for package in packages]
    for report in reports:
        output.text(markdown_table(report.to_dict()) + "\n")
    log(cpu_label(reports[0].machine))
    output.data({"reports": [report.to_dict() for report in reports]})


def verification(reports: list[Any], compare_precisions_of_one: bool, output: ReportOutput, plots: Path | None,
                 errors_out: Path | None) -> None:
    """``mfr eval`` on a verification dataset: each report's table, then the precisions' drop (one package at
    fp32 and int8) or the packages side by side; curves, the JSON, the pairs judged wrongly."""
    from mfr.benchmarks.compare import compare_precisions, drop_table, side_by_side, side_by_side_table
    from mfr.benchmarks.report import markdown_table, save_curves, write_errors_csv

    for report in reports:
        output.text(markdown_table(report) + "\n")
    result: dict[str, Any] = reports[0].to_dict()
    if compare_precisions_of_one:
        result = compare_precisions(*reports)
        output.text(drop_table(result))
    elif len(reports) > 1:
        result = side_by_side(reports)
        output.text(side_by_side_table(reports))
    if plots is not None:
        for report in reports:
            for path in save_curves(report, plots):
                log(f"wrote {path}")
    output.data(result)
    if errors_out is not None:
        log(f"wrote {errors_out}: {write_errors_csv(reports, errors_out)} wrongly judged pairs")


@cli.group("bench")
def bench_group() -> None:
    """Speed measurements (fair ratios: models measured interleaved in one run)."""


@bench_group.command("latency")
@click.option("--model", "--engine", "engines", cls=HiddenAliases, type=MODEL_LOCATION, multiple=True, required=True,
              help="Engine directory (from mfr-export build-engine), or a served model (triton://HOST:PORT/MODEL); "
                   "repeat to compare them in one run.")
@click.option("--batch", "batches", default=None,
              help="Comma-separated batch sizes [default: 1,8,32,128; with --clients: 1, the faces of one "
                   "camera's call].")
@click.option("--clients", default=None,
              help="Comma-separated numbers of concurrent clients (e.g. 1,4,16): each a process with its own "
                   "engine or server connection, like one camera; reports throughput, p50/p95/p99 and the batch "
                   "sizes a server formed.")
@click.option("--seconds", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="With --clients: measured seconds per engine and client count.")
@click.option("--rounds", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed calls per engine and batch size.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed calls at the start of each engine's block.")
@click.option("--block", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed calls per engine before the next engine takes its turn.")
@click.option("--rebuild-on-mismatch", is_flag=True,
              help="Rebuild an engine built for another machine from its source ONNX instead of failing.")
@report_options
def bench_latency_command(engines: tuple[Path | str, ...], batches: str | None, clients: str | None, seconds: float,
                          rounds: int, warmup: int, block: int, rebuild_on_mismatch: bool,
                          output: ReportOutput) -> None:
    """p50/p95/p99 latency and throughput per batch size, engines interleaved so their ratios are fair.

    Engines take turns in blocks of --block calls, each block after a short pause and --warmup untimed
    calls (so one engine's spinning worker threads do not slow the next). A call goes from host memory
    to host memory (upload, inference, download). Ratios are relative to the first --engine.

    With --clients, each engine is measured with that many concurrent client processes instead, for
    --seconds each (a local engine: one copy per client; a served model: one connection per client,
    batched by the server).
    """
    from contextlib import ExitStack

    from mfr.runtime.engine_load import open_engine

    sizes = int_list(batches or ("1" if clients else "1,8,32,128"), "--batch", "batch sizes", positive=True)
    labels = [str(e) for e in engines]
    if len(set(labels)) != len(labels):
        raise click.BadParameter("the same engine was given twice", param_hint="--model")
    if rebuild_on_mismatch:
        rebuild_engines_that_do_not_fit(local_only(engines))
    report: Any
    if clients:
        from mfr.benchmarks.concurrency import markdown_table as concurrency_table
        from mfr.benchmarks.concurrency import measure_concurrency

        counts = int_list(clients, "--clients", "client counts", positive=True)
        if len(sizes) != 1:
            raise click.BadParameter("with --clients give one batch size", param_hint="--batch")
        log(f"measuring {len(engines)} engine(s) with {counts} concurrent clients, {seconds:g} s each")
        report = measure_concurrency(dict(zip(labels, engines, strict=True)), counts, sizes[0], seconds)
        output.text(concurrency_table(report))
    else:
        from mfr.benchmarks.latency import markdown_table, measure_latency

        with ExitStack() as stack:
            opened = {label: stack.enter_context(open_engine(path))
                      for label, path in zip(labels, engines, strict=True)}
            log(f"measuring {len(opened)} engine(s) at batch sizes {sizes}: {rounds} timed calls each, in blocks of "
                f"{block} after {warmup} untimed calls")
            report = measure_latency(opened, sizes, rounds=rounds, warmup=warmup, block=block)
        output.text(markdown_table(report))
    output.data(report.to_dict())


@bench_group.command("pipeline")
@click.option("--model", "--engine", "--package", "engines", cls=HiddenAliases,
              type=click.Path(path_type=Path, file_okay=False), multiple=True,
              required=True, help="Recognition engine or package; repeat to compare (e.g. FP32 and INT8).")
@click.option("--resolutions", default="480p,720p,1080p", show_default=True, help="Comma-separated: 480p, 720p, 1080p.")
@click.option("--faces", default="1,5,10,20", show_default=True, help="Comma-separated faces on screen.")
@click.option("--detect-every", "detect_every", default="1,3", show_default=True,
              help="Comma-separated detection intervals (frames).")
@click.option("--seconds", type=click.FloatRange(2, 600), default=8.0, show_default=True,
              help="Length of each generated clip (30 frames/s).")
@click.option("--detect-size", type=click.IntRange(160, 4096), default=640, show_default=True)
@video_detector_options
@click.option("--repeats", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Rounds per clip and interval; engines take turns each round, the median round is reported.")
@report_options
def bench_pipeline_command(engines: tuple[Path, ...], resolutions: str, faces: str, detect_every: str, seconds: float,
                           detect_size: int, detector: str, detector_package: Path | str | None,
                           detector_precision: str | None, pipeline: bool, detect_workers: int, repeats: int,
                           output: ReportOutput) -> None:
    """End-to-end frames/s and per-stage latency of mfr watch on generated clips, by resolution, faces and engine.

    Each clip is synthetic (real photos pasted on a drawn scene, see mfr.data.clips) and read from the file as
    fast as the machine goes, decoding included, every frame. Engines take turns on the same clip for
    --repeats rounds; each reports its median round, the rounds' range and its ratio to the first --engine.
    """
    from mfr.benchmarks.pipeline import RESOLUTIONS, markdown_table, measure_pipeline
    from mfr.runtime.embedder import FaceEmbedder

    chosen = [r.strip() for r in resolutions.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in RESOLUTIONS]
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(RESOLUTIONS)}", param_hint="--resolutions")
    face_detector, name, loop = loop_detector(detector, detector_package, detector_precision, detect_size, pipeline,
                                              detect_workers)
    opened = {str(e): FaceEmbedder.open(e) for e in engines}
    report = measure_pipeline(opened, face_detector, name, chosen, int_list(faces, "--faces", "face counts", True),
                              int_list(detect_every, "--detect-every", "intervals", True), seconds, log, repeats,
                              loop)
    output.text(markdown_table(report.to_dict()))
    log(f"detector {name}; {report.loop} loop; {cpu_label(report.machine)}")
    output.data(report.to_dict())


@bench_group.command("watch")
@click.option("--model", "--engine", "--package", "model_dir", cls=HiddenAliases,
              type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Recognition engine or package (with measured thresholds).")
@click.option("--clip", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A clip from mfr bench make-clip [default: generate the clip of each --seeds].")
@click.option("--seeds", default="0", show_default=True,
              help="Without --clip: comma-separated seeds of the generated 720p clips to judge on (0 is the default "
                   "judging clip; e.g. 0,1,2,3,4).")
@click.option("--detect-every", type=click.IntRange(1, 30), default=1, show_default=True)
@click.option("--score", "scores", type=click.Choice(list(SCORES)), multiple=True, default=("raw",), show_default=True,
              help="The decision's score (as mfr watch --score); repeat to judge both on the same clips. as-norm uses "
                   "the model's cohort less everyone the clip shows.")
@looks_option
@video_detector_options
@report_options
def bench_watch_command(model_dir: Path, clip: Path | None, seeds: str, detect_every: int, scores: tuple[str, ...],
                        looks: int, detector: str, detector_package: Path | str | None, detector_precision: str | None,
                        pipeline: bool, detect_workers: int, output: ReportOutput) -> None:
    """Accuracy of mfr watch on synthetic clips with ground truth: people named, strangers named, MOT metrics.

    The clip's known people are enrolled from their enrolment photos (never shown in the clip) into a
    fresh gallery; every appearance is then checked, frame by frame, against the names the tracks over it
    showed. One line per clip and score.
    """
    import tempfile

    from mfr.benchmarks.clip_eval import score_as_dict
    from mfr.benchmarks.pipeline import watch_accuracy
    from mfr.data.clips import ClipConfig, make_clip
    from mfr.recognition.decision import DecisionPolicy
    from mfr.runtime.embedder import FaceEmbedder
    from mfr.runtime.machine import fingerprint

    seed_list = int_list(seeds, "--seeds", "seeds")
    if clip is not None and seeds != "0":
        raise click.BadParameter("judges the given --clip; --seeds chooses generated clips", param_hint="--seeds")
    face_detector, name, loop = loop_detector(detector, detector_package, detector_precision, 640, pipeline,
                                              detect_workers)
    embedder = FaceEmbedder.open(model_dir)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mfr-clip-") as tmp:
        clips = [(None, clip)] if clip is not None else [(seed, Path(tmp) / f"seed-{seed}") for seed in seed_list]
        for seed, path in clips:
            if seed is not None:
                log(f"generating the clip of seed {seed}: {make_clip(path, ClipConfig(seed=seed))}")
            for score in dict.fromkeys(scores):
                result, stats = watch_accuracy(path, embedder, face_detector, redacted(str(model_dir)), detect_every,
                                               DecisionPolicy(score=score, looks=looks), loop)
                s: dict[str, Any] = score_as_dict(result)
                runs.append({"seed": seed, "clip": str(clip) if seed is None else "generated", "score_rule": score,
                             "looks": looks, "score": s, "stats": stats})
                output.text(
                    f"{'clip ' + str(clip) if seed is None else f'seed {seed}'}, {score}: enrolled appearances named "
                    f"correctly: {s['enrolled_named_correctly']}/{s['enrolled_appearances']} "
                    f"({100 * s['enrolled_correct_rate']:.1f} %), named wrongly: {s['enrolled_named_wrongly']}; "
                    f"strangers named: {s['strangers_named']}/{s['stranger_appearances']} appearances, "
                    f"{s['stranger_tracks_named']}/{s['stranger_tracks']} tracks; face-frames shown with a wrong "
                    f"name: {s['face_frames_named_wrongly']} of {s['visible_face_frames']} visible, with the right "
                    f"one: {s['face_frames_named_correctly']}; IDF1 {s['idf1']:.3f}, ID switches {s['id_switches']}, "
                    f"fragmentations {s['fragmentations']}, MOTA {s['mota']:.3f}; embedded "
                    f"{100 * s['embedded_share']:.1f} % of face-frames; {stats['frames_per_second']} frames/s")
    output.data({"runs": runs, "detector": name, "machine": fingerprint()})


@bench_group.command("cameras")
@click.option("--model", "model_dir", type=MODEL_LOCATION, required=True,
              help="Recognition engine or package (with measured thresholds), as mfr watch --model.")
@click.option("--detector", type=click.Choice(list(DETECTORS)), default="yunet", show_default=True,
              help="Face detector, as mfr watch --detector.")
@click.option("--detector-package", type=MODEL_LOCATION, default=None,
              help="Detector package (a calibrated one for int8), as mfr watch --detector-package.")
@click.option("--detector-precisions", default="fp32", show_default=True,
              help="Comma-separated detector precisions to size for (fp32, int8: a calibrated --detector-package).")
@click.option("--resolutions", default="720p", show_default=True, help="Comma-separated: 480p, 720p, 1080p.")
@click.option("--faces", default="5", show_default=True, help="Comma-separated faces on screen per camera.")
@click.option("--detect-every", "detect_every", default="1,2", show_default=True,
              help="Comma-separated detection intervals (frames).")
@click.option("--fps", type=click.FloatRange(1, 60), default=15.0, show_default=True, help="Each camera's frame rate.")
@click.option("--seconds", type=click.FloatRange(4, 600), default=12.0, show_default=True,
              help="Length of each trial (each camera's generated clip).")
@click.option("--max-p95", type=click.FloatRange(1), default=200.0, show_default=True,
              help="Capture-to-processed p95 (ms) every stream must stay within.")
@click.option("--limit", type=click.IntRange(1, 256), default=32, show_default=True, help="Most cameras tried.")
@click.option("--detect-size", type=click.IntRange(160, 4096), default=640, show_default=True)
@click.option("--pipeline/--no-pipeline", default=True, show_default=True, help="As mfr watch --pipeline.")
@click.option("--detect-workers", type=click.IntRange(1, 16), default=None,
              help="As mfr watch --detect-workers [default: as mfr watch].")
@report_options
def bench_cameras_command(model_dir: Path | str, detector: str, detector_package: Path | str | None,
                          detector_precisions: str, resolutions: str, faces: str, detect_every: str, fps: float,
                          seconds: float, max_p95: float, limit: int, detect_size: int, pipeline: bool,
                          detect_workers: int | None, output: ReportOutput) -> None:
    """How many real-time cameras one mfr watch process serves on this machine: cameras per box.

    Each camera is a generated clip with its own faces (synthetic: real photos pasted on a drawn scene),
    played at --fps on its own clock as a camera delivers frames (a frame the loop has no time for is
    dropped). A number of cameras holds when no stream drops a frame and every stream's capture-to-processed
    p95 is within --max-p95; the number is doubled until it fails, then bisected. One row per detector
    precision, resolution, faces and detection interval, with the share of core-time per stage.
    """
    import tempfile

    from mfr.benchmarks.cameras import CameraLoad, markdown_table, measure_cameras
    from mfr.benchmarks.pipeline import RESOLUTIONS
    from mfr.cache import default_cache_dir
    from mfr.cli.watch_cli import DEFAULT_DETECT_WORKERS, PIPELINED_EMBEDDER_THREADS
    from mfr.runtime.embedder import FaceEmbedder

    chosen = [r.strip() for r in resolutions.split(",") if r.strip()]
    if not chosen or any(r not in RESOLUTIONS for r in chosen):
        raise click.BadParameter(f"choose from {', '.join(RESOLUTIONS)}", param_hint="--resolutions")
    precisions = [p.strip() for p in detector_precisions.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "int8") for p in precisions):
        raise click.BadParameter("choose from fp32, int8", param_hint="--detector-precisions")
    detectors = {}
    for precision in precisions:
        face_detector, name, loop = loop_detector(detector, detector_package, precision, detect_size, pipeline,
                                                  detect_workers or DEFAULT_DETECT_WORKERS)
        detectors[name] = face_detector
    loads = [CameraLoad(resolution, count, fps, seconds, every, max_p95) for resolution in chosen
             for count in int_list(faces, "--faces", "face counts", True)
             for every in int_list(detect_every, "--detect-every", "intervals", True)]
    embedder = FaceEmbedder.open(model_dir, threads=PIPELINED_EMBEDDER_THREADS if loop is not None else 0)
    with tempfile.TemporaryDirectory(prefix="mfr-bench-cameras-") as scratch:
        report = measure_cameras(redacted(str(model_dir)), embedder, detectors, loads, default_cache_dir(),
                                 Path(scratch), loop, limit, log)
    output.text(markdown_table(report.to_dict()))
    log(cpu_label(report.machine))
    output.data(report.to_dict())


@bench_group.command("make-clip")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--width", type=click.IntRange(160, 7680), default=1280, show_default=True)
@click.option("--height", type=click.IntRange(120, 4320), default=720, show_default=True)
@click.option("--fps", type=click.FloatRange(1, 120), default=15.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def bench_make_clip_command(out: Path, width: int, height: int, fps: float, seed: int) -> None:
    """Generate a synthetic test clip (clip.mp4), its ground truth (truth.json) and enrolment photos (enrol/).

    Real photos from the data folder (LFW faces, MFR2's real masked faces; some LFW faces get synthetic masks)
    pasted on a drawn scene, moving, crossing, passing behind a pillar; 8 enrolled people and 12 strangers.
    """
    from mfr.data.clips import ClipConfig, make_clip

    summary = make_clip(out, ClipConfig(width=width, height=height, fps=fps, seed=seed))
    click.echo(f"wrote {out}/clip.mp4, truth.json and enrol/ (synthetic): {summary}")


@bench_group.command("search")
@click.option("--templates", "sizes", default="1000,10000,100000", show_default=True,
              help="Comma-separated gallery sizes (templates).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Probes per search call.")
@report_options
def bench_search_command(sizes: str, batch: int, output: ReportOutput) -> None:
    """Time of the exact gallery search (best template per person, top two) by gallery size."""
    from mfr.benchmarks.search import markdown_table, measure_search

    report = measure_search(int_list(sizes, "--templates", "sizes", positive=True), batch=batch)
    output.text(markdown_table(report))
    output.data(report.to_dict())


@bench_group.command("gallery")
@click.option("--model", "--package", "--engine", "model_dir", cls=HiddenAliases,
              type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Recognition model whose embeddings of LFW photos the synthetic galleries are "
                                  "modelled on.")
@click.option("--sizes", default="1e3,1e4,1e5,1e6", show_default=True,
              help="Comma-separated gallery sizes (templates).")
@click.option("--methods", default=None,
              help="Comma-separated searches to measure (mfr identify --search's choices but auto; pgvector needs "
                   "--postgres) [default: all of them].")
@click.option("--ivf-shares", default="0.1,0.2,0.3,0.5", show_default=True,
              help="Shares of the IVF lists scanned per probe (faiss-ivfpq).")
@click.option("--hnsw-ef", default="64,128,256,512", show_default=True, help="Search expansion values (usearch-hnsw).")
@click.option("--pg-ef", default="40,80,160,320", show_default=True, help="hnsw.ef_search values (pgvector).")
@click.option("--candidates", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="Nearest templates whose people are re-scored exactly.")
@click.option("--postgres", "postgres_url", default=None,
              help="A PostgreSQL server with pgvector (postgresql://...); its tables are replaced by the benchmark's.")
@click.option("--probes", type=click.IntRange(10, 100_000), default=1000, show_default=True,
              help="Probes per size (new photos of enrolled people), searched one at a time.")
@click.option("--lfw-photos", type=click.IntRange(100, 13_233), default=4000, show_default=True,
              help="Real LFW photos embedded to fit the model the galleries are drawn from.")
@click.option("--cache", "cache_root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Cache for the LFW embeddings [default: the mfr cache].")
@report_options
@click.option("--markdown", "markdown_out", type=click.Path(path_type=Path), default=None)
def bench_gallery_command(model_dir: Path, sizes: str, methods: str | None, ivf_shares: str, hnsw_ef: str, pg_ef: str,
                          candidates: int,
                          postgres_url: str | None, probes: int, lfw_photos: int, cache_root: Path | None,
                          output: ReportOutput,
                          markdown_out: Path | None) -> None:
    """Search latency (p50/p95), recall@1 against exact search, memory and enrolment rate by gallery size.

    The galleries are synthetic, drawn from a two-covariance model fitted to the model's embeddings of real
    LFW photos (see mfr.benchmarks.gallery_scale); one template per person, probes searched one at a time.
    """
    from mfr.benchmarks.gallery_scale import lfw_statistics, markdown_table, measurable_searches, measure_gallery
    from mfr.cache import default_cache_dir
    from mfr.runtime.embedder import FaceEmbedder

    try:
        size_list = [int(float(v)) for v in sizes.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{sizes!r}: sizes are numbers such as 1e3,1e4", param_hint="--sizes") from None
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else measurable_searches()
    unknown = set(chosen) - set(measurable_searches())
    if unknown or not size_list or min(size_list) < 10:
        raise click.BadParameter(f"unknown method(s) {sorted(unknown)}" if unknown else "sizes of 10 or more",
                                 param_hint="--methods" if unknown else "--sizes")
    statistics = lfw_statistics(FaceEmbedder.open(model_dir), cache_root or default_cache_dir(), lfw_photos)
    try:
        shares = [float(v) for v in ivf_shares.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{ivf_shares!r}: shares such as 0.1,0.3", param_hint="--ivf-shares") from None
    report = measure_gallery(statistics, size_list, chosen, shares,
                             int_list(hnsw_ef, "--hnsw-ef", "values", positive=True),
                             int_list(pg_ef, "--pg-ef", "values", positive=True), postgres_url, probes, candidates,
                             log=log)
    if "pgvector" in chosen and not postgres_url:
        report.notes.append("pgvector not measured: no --postgres server given")
    table = markdown_table(report)
    output.text(table)
    if markdown_out is not None:
        markdown_out.write_text(table + "\n")
    output.data(report.to_dict())


@bench_group.command("recognition")
@click.option("--model", "--package", "--engine", "model_dir", cls=HiddenAliases,
              type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Recognition package or engine directory.")
@click.option("--photos", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="A folder of photos [default: the demo photos].")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--detector-package", type=click.Path(path_type=Path), default=None,
              help="RetinaFace package (default: exported once into the cache).")
@report_options
def bench_recognition_command(model_dir: Path, photos: Path | None, rounds: int, detector_package: Path | None,
                              output: ReportOutput) -> None:
    """Enrolment photos/s and identification faces/s, the whole per-photo path of mfr gallery / mfr identify."""
    from mfr.benchmarks.recognition_speed import measure_recognition_speed
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector
    from mfr.paths import dataset_dir
    from mfr.recognition.enroll import photo_files
    from mfr.runtime.embedder import FaceEmbedder

    files = photo_files([photos or dataset_dir("demo") / "examples"])
    detector, name = make_detector("retinaface", detector_package, default_cache_dir(), log)
    report = measure_recognition_speed(FaceEmbedder.open(model_dir), detector, name, files, rounds)
    output.text(report.summary())
    output.data(report.to_dict())


@bench_group.command("preprocess")
@click.option("--frame", "frame_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A photo with faces [default: the first demo photo].")
@click.option("--batch", "batches", default="1,8,64,256", show_default=True, help="Comma-separated face counts.")
@click.option("--rounds", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--model", "model_name", type=click.Choice(recognition_model_names()),
              default=DEFAULT_RECOGNITION_MODEL, show_default=True,
              help="Whose preprocessing spec (crop size, template, colour order, normalisation) is measured.")
@click.option("--detector-package", type=click.Path(path_type=Path), default=None,
              help="RetinaFace package for the landmarks (default: exported once into the cache).")
@report_options
def bench_preprocess_command(frame_path: Path | None, batches: str, rounds: int, model_name: str,
                             detector_package: Path | None, output: ReportOutput) -> None:
    """Faces/s and effective bandwidth of the CUDA preprocessing kernel vs the CPU path (OpenCV), interleaved.

    The faces of one frame (detected by RetinaFace) are repeated up to each batch size. Without a GPU
    only the CPU path is measured, and the report says why.
    """
    from mfr.benchmarks.preprocess import PreprocessReport, markdown_table, measure_preprocess
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector
    from mfr.errors import EngineError, MfrError
    from mfr.paths import dataset_dir, report_path
    from mfr.registry import MODELS
    from mfr.runtime.image_io import read_image_bgr

    sizes = int_list(batches, "--batch", "batch sizes", positive=True)
    path = frame_path or sorted(dataset_dir("demo").rglob("*.jp*g"))[0]
    frame = read_image_bgr(path)
    detector, _ = make_detector("retinaface", detector_package, default_cache_dir(), log)
    landmarks = [face.landmarks for face in detector.detect(frame)]
    if not landmarks:
        raise MfrError(f"{path}: no face found to preprocess")
    spec = MODELS[model_name].spec
    gpu, missing = None, None
    try:
        from mfr.runtime.cuda_preprocess import CudaPreprocessor

        gpu = CudaPreprocessor(spec, max_faces=max(sizes))
    except EngineError as exc:
        missing = str(exc)
        log(f"GPU path not measured: {missing}")
    results = measure_preprocess(frame, landmarks, spec, sizes, gpu, rounds=rounds)
    report = PreprocessReport(report_path(path), list(frame.shape), results, rounds, missing)
    output.text(markdown_table(report))
    output.data(report.to_dict())


@cli.command("report")
@click.argument("outputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.html"),
              show_default=True, help="The HTML file to write (self-contained: it opens offline).")
@click.option("--title", default="mfr report", show_default=True, help="The page's heading (a site, a model).")
@click.option("--snapshots", "crops_from", type=click.Path(path_type=Path, file_okay=False, exists=True),
              multiple=True, help="Where the events' snapshot files are, when they moved since the run.")
def report_command(outputs: tuple[Path, ...], out: Path, title: str, crops_from: tuple[Path, ...]) -> None:
    """One HTML page of OUTPUTS, to look at: accuracy (ROC and DET, the INT8 drop, the calibration's
    fallback), speed (latency CDFs, throughput, the camera loop's stages, cameras per box), a camera run
    (a timeline per track and the best crop of each, from an mfr watch --events log) and gallery scale,
    with the docs' tables beside the plots.

    OUTPUTS: the JSON of mfr eval --report, mfr bench ... --report, mfr-export calibrate --report or a
    package's manifest.json, mfr watch --stats-json, and .jsonl event logs; files of another kind are
    listed as not shown.
    """
    from mfr.benchmarks.page import build_report
    from mfr.cli.common import command_line

    shown = build_report(list(outputs), out, title, list(crops_from), command_line())
    click.echo(f"wrote {out}: {', '.join(shown)}")


@cli.command("restore")
@click.argument("photo", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--model", "--package", "package", cls=HiddenAliases, type=click.Path(path_type=Path), required=True,
              help="MEER package with a restoring decoder (from mfr train meer).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="PNG file to write.")
@click.option("--detector", type=click.Choice(list(DETECTORS)), default="retinaface", show_default=True,
              help="Face detector for a photo that is not already an aligned crop of the model's size.")
@click.option("--detector-package", type=click.Path(path_type=Path), default=None,
              help="RetinaFace package (default: exported once into the cache).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def restore_command(photo: Path, package: Path, out: Path, detector: str, detector_package: Path | None,
                    as_json: bool) -> None:
    """Show the unmasked face a MEER model imagines under a mask: a SYNTHESIS, never evidence of identity.

    The largest face of PHOTO is detected and aligned (a photo of exactly the model's input size is
    taken as an aligned crop), and the restoring decoder draws the face from the identity features the
    model keeps. The PNG shows the aligned input beside the restored face under a banner that labels it
    a synthesis. Nothing recognises with it.
    """
    from mfr.atomic import atomic_file
    from mfr.runtime.detection import largest_face
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import align_faces
    from mfr.runtime.restore import FaceRestorer, restoration_sheet

    restorer = FaceRestorer.open(package)
    spec = restorer.manifest.spec
    image = read_image_bgr(photo)
    box = None
    if spec.input_size is not None and image.shape[:2] == tuple(spec.input_size):
        crop = image
    else:
        from mfr.cli.gallery_cli import make_face_detector

        face = largest_face(make_face_detector(detector, detector_package).detect(image))
        if face is None:
            raise click.ClickException(f"{photo}: no face found ({detector})")
        crop, box = align_faces(image, [face.landmarks], spec)[0], [round(float(v), 1) for v in face.box]
    restored = restorer.restore(crop[None])[0]
    import cv2

    with atomic_file(out, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), restoration_sheet(crop, restored)):
            raise click.ClickException(f"could not write {out}")
    summary = {"photo": str(photo), "out": str(out), "aligned_input": box is None, "face_box": box,
               "synthesis": True}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote {out}: the face a {restorer.manifest.model} model imagines (a synthesis, not evidence of "
               f"identity)")


@cli.command("mask-sheet")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--count", type=click.IntRange(min=1), default=24, show_default=True, help="LFW faces to mask.")
@click.option("--seed", type=int, default=0, show_default=True, help="Mask seed (as in mfr eval --seed).")
@click.option("--renderer", type=click.Choice(["templates", "procedural"]), default="templates", show_default=True,
              help="Which mask renderer (as in mfr eval --mask-renderer).")
def mask_sheet_command(out: Path, count: int, seed: int, renderer: str) -> None:
    """Contact sheet of LFW faces next to their synthetic masks, to check the masks by eye."""
    import cv2

    from mfr.augment.masks import contact_sheet
    from mfr.augment.renderers import mask_renderer
    from mfr.data.lfw import lfw_root, sample_images
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.image_io import read_image_bgr

    paths = sample_images(count)
    root = lfw_root()
    sheet = contact_sheet([read_image_bgr(p) for p in paths], [aligned_crop_landmarks(112, 112)] * len(paths),
                          [str(p.relative_to(root)) for p in paths], mask_renderer(renderer, seed))
    from mfr.atomic import atomic_file

    with atomic_file(out, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), sheet):
            raise click.ClickException(f"could not write {out}")
    click.echo(f"wrote {out} ({len(paths)} faces)")


def _register_commands() -> None:
    from mfr.cli.doctor_cli import doctor_command
    from mfr.cli.gallery_cli import gallery_group, identify_command, thresholds_command
    from mfr.cli.serve_cli import serve_command
    from mfr.cli.train_cli import train_group
    from mfr.cli.watch_cli import watch_command

    for command in (gallery_group, identify_command, thresholds_command, watch_command, doctor_command,
                    serve_command, train_group):
        cli.add_command(command)


_register_commands()

if __name__ == "__main__":
    cli()
