"""``mfr gallery``, ``mfr identify`` and ``mfr thresholds``: enrol people, ask who is in a photo.

Wiring only: the gallery, enrolment and the decision rule live in ``mfr.recognition``, the threshold
measurement in ``mfr.benchmarks.thresholds``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import (
    MODEL_LOCATION,
    HiddenAliases,
    MfrGroup,
    echo_json,
    int_list,
    log,
    max_pixels_option,
    progress_bar,
)
from mfr.paths import default_gallery_location, is_gallery_url
from mfr.recognition.decision import SCORES
from mfr.runtime.detectors import DETECTORS


def gallery_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--gallery", "gallery_path", default=None, metavar="FILE|URL",
                        help="Gallery: an SQLite file, or postgresql://USER@HOST/DB for a gallery shared by a fleet "
                             "[default: $MFR_GALLERY, else ~/.local/share/mfr/gallery.db].")(command)


def model_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--model", "--package", "--engine", "model_dir", cls=HiddenAliases, type=MODEL_LOCATION,
                        required=True, help="Recognition model: a package, an engine directory from "
                                            "mfr-export build-engine, or a served model "
                                            "(triton://HOST:PORT/MODEL, see mfr serve).")(command)


def detector_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--detector", type=click.Choice(list(DETECTORS)), default="retinaface",
                           show_default=True, help="Face detector for photos.")(command)
    return click.option("--detector-package", type=MODEL_LOCATION, default=None,
                        help="RetinaFace package (default: exported once into the cache).")(command)


def decision_options(command: Callable[..., Any]) -> Callable[..., Any]:
    from mfr.recognition.decision import DEFAULT_MARGIN, DEFAULT_TARGET_FAR

    command = click.option("--far", "target_far", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                           default=DEFAULT_TARGET_FAR, show_default=True,
                           help="Largest share of strangers that may be named as an enrolled person, whatever "
                                "the gallery's size (thresholds from the model's measured table).")(command)
    command = click.option("--margin", "min_margin", type=click.FloatRange(0, 2), default=DEFAULT_MARGIN,
                           show_default=True, help="Smallest score lead of the best person over the second.")(command)
    return click.option("--threshold", type=click.FloatRange(-1, 1), default=None,
                        help="Fixed cosine threshold instead of the model's measured table.")(command)


def search_option(command: Callable[..., Any]) -> Callable[..., Any]:
    from mfr.recognition.searches import SEARCHES

    choices = "; ".join(f"{name}: {entry.summary}" for name, entry in SEARCHES.items())
    return click.option("--search", "search", type=click.Choice(list(SEARCHES)), default="auto", show_default=True,
                        help=f"Gallery search ({choices}). The approximate ones re-score their candidates' people "
                             "exactly; see mfr bench gallery.")(command)


def open_gallery(location: str | None) -> Any:
    from mfr.recognition.gallery import open_gallery as open_location

    return open_location(location or default_gallery_location())


@contextmanager
def gallery_to_write(location: str | None) -> Iterator[Any]:
    """The gallery a command adds to, created if new; a new gallery file is removed again if the command
    fails, so a failed first enrolment leaves no file behind (a server's schema stays: it is empty)."""
    from mfr.recognition.gallery import open_gallery as open_location

    location = location or default_gallery_location()
    path = None if is_gallery_url(location) else Path(location).expanduser()
    new = path is not None and not path.exists()
    gallery = open_location(location, create=True)
    try:
        yield gallery
    except BaseException:
        gallery.close()
        if new and path is not None:
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
        raise
    gallery.close()


def open_embedder(model_dir: Path | str, threads: int = 0) -> Any:
    from mfr.runtime.embedder import FaceEmbedder

    return FaceEmbedder.open(model_dir, threads=threads)


def make_face_detector(name: str, package: Path | str | None) -> Any:
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector

    return make_detector(name, package, default_cache_dir(), log)[0]


def policy(target_far: float, min_margin: float, threshold: float | None, score: str = "raw", looks: int = 1) -> Any:
    from mfr.recognition.decision import DecisionPolicy

    return DecisionPolicy(target_far, min_margin, threshold, score, looks)


def looks_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--looks: the decisions a track showing no name takes (mfr watch and its benchmark)."""
    from mfr.recognition.track_identity import DEFAULT_LOOKS

    return click.option(
        "--looks", type=click.IntRange(1, 8), default=DEFAULT_LOOKS, show_default=True,
        help="Decisions a track that shows no name takes before it stays unknown: at 3 embeddings, then each "
             "time its evidence doubles; each holds --far / LOOKS, so a stranger's track is named at most --far "
             "over all of them (one stranger rate per track). Re-verification after a crossing starts them again."
    )(command)


def score_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--score: raw cosines and the measured table, or cohort-normalised scores calibrated on the gallery."""
    return click.option(
        "--score", type=click.Choice(list(SCORES)), default="raw", show_default=True,
        help="raw: cosine against the manifest's thresholds (union bound over the gallery's templates); as-norm: "
             "scores normalised against the model's cohort of strangers (written by mfr thresholds --write) and "
             "the threshold calibrated on this gallery, the cohort playing strangers; names more people at the "
             "same stranger rate where the cohort resembles the camera's faces (docs/recognition.md: Normalised "
             "scores)."
    )(command)


def mask_generator(add_masked: bool | None) -> Any:
    """The synthetic masks for masked templates: on when asked, or by default where the templates exist."""
    from mfr.augment.masks import MaskGenerator
    from mfr.errors import DataError

    if add_masked is False:
        return None
    try:
        return MaskGenerator()
    except DataError as exc:
        if add_masked:
            raise
        log(f"no masked templates ({exc})")
        return None


@click.group("gallery", cls=MfrGroup)
def gallery_group() -> None:
    """The enrolment gallery: who is known, with templates of one model (SQLite, one file)."""


def enrol_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in (
        click.option("--json", "as_json", is_flag=True, help="Print what was enrolled as JSON."),
        click.option("--skip-unusable", is_flag=True,
                     help="Enrol the usable photos and list the others, instead of refusing the whole enrolment."),
        click.option("--force", is_flag=True, help="Enrol faces that match another enrolled person too."),
        click.option("--add-masked/--no-add-masked", default=None,
                     help="Also store a synthetic-masked template per photo [default: when the mask templates "
                          "are found]."),
        decision_options, detector_options, model_option, gallery_option, max_pixels_option,
    ):
        command = option(command)
    return command


def _enroller(gallery: Any, model_dir: Path | str, detector: str, detector_package: Path | str | None,
              add_masked: bool | None, target_far: float, min_margin: float, threshold: float | None,
              max_pixels: int) -> Any:
    from mfr.recognition.enroll import Enroller

    return Enroller(gallery, open_embedder(model_dir), make_face_detector(detector, detector_package),
                    policy(target_far, min_margin, threshold), masks=mask_generator(add_masked), log=log,
                    max_pixels=max_pixels)


def _report(results: list[tuple[Any, Any]], as_json: bool) -> None:
    rows = [{"name": r.person.name, "added": r.added, "already_enrolled": r.already,
             "templates": r.person.templates, "masked_templates": r.person.masked_templates,
             "skipped": [{"photo": str(u.source), "reason": u.reason} for u in plan.unusable]}
            for plan, r in results]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}: {row['added']} templates added ({row['already_enrolled']} already there), "
                   f"{row['templates']} in all ({row['masked_templates']} masked)")
        for skipped in row["skipped"]:
            click.echo(f"  skipped {skipped['photo']}: {skipped['reason']}")


