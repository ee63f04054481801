"""The gallery through its commands, on real photos: enrol, identify, manage, refuse bad input, survive kills.

The demo photos hold five people, one folder each for enrolment and separate test photos named after
who is in them: identification must name them from their file names, which the code never reads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.export_cli import cli as export_cli
from mfr.cli.main import cli
from mfr.data.lfw import lfw_root
from mfr.paths import dataset_dir
from mfr.recognition.gallery import SCHEMA_VERSION, Gallery

DEMO = dataset_dir("demo") / "examples" / "knn_examples"
# who is in each test photo (read off the photos by a person, never by the code)
DEMO_TRUTH = {"alex_lacamoire1.jpg": ["alex_lacamoire"], "johnsnow_test1.jpg": ["kit_harington"],
              "kit_with_rose.jpg": ["kit_harington", "rose_leslie"], "obama1.jpg": ["obama"],
              "obama_and_biden.jpg": ["biden", "obama"]}


def run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def package(thresholded_package: Path) -> Path:
    return thresholded_package


@pytest.fixture(scope="module")
def enrolled(package: Path, retinaface_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gallery = tmp_path_factory.mktemp("gallery") / "g.db"
    result = run("gallery", "enroll-dir", DEMO / "train", "--gallery", gallery, "--model", package,
                 "--detector-package", retinaface_package, "--json")
    assert result.exit_code == 0, result.output
    return gallery


def copy_gallery(gallery: Path, tmp_path: Path) -> Path:
    target = tmp_path / "g.db"
    with Gallery.open(gallery) as source:
        source._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(gallery, target)
    return target


def people(gallery: Path) -> dict[str, int]:
    with Gallery.open(gallery) as g:
        return {p.name: p.templates for p in g.people()}


def test_thresholds_are_measured_into_the_manifest(package):
    from mfr.manifest import load_manifest

    manifest = load_manifest(package)
    assert len(manifest.thresholds) == 1
    record = manifest.thresholds[0]
    assert record.model_sha256 == manifest.sha256["onnx"]
    for table in (record.unmasked, record.masked):
        assert table.far[0] == 0.1 and all(far * table.impostor_pairs >= 1 for far in table.far)
        assert table.threshold == sorted(table.threshold)  # a smaller FAR needs a higher score
        assert 0.1 < table.threshold[0] < table.threshold[-1] < 0.9


def test_enrolled_people_are_named_in_other_photos(enrolled, package, retinaface_package):
    assert people(enrolled) == {"alex_lacamoire": 2, "biden": 4, "kit_harington": 4, "obama": 4, "rose_leslie": 4}
    result = run("identify", DEMO / "test", "--gallery", enrolled, "--model", package, "--detector-package",
                 retinaface_package, "--json")
    assert result.exit_code == 0, result.output
    found = {Path(r["photo"]).name: sorted(f["name"] for f in r["faces"] if f["name"]) for r in json.loads(
        result.output)}
    assert found == DEMO_TRUTH


def test_strangers_are_unknown(enrolled, package, retinaface_package, tmp_path):
    strangers = [p for p in sorted(lfw_root().glob("*/*_0001.jpg"))[:40]]
    folder = tmp_path / "strangers"
    folder.mkdir()
    for path in strangers:  # LFW crops are small: enlarge them so the detector sees the faces
        cv2.imwrite(str(folder / path.name), cv2.resize(cv2.imread(str(path)), (336, 336)))
    result = run("identify", folder, "--gallery", enrolled, "--model", package, "--detector-package",
                 retinaface_package, "--json")
    assert result.exit_code == 0, result.output
    faces = [f for r in json.loads(result.output) for f in r["faces"]]
    assert len(faces) >= 35 and all(f["name"] is None for f in faces)


def test_normalised_scores_use_the_cohort_written_beside_the_thresholds(enrolled, package, cohort_package,
                                                                         retinaface_package, tmp_path):
    import hashlib

    target = tmp_path / "package"
    shutil.copytree(cohort_package, target)
    (record,) = json.loads((target / "manifest.json").read_text())["thresholds"]
    cohort_file = target / record["cohort_file"]
    assert hashlib.sha256(cohort_file.read_bytes()).hexdigest() == record["cohort_sha256"]
    with np.load(cohort_file) as cohort:  # the 300 faces, bare and masked, of the people measured on
        assert cohort["bare"].shape == cohort["masked"].shape == (300, 128)
        assert len(set(cohort["people"].tolist())) == record["people"]
    result = run("identify", DEMO / "test", "--gallery", enrolled, "--model", target, "--detector-package",
                 retinaface_package, "--score", "as-norm", "--json")
    assert result.exit_code == 0, result.output
    found = {Path(r["photo"]).name: sorted(f["name"] for f in r["faces"] if f["name"]) for r in json.loads(
        result.output)}
    assert found == DEMO_TRUTH
    # the package without its thresholds' cohort (200 faces: too few for 1 % with confidence), then damaged
    small = run("identify", DEMO / "test", "--gallery", enrolled, "--model", package, "--detector-package",
                retinaface_package, "--score", "as-norm")
    assert small.exit_code != 0 and "too few to show a stranger rate of 0.01" in small.output
    cohort_file.write_bytes(cohort_file.read_bytes()[:-10])
    damaged = run("identify", DEMO / "test", "--gallery", enrolled, "--model", target, "--score", "as-norm")
    assert damaged.exit_code != 0 and f"{cohort_file}: sha256 differs" in damaged.output


def test_enrolling_the_same_photos_again_changes_nothing(enrolled, package, retinaface_package, tmp_path):
    gallery = copy_gallery(enrolled, tmp_path)
    result = run("gallery", "enroll", "--name", "obama", DEMO / "train" / "obama", "--gallery", gallery, "--model",
                 package, "--detector-package", retinaface_package, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["added"] == 0 and json.loads(result.output)[0]["already_enrolled"] == 4
    assert people(gallery) == people(enrolled)


def test_a_face_of_someone_enrolled_is_refused_under_another_name(enrolled, package, retinaface_package, tmp_path):
    gallery = copy_gallery(enrolled, tmp_path)
    photo = DEMO / "test" / "obama1.jpg"
    common = ["--gallery", gallery, "--model", package, "--detector-package", retinaface_package]
    refused = run("gallery", "enroll", "--name", "barack", photo, *common)
    assert refused.exit_code == 1 and "matches 'obama'" in refused.output and "--force" in refused.output
    assert "barack" not in people(gallery)
    forced = run("gallery", "enroll", "--name", "barack", photo, *common, "--force")
    assert forced.exit_code == 0 and people(gallery)["barack"] == 2


def test_one_person_in_two_folders_of_one_run_is_refused(package, retinaface_package, tmp_path):
    people_dir = tmp_path / "people"
    shutil.copytree(DEMO / "train" / "obama", people_dir / "obama")
    shutil.copytree(DEMO / "train" / "biden", people_dir / "biden")
    (people_dir / "barack").mkdir()
    shutil.copy(DEMO / "test" / "obama1.jpg", people_dir / "barack")
    gallery = tmp_path / "g.db"
    common = ["--gallery", gallery, "--model", package, "--detector-package", retinaface_package]
    refused = run("gallery", "enroll-dir", people_dir, *common)
    assert refused.exit_code == 1, refused.output
    assert "matches 'obama'" in refused.output and "matches 'barack'" in refused.output
    assert "same run" in refused.output and "biden" not in refused.output
    assert not gallery.exists() or people(gallery) == {}
    forced = run("gallery", "enroll-dir", people_dir, *common, "--force")
    assert forced.exit_code == 0, forced.output
    assert people(gallery) == {"barack": 2, "biden": 4, "obama": 4}


def test_list_show_rename_remove_and_negatives(enrolled, package, retinaface_package, tmp_path):
    gallery = copy_gallery(enrolled, tmp_path)
    listed = run("gallery", "list", "--gallery", gallery, "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.output)["people"]) == 5
    assert run("gallery", "rename", "kit_harington", "kit", "--gallery", gallery).exit_code == 0
    assert json.loads(run("gallery", "show", "kit", "--gallery", gallery, "--json").output)["templates"] == 4
    assert run("gallery", "remove", "rose_leslie", "--gallery", gallery).exit_code == 0
    assert set(people(gallery)) == {"alex_lacamoire", "biden", "kit", "obama"}
    # a stranger named as someone (a threshold of 0 names anyone) is recorded as "not" that person
    stranger = tmp_path / "stranger.jpg"
    cv2.imwrite(str(stranger), cv2.resize(cv2.imread(str(lfw_root() / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")),
                                          (336, 336)))
    common = ["--gallery", gallery, "--model", package, "--detector-package", retinaface_package]
    lax = ["--threshold", "0", "--margin", "0", "--masked", "no", "--json"]
    named = json.loads(run("identify", stranger, *common, *lax).output)[0]["faces"][0]["name"]
    assert named is not None
    assert run("gallery", "not", named, stranger, *common).exit_code == 0
    with Gallery.open(gallery) as g:
        assert g.person(named).negatives == 1
    face = json.loads(run("identify", stranger, *common, *lax).output)[0]["faces"][0]
    assert face["name"] is None and face["reason"] == "negative match"
    again = run("gallery", "not", named, stranger, *common)
    assert again.exit_code == 0 and "already recorded" in again.output


def test_export_and_import_rebuild_the_gallery(enrolled, tmp_path):
    file = tmp_path / "gallery.json"
    assert run("gallery", "export", file, "--gallery", enrolled).exit_code == 0
    fresh = tmp_path / "fresh.db"
    result = run("gallery", "import", file, "--gallery", fresh)
    assert result.exit_code == 0 and "imported 5 new people and 18 templates" in result.output
    with Gallery.open(enrolled) as a, Gallery.open(fresh) as b:
        ma, mb = a.template_matrix(), b.template_matrix()
        assert a.fingerprint == b.fingerprint and [p.name for p in a.people()] == [p.name for p in b.people()]
        np.testing.assert_array_equal(ma.embeddings, mb.embeddings)
    assert "imported 0 new people and 0 templates" in run("gallery", "import", file, "--gallery", fresh).output
    data = json.loads(file.read_text())
    file.write_text(json.dumps({**data, "version": 99}))
    newer = run("gallery", "import", file, "--gallery", fresh)
    assert newer.exit_code == 1 and "newer mfr (export version 99)" in newer.output


def test_another_model_is_refused_until_the_gallery_is_reembedded(enrolled, calibrated, retinaface_package, tmp_path):
    gallery = copy_gallery(enrolled, tmp_path)
    engine = tmp_path / "int8"
    built = CliRunner().invoke(export_cli, ["build-engine", "--package", str(calibrated[0]), "--precision", "int8",
                                            "--out", str(engine)])
    assert built.exit_code == 0, built.output
    photo = DEMO / "test" / "obama1.jpg"
    refused = run("identify", photo, "--gallery", gallery, "--model", engine, "--threshold", "0.4")
    assert refused.exit_code == 1 and "holds embeddings of another model" in refused.output
    assert "mobilefacenet fp32" in refused.output and "mobilefacenet int8" in refused.output
    assert f"mfr gallery reembed --gallery {gallery} --package {engine}" in refused.output
    assert run("gallery", "reembed", "--gallery", gallery, "--model", engine).exit_code == 0
    result = run("identify", photo, "--gallery", gallery, "--model", engine, "--threshold", "0.4",
                 "--detector-package", retinaface_package, "--json")
    assert result.exit_code == 0, result.output
    assert [f["name"] for f in json.loads(result.output)[0]["faces"]] == ["obama"]


def unchanged_after(gallery: Path, *args: object, message: str) -> None:
    before = people(gallery)
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and message in result.output, result.output
    assert people(gallery) == before


def test_bad_input_is_an_error_and_leaves_the_gallery_unchanged(enrolled, package, retinaface_package, tmp_path):
    gallery = copy_gallery(enrolled, tmp_path)
    common = ["--gallery", gallery, "--model", package, "--detector-package", retinaface_package]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((400, 400, 3), 180, np.uint8))
    (tmp_path / "empty").mkdir()
    unchanged_after(gallery, "gallery", "enroll", "--name", "x", broken, *common,
                    message=f"{broken}: not a JPEG, PNG, BMP or WebP image")
    unchanged_after(gallery, "gallery", "enroll", "--name", "x", blank, *common, message=f"{blank}: no face found")
    unchanged_after(gallery, "gallery", "enroll", "--name", "x", tmp_path / "empty", *common, message="no photos")
    unchanged_after(gallery, "gallery", "remove", "nobody", "--gallery", gallery, message="no person named 'nobody'")
    unchanged_after(gallery, "gallery", "rename", "nobody", "x", "--gallery", gallery, message="no person named")
    unchanged_after(gallery, "gallery", "rename", "obama", "biden", "--gallery", gallery, message="already enrolled")
    new = tmp_path / "new.db"  # a failed first enrolment leaves no gallery behind
    result = run("gallery", "enroll", "--name", "x", blank, "--gallery", new, "--model", package,
                 "--detector-package", retinaface_package)
    assert result.exit_code == 1 and "no face found" in result.output
    assert not list(tmp_path.glob("new.db*"))


@pytest.mark.parametrize("content, message", [
    (b"definitely not sqlite, just text" * 40, "not a readable gallery"),
    (None, "not an mfr gallery"),
    ("newer", f"newer mfr (gallery schema {SCHEMA_VERSION + 1})"),
])
def test_a_file_that_is_not_a_gallery_is_refused(tmp_path, content, message):
    path = tmp_path / "g.db"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    elif content == "newer":
        Gallery.open(path, create=True).close()
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    result = run("gallery", "list", "--gallery", path)
    assert result.exit_code == 1 and message in result.output, result.output
    assert path.read_bytes() == before


def test_a_gallery_of_the_first_schema_is_migrated_forward_in_place(tmp_path):
    """A file written by an mfr of schema 1 (built here from that schema's own statements) opens with its
    people and events intact, at the current schema, with the migration recorded."""
    from mfr.recognition.gallery_sqlite import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1])
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO people(name, created) VALUES ('Ada', '2024-01-01T00:00:00Z')")
    db.execute("INSERT INTO events(event_id, time, source, kind, payload) VALUES ('e1', 't', 's', 'stats', '{}')")
    db.commit()
    db.close()
    with Gallery.open(path) as g:
        assert [p.name for p in g.people()] == ["Ada"]
        assert g.events() == [{}] and g.count_undelivered() == 0
        assert g.revision == 1
        versions = g.db.execute("SELECT version FROM schema_migrations").fetchall()
    assert [v[0] for v in versions] == list(range(2, SCHEMA_VERSION + 1))
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_killed_enrolment_leaves_every_person_whole_or_absent(package, tmp_path):
    """SIGKILL mid-run: the gallery is intact, each person has all their templates or is absent."""
    source = tmp_path / "people"
    names = sorted(p.name for p in lfw_root().iterdir() if len(list(p.glob("*.jpg"))) >= 3)[:120]
    for name in names:
        shutil.copytree(lfw_root() / name, source / name, ignore=lambda d, files: sorted(files)[3:])
    def command(gallery: Path) -> list[str]:
        return [sys.executable, "-m", "mfr.cli.main", "gallery", "enroll-dir", str(source), "--gallery", str(gallery),
                "--model", str(package), "--no-add-masked", "--threshold", "0.99", "--skip-unusable"]

    subprocess.run(command(tmp_path / "whole.db"), check=True, capture_output=True)
    whole = people(tmp_path / "whole.db")  # each person's templates when nothing interrupts
    gallery = tmp_path / "g.db"
    process = subprocess.Popen(command(gallery), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    seen = 0
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        if gallery.exists():
            try:
                seen = sqlite3.connect(f"file:{gallery}?mode=ro", uri=True, timeout=0.1).execute(
                    "SELECT count(*) FROM people").fetchone()[0]
            except sqlite3.Error:
                seen = 0
            if seen >= 5:
                break
        time.sleep(0.01)
    assert process.poll() is None, "the enrolment ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    with Gallery.open(gallery) as g:
        assert g.integrity() == "ok"
        enrolled = {p.name: p.templates for p in g.people()}
    assert 5 <= len(enrolled) < len(whole), "the kill came too late to test anything"
    assert all(count == whole[name] for name, count in enrolled.items())  # every person enrolled is whole


def test_open_set_evaluation_holds_strangers_near_the_target(package, tmp_path):
    out = tmp_path / "openset.json"
    result = run("eval", "--model", package, "--dataset", "lfw-openset", "--gallery-size", "20", "--folds", "7",
                 "--no-cache", "--json", out)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(out.read_text())["reports"]
    unmasked, masked = report["results"]
    assert unmasked["protocol"] == "unmasked" and masked["protocol"] == "masked"
    assert unmasked["gallery_size"] == 20 and unmasked["stranger_probes"] >= 300
    assert unmasked["stranger_far"] <= 0.03  # target 1 %; a few hundred strangers leave room for noise
    assert unmasked["dir_rate"] >= 0.7 and unmasked["rank1"] >= unmasked["dir_rate"]
    assert masked["dir_rate"] < unmasked["dir_rate"]  # masks cost recognition
    assert masked["masked_probes_detected"] >= 0.9 and unmasked["masked_probes_detected"] <= 0.05
    assert "| unmasked | raw | 20 |" in result.output


def test_open_set_with_several_enrolment_photos_compares_on_the_same_probes(package, tmp_path):
    out = tmp_path / "openset.json"
    result = run("eval", "--model", package, "--dataset", "lfw-openset", "--gallery-size", "20", "--folds", "7",
                 "--enrol-photos", "1,2", "--fusion", "mean", "--json", out)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(out.read_text())["reports"]
    rows = report["results"]
    assert [(r["enrol_photos"], r["protocol"]) for r in rows] == [(1, "unmasked"), (1, "masked"), (2, "unmasked"),
                                                                 (2, "masked")]
    assert {r["fusion"] for r in rows} == {"mean"}
    # known people have 3+ photos (2 to enrol, 1 to probe); every count is probed with the same later photos
    for key in ("known_probes", "stranger_probes"):
        assert rows[0][key] == rows[2][key]
    assert "| unmasked | raw | 20 | 2 (mean) |" in result.output
    refused = run("eval", "--model", package, "--dataset", "mfr2-openset", "--enrol-photos", "2")
    assert refused.exit_code != 0
    assert "--enrol-photos applies to --dataset lfw-openset; not to mfr2-openset" in refused.output


def test_open_set_with_normalised_scores_compares_on_the_same_probes_and_holds_strangers(package, tmp_path):
    out = tmp_path / "openset.json"
    result = run("eval", "--model", package, "--dataset", "lfw-openset", "--gallery-size", "20", "--folds", "7",
                 "--score", "raw", "--score", "as-norm", "--cohort-folds", "8", "--json", out)
    assert result.exit_code == 0, result.output
    raw, normalised = json.loads(out.read_text())["reports"]
    assert [r["score"] for r in raw["results"]] == ["raw", "raw"]
    assert [r["score"] for r in normalised["results"]] == ["as-norm", "as-norm"]
    for before, after in zip(raw["results"], normalised["results"], strict=True):
        assert (before["known_probes"], before["stranger_probes"]) == (after["known_probes"], after["stranger_probes"])
    unmasked, masked = normalised["results"]
    assert unmasked["stranger_far"] <= 0.03 and masked["stranger_far"] <= 0.03  # target 1 %, a few hundred strangers
    assert unmasked["dir_rate"] >= 0.7 and masked["dir_rate"] < unmasked["dir_rate"]
    assert "cohort: LFW people of folds 8" in normalised["data"]
    assert "| unmasked | as-norm | 20 |" in result.output
    refused = run("eval", "--model", package, "--dataset", "lfw-openset", "--folds", "7", "--score", "as-norm",
                  "--cohort-folds", "6,7")
    assert refused.exit_code != 0 and "are among the people the LFW open set judges" in refused.output


def test_fused_templates_are_unit_means_weighted_as_told():
    from mfr.recognition.fusion import FUSIONS

    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    people = np.array([0, 0, 1])
    templates, ids = FUSIONS["quality-mean"].fuse(embeddings, people, np.array([3.0, 1.0, 5.0]))
    assert list(ids) == [0, 1]
    assert templates == pytest.approx(np.array([[3, 1] / np.sqrt(10), [0, 1]]))
    templates, _ = FUSIONS["mean"].fuse(embeddings, people, np.array([3.0, 1.0, 5.0]))  # weights ignored
    assert templates[0] == pytest.approx([np.sqrt(0.5), np.sqrt(0.5)])
    same, who = FUSIONS["templates"].fuse(embeddings, people, np.ones(3))
    assert (same == embeddings).all() and (who == people).all()