@gallery_group.command("enroll")
@click.option("--name", required=True, help="The person's name (new, or one enrolled before).")
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@enrol_options
def enroll_command(name: str, photos: tuple[Path, ...], gallery_path: str | None, model_dir: Path | str, detector: str,
                   detector_package: Path | str | None, target_far: float, min_margin: float, threshold: float | None,
                   add_masked: bool | None, force: bool, skip_unusable: bool, as_json: bool,
                   max_pixels: int) -> None:
    """Enrol NAME from PHOTOS (files or folders): one face per photo, checked, aligned, embedded.

    A photo with several faces enrols the largest (and says so); photos without a usable face, or whose
    face matches someone already enrolled, stop the enrolment with the list (see --skip-unusable, --force).
    Enrolling the same photo again changes nothing.
    """
    from mfr.recognition.enroll import photo_files

    files = photo_files(photos)
    with gallery_to_write(gallery_path) as gallery:
        enroller = _enroller(gallery, model_dir, detector, detector_package, add_masked, target_far, min_margin,
                             threshold, max_pixels)
        plan = enroller.plan(name, files)
        _report([(plan, enroller.commit(plan, force, skip_unusable))], as_json)


@gallery_group.command("enroll-dir")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@enrol_options
def enroll_dir_command(directory: Path, gallery_path: str | None, model_dir: Path | str, detector: str,
                       detector_package: Path | str | None, target_far: float, min_margin: float,
                       threshold: float | None, add_masked: bool | None, force: bool, skip_unusable: bool,
                       as_json: bool, max_pixels: int) -> None:
    """Enrol everyone in DIRECTORY: one sub-folder per person, named as the person, holding their photos.

    Every photo is checked first; with problems (and without --skip-unusable/--force) nothing is written.
    Then each person is written in one transaction: an interrupted run leaves every person either fully
    enrolled or absent, and running it again completes it.
    """
    from mfr.errors import DataError, GalleryError
    from mfr.recognition.enroll import photo_files

    folders = sorted(p for p in directory.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{directory}: no sub-folders (one folder per person, named as the person)")
    with gallery_to_write(gallery_path) as gallery:
        enroller = _enroller(gallery, model_dir, detector, detector_package, add_masked, target_far, min_margin,
                             threshold, max_pixels)
        plans = enroller.plan_many([(folder.name, photo_files([folder])) for folder in folders],
                                   lambda people: progress_bar(people, len(folders), "checking photos"))
        blocking = [line for plan in plans for line in plan.problems()
                    if (plan.duplicates and not force) or (plan.unusable and not skip_unusable)]
        empty = [plan.name for plan in plans if not plan.faces]
        if blocking or (empty and not skip_unusable):
            raise GalleryError(f"nothing enrolled from {directory}:\n  " + "\n  ".join(
                blocking + [f"{name}: no usable face" for name in empty])
                + "\n(--skip-unusable enrols the usable photos, --force faces that match someone else)")
        for name in empty:
            log(f"skipped {name}: no usable face")
        _report([(plan, enroller.commit(plan, force, skip_unusable)) for plan in plans if plan.faces], as_json)


@gallery_group.command("list")
@gallery_option
@click.option("--json", "as_json", is_flag=True)
def list_command(gallery_path: str | None, as_json: bool) -> None:
    """Everyone enrolled, with their template and negative counts."""
    with open_gallery(gallery_path) as gallery:
        people = gallery.people()
        if as_json:
            echo_json({"gallery": str(gallery.path), "model": gallery.model, "fingerprint": gallery.fingerprint,
                       "people": [asdict(p) for p in people]})
            return
        click.echo(f"{gallery.path}: {len(people)} people; model {gallery.model}")
        for p in people:
            click.echo(f"  {p.name}: {p.templates} templates ({p.masked_templates} masked), {p.negatives} negatives, "
                       f"enrolled {p.created}")


@gallery_group.command("show")
@click.argument("name")
@gallery_option
@click.option("--json", "as_json", is_flag=True)
def show_command(name: str, gallery_path: str | None, as_json: bool) -> None:
    """One person's record."""
    with open_gallery(gallery_path) as gallery:
        person = gallery.person(name)
    if as_json:
        echo_json(asdict(person))
        return
    for key, value in asdict(person).items():
        click.echo(f"{key:17s} {value}")


@gallery_group.command("remove")
@click.argument("name")
@gallery_option
@click.option("--events-only", is_flag=True,
              help="Erase NAME's sightings (events and their snapshots) and keep the enrolment.")
@click.option("--before", "before", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]),
              default=None, metavar="DATE",
              help="Erase only sightings older than DATE (UTC; YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS). Implies "
                   "--events-only.")
@click.option("--events-log", "logs", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True,
              help="Also rewrite this mfr watch --events JSON Lines file without the sightings (repeatable; "
                   "while no mfr watch writes to it).")
@click.option("--no-vacuum", is_flag=True,
              help="PostgreSQL: skip rewriting the tables (VACUUM FULL, which locks them while it runs); the "
                   "erased rows' bytes then stay in the table files until the space is reused.")
@click.option("--json", "as_json", is_flag=True, help="Print what was erased as JSON.")
def remove_command(name: str, gallery_path: str | None, events_only: bool, before: Any, logs: tuple[Path, ...],
                   no_vacuum: bool, as_json: bool) -> None:
    """Erase NAME: their templates, face crops and negatives, every sighting of them (each event of a track
    that named them, and the track's snapshot file), in one transaction, then the snapshot files and the
    database's free space. Replicas erase their copies, their events (delivered or not) and their
    snapshots at their next sync. Running it again finishes an interrupted removal. What is not erased:
    README, "Privacy"."""
    import calendar

    from mfr.recognition.erasure import Erasure, erase_from_log, name_digest
    from mfr.recognition.events import utc_now

    cutoff = None if before is None else utc_now(calendar.timegm(before.timetuple()))
    with open_gallery(gallery_path) as gallery:
        result = gallery.erase(name, before=cutoff, events_only=events_only or cutoff is not None,
                               vacuum=not no_vacuum)
    lines = {str(log): erase_from_log(log, Erasure(name_digest(name), cutoff or utc_now())) for log in logs}
    person = result.person
    report = {"name": name, "removed": result.removed,
              "templates": person.templates if person and result.removed else 0,
              "negatives": person.negatives if person and result.removed else 0,
              "events": result.events, "snapshot_files": result.files, "log_lines": lines,
              "previously_erased": result.previously, "storage": result.scrub}
    if as_json:
        echo_json(report)
        return
    what = (f"removed {name} ({report['templates']} templates, {report['negatives']} negatives)" if result.removed
            else f"kept {name}'s enrolment" if person else f"{name} is not enrolled")
    if result.previously and not result.removed:
        what += f" (erased before, {result.previously})"
    click.echo(f"{what}; erased {result.events} sightings and {result.files} snapshot files"
               + "".join(f"; {count} lines of {log}" for log, count in lines.items()))
    click.echo(f"storage: {result.scrub}")


@gallery_group.command("rename")
@click.argument("old")
@click.argument("new")
@gallery_option
def rename_command(old: str, new: str, gallery_path: str | None) -> None:
    """Rename OLD to NEW (NEW must not be enrolled)."""
    with open_gallery(gallery_path) as gallery:
        gallery.rename(old, new)
    click.echo(f"renamed {old} to {new}")


@gallery_group.command("sync")
@gallery_option
@click.option("--replica", "replica_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The local replica file (created if new).")
@click.option("--json", "as_json", is_flag=True)
def sync_command(gallery_path: str | None, replica_path: Path, as_json: bool) -> None:
    """Bring a device's replica of the central gallery (--gallery) up to date, and deliver its queued events.

    The replica is pulled whole when the central gallery's revision changed (enrolments, removals,
    renames, negatives); events that `mfr watch --gallery-replica` queued while the server was
    unreachable are delivered, each once (event ids are unique on the server). `mfr watch` does the same
    in the background while it runs.
    """
    from mfr.recognition.replica import sync_once

    result = sync_once(replica_path, gallery_path or default_gallery_location())
    if as_json:
        echo_json(asdict(result))
        return
    click.echo(f"{replica_path}: {'pulled' if result.pulled else 'already at'} revision {result.revision} of "
               f"{result.central} ({result.people} people, {result.templates} templates); delivered "
               f"{result.delivered} events, {result.queued} still queued"
               + (f"; applied {result.erasures} erasures" if result.erasures else ""))


@gallery_group.command("check")
@gallery_option
@click.option("--snapshots", "snapshot_dirs", type=click.Path(path_type=Path, exists=True), multiple=True,
              help="A folder of snapshots (mfr watch --snapshots), an events file or a gallery export to check too; "
                   "repeat.")
def check_command(gallery_path: str | None, snapshot_dirs: tuple[Path, ...]) -> None:
    """Faces are biometric data: say which gallery file (with its -wal/-shm files), snapshot folder or file
    others on this machine can read, and how to close it. Exit 1 when any is readable by others.

    Files mfr creates are 0600 and its folders 0700 whatever the umask; a gallery made by an older mfr, or
    files copied by hand, may not be. A PostgreSQL gallery's access is the server's (not checked here)."""
    from mfr.errors import MfrError
    from mfr.paths import default_gallery_location, is_gallery_url
    from mfr.private import exposed

    location = gallery_path or default_gallery_location()
    paths = list(snapshot_dirs)
    if is_gallery_url(location):
        click.echo(f"{location}: a PostgreSQL gallery: who may read it is the server's configuration")
    elif Path(location).expanduser().exists():
        paths.insert(0, Path(location).expanduser())
    else:
        raise MfrError(f"no gallery at {location}")
    found = exposed(paths)
    for line in found:
        click.echo(f"readable by others: {line}")
    if found:
        raise click.ClickException("others on this machine can read faces or sightings in the files above; close "
                                   "them with: chmod 600 FILE (chmod 700 for a folder)")
    click.echo(f"private: {', '.join(str(p) for p in paths) or 'nothing to check'} (owner only)")


@gallery_group.command("prune")
@gallery_option
@click.option("--events-older-than", "days", type=click.FloatRange(min=0, min_open=True), required=True,
              metavar="DAYS", help="Delete the events older than DAYS.")
def prune_command(gallery_path: str | None, days: float) -> None:
    """Delete old sightings from a gallery (a central PostgreSQL gallery, or a file): events older than
    DAYS, in one transaction; a replica's undelivered events are kept until delivered. For a device, mfr
    watch --retain-events does this while it runs; on a server, run this from cron or a systemd timer."""
    import time

    from mfr.recognition.events import utc_now

    with open_gallery(gallery_path) as gallery:
        deleted = gallery.prune_events(utc_now(time.time() - days * 86400.0))
    click.echo(f"deleted {deleted} events older than {days:g} days")


@gallery_group.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@gallery_option
def export_command(file: Path, gallery_path: str | None) -> None:
    """Write the whole gallery to FILE (portable, versioned JSON with crops and embeddings)."""
    from mfr.recognition.portable import export_gallery

    with open_gallery(gallery_path) as gallery:
        count = export_gallery(gallery, file)
    click.echo(f"wrote {file} ({count} people)")


@gallery_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@gallery_option
def import_command(file: Path, gallery_path: str | None) -> None:
    """Merge FILE (from gallery export) into the gallery, in one transaction; the same model only."""
    from mfr.recognition.portable import read_export

    data = read_export(file)
    with gallery_to_write(gallery_path) as gallery:
        people, templates = gallery.load(data)
    click.echo(f"imported {people} new people and {templates} templates from {file}")


@gallery_group.command("not")
@click.argument("name")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@gallery_option
@model_option
@detector_options
def not_command(name: str, image: Path, gallery_path: str | None, model_dir: Path | str, detector: str,
                detector_package: Path | str | None) -> None:
    """Record that the face in IMAGE is not NAME: a later face closer to it than to NAME is not named NAME."""
    from mfr.errors import GalleryError
    from mfr.recognition.enroll import FaceInPhoto, find_face
    from mfr.recognition.quality import QualityGate

    with open_gallery(gallery_path) as gallery:
        embedder = open_embedder(model_dir)
        face = find_face(image, make_face_detector(detector, detector_package), embedder.manifest.spec,
                         QualityGate(), None)
        if not isinstance(face, FaceInPhoto):
            raise GalleryError(f"{face.source}: {face.reason}")
        embedding = embedder.embed_crops(face.crop[None], flip=True)[0]
        added = gallery.add_negative(name, embedding, face.crop, face.sha256, embedder.fingerprint(),
                                     embedder.describe())
    click.echo(f"{image} recorded as not {name}" if added else f"{image} was already recorded as not {name}")


@gallery_group.command("reembed")
@gallery_option
@model_option
def reembed_command(gallery_path: str | None, model_dir: Path) -> None:
    """Recompute every template and negative from the stored crops with another model, in one transaction."""
    import numpy as np

    with open_gallery(gallery_path) as gallery:
        embedder = open_embedder(model_dir)
        computed = {}
        for table in ("templates", "negatives"):
            rows = gallery.stored_crops(table)
            embeddings = embedder.embed_crops(np.stack([crop for _, crop in rows]), flip=True) if rows else []
            computed[table] = {row_id: e for (row_id, _), e in zip(rows, embeddings, strict=True)}
        gallery.replace_embeddings(computed["templates"], computed["negatives"], embedder.fingerprint(),
                                   embedder.describe())
    click.echo(f"re-embedded {len(computed['templates'])} templates and {len(computed['negatives'])} negatives "
               f"with {embedder.describe()}")


@click.command("identify")
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@gallery_option
@model_option
@detector_options
@decision_options
@score_option
@search_option
@click.option("--masked", "mask_mode", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Mask state of the faces: auto (the mask classifier decides per face), or all masked / none.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per photo, for machines.")
@max_pixels_option
def identify_command(photos: tuple[Path, ...], gallery_path: str | None, model_dir: Path | str, detector: str,
                     detector_package: Path | str | None, target_far: float, min_margin: float, threshold: float | None,
                     score: str, search: str, mask_mode: str, as_json: bool, max_pixels: int) -> None:
    """Who is in PHOTOS? Every face: the enrolled person's name, or unknown, with score, margin and mask state.

    A face is named only if its best person's score clears the model's measured threshold (for the face's
    mask state, at --far strangers named for this gallery's size), leads the second person by --margin,
    and matches no negative recorded for that person.
    """
    import numpy as np

    from mfr.recognition.decision import Identifier
    from mfr.recognition.enroll import photo_files
    from mfr.recognition.mask_state import MaskClassifier, classifier_crops
    from mfr.runtime.engine_triton import redacted
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import align_faces

    files = photo_files(photos)
    embedder = open_embedder(model_dir)
    with open_gallery(gallery_path) as gallery:
        identifier = Identifier.for_gallery(gallery, embedder, policy(target_far, min_margin, threshold, score),
                                            redacted(str(model_dir)), search)
    face_detector = make_face_detector(detector, detector_package)
    classifier = MaskClassifier.load() if mask_mode == "auto" else None
    spec = embedder.manifest.spec
    results: list[dict[str, Any]] = []
    for path in files:
        image = read_image_bgr(path, max_pixels)
        faces = face_detector.detect(image)
        crops = align_faces(image, [f.landmarks for f in faces], spec)
        landmarks = [f.landmarks for f in faces]
        masked = (classifier.predict(classifier_crops(image, landmarks, spec, crops)) if classifier is not None
                  else np.full(len(faces), mask_mode == "yes", bool))
        decisions = identifier.decide(embedder.embed_crops(crops, flip=True), masked) if faces else []
        results.append({"photo": str(path), "faces": [
            {"box": [round(float(v), 1) for v in face.box], "name": d.name, "score": round(d.score, 4),
             "margin": None if not np.isfinite(d.margin) else round(d.margin, 4), "masked": d.masked,
             "threshold": round(d.threshold, 4), "reason": d.reason}
            for face, d in zip(faces, decisions, strict=True)]})
    if as_json:
        echo_json(results)
        return
    for result in results:
        click.echo(f"{result['photo']}: {len(result['faces'])} face(s)")
        for face in result["faces"]:
            margin = "-" if face["margin"] is None else f"{face['margin']:.3f}"
            click.echo(f"  {face['name'] or 'unknown':20s} score {face['score']:.3f} "
                       f"(threshold {face['threshold']:.3f}), margin {margin}, "
                       f"{'masked' if face['masked'] else 'unmasked'}, box {face['box']}"
                       + ("" if face["name"] else f" [{face['reason']}]"))


@click.command("thresholds")
@model_option
@click.option("--write", is_flag=True, help="Store the thresholds in the package's (or engine's) manifest.json.")
@click.option("--seed", "--mask-seed", "mask_seed", cls=HiddenAliases, type=int, default=0, show_default=True,
              help="Seed of the synthetic masks.")
@click.option("--folds", default=None,
              help="Measure on the people of these LFW folds (comma-separated, 1-based; e.g. 6,7,8,9,10) instead "
                   "of the people in no pair. For a model trained on the LFW demo split, whose training people "
                   "include those in no pair.")
@click.option("--people", "people_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Measure on your own faces of people who will not be enrolled: one sub-folder of photos (or "
                   "aligned 112x112 crops) per person. Closer to a deployment's faces than LFW.")
@click.option("--per-person", type=click.IntRange(min=1), default=4, show_default=True,
              help="With --folds or --people: at most this many photos of each person.")
@detector_options
@click.option("--allow-seen", is_flag=True,
              help="Measure even on people the package's training record says the model trained on (refused "
                   "otherwise: its thresholds would be too low); the record keeps how many.")
@click.option("--images", type=click.IntRange(min=20), default=None,
              help="Use only this many of the faces (a quick, coarser table: fewer FARs resolved).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="Which model of a package (an engine directory runs its own).")
@click.option("--json", "as_json", is_flag=True)
def thresholds_command(model_dir: Path | str, write: bool, mask_seed: int, folds: str | None,
                       people_dir: Path | None, per_person: int, detector: str, detector_package: Path | str | None,
                       allow_seen: bool, images: int | None,
                       precision: str | None, as_json: bool) -> None:
    """Measure identification thresholds: the cosine at which a given share of different-person comparisons
    is accepted, for unmasked and for masked faces, on LFW people who appear in no evaluation pair (1,549
    faces), on the people of --folds, or on your own (--people). The record names the people it was
    measured on, how many, and how many of them the model trained on: a package from mfr train (and the
    shipped mobilefacenet-masked) records its training people, and a set that holds any is refused.

    With --write they go into the manifest, where mfr gallery and mfr identify find them, and the faces'
    embeddings beside it (cohort-<sha>.npz): the cohort of normalised scores (--score as-norm). FARs the
    impostor pairs cannot resolve (fewer than 1/FAR pairs) are not listed.
    """
    from mfr.benchmarks.thresholds import ThresholdFaces, embed_cohort, seen_by_training, thresholds_of_cohort
    from mfr.cache import default_cache_dir
    from mfr.cli.detectors import make_detector
    from mfr.manifest import load_manifest
    from mfr.runtime.embedder import FaceEmbedder

    if write and not isinstance(model_dir, Path):
        raise click.BadParameter("--write stores the thresholds in a local package's manifest; measure a served "
                                 "model's thresholds on its package", param_hint="--write")
    if folds and people_dir is not None:
        raise click.BadParameter("give the people to measure on once: --folds or --people", param_hint="--people")
    if people_dir is not None:
        faces = ThresholdFaces.of_folder(people_dir, per_person)
    elif folds:
        faces = ThresholdFaces.of_folds(tuple(f - 1 for f in int_list(folds, "--folds", "fold numbers")), per_person)
    else:
        faces = ThresholdFaces.outside_pairs()
    faces = faces.spread(images)
    embedder = FaceEmbedder.open(model_dir, precision)
    seen = seen_by_training(faces, embedder.manifest.stages.training, allow_seen)
    face_detector, detector_name = (None, "none") if faces.aligned else make_detector(
        detector, detector_package, default_cache_dir(), log)
    cohort = embed_cohort(embedder, faces, mask_seed=mask_seed, detector=face_detector,
                          detector_name=detector_name, progress=progress_bar)
    record = thresholds_of_cohort(embedder, cohort, len(faces.paths), seen_people=seen)
    if write:
        assert isinstance(model_dir, Path)
        cohort_file = f"cohort-{record.model_sha256[:12]}.npz"
        record = replace(record, cohort_file=cohort_file, cohort_sha256=cohort.save(model_dir / cohort_file))
        manifest = load_manifest(model_dir).with_thresholds(record)
        manifest.save(model_dir)
        log(f"wrote the thresholds into {model_dir / 'manifest.json'} and the faces' embeddings, the cohort of "
            f"normalised scores, into {model_dir / cohort_file}")
    if as_json:
        echo_json(asdict(record))
        return
    smallest = "none" if record.smallest_far is None else f"{record.smallest_far:.0e}"
    click.echo(f"{embedder.describe()}; {record.data}; smallest FAR resolved {smallest}; "
               + ("the package does not record its training people: not checked" if record.seen_people is None
                  else f"{record.seen_people} of them trained on"))
    for table in (record.unmasked, record.masked, record.masked_template):
        click.echo(f"{table.probe} probes ({table.impostor_pairs:,} impostor pairs): " + ", ".join(
            f"FAR {far:.0e} -> {t:.4f}" for far, t in zip(table.far, table.threshold, strict=True)))
