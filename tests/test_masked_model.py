"""The shipped masked-face model (mobilefacenet-masked): it exports like the bundled teacher and is what it
claims to be, better than its teacher on masked faces of people it never trained on, as good on unmasked."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.data.lfw import lfw_root
from mfr.manifest import load_manifest
from mfr.registry import MODELS
from tests.conftest import exported_package, needs_torch


@pytest.fixture(scope="module")
def masked_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_package(tmp_path_factory, "mobilefacenet-masked")


@needs_torch
def test_exports_with_its_shipped_weights_recorded(masked_package):
    import hashlib

    manifest = load_manifest(masked_package)
    assert manifest.model == "mobilefacenet-masked"
    assert manifest.spec == MODELS["mobilefacenet"].spec  # the teacher's preprocessing: only the weights differ
    shipped = MODELS["mobilefacenet-masked"].default_weights
    assert manifest.sha256["weights"] == hashlib.sha256(shipped.read_bytes()).hexdigest()


@needs_torch
def test_beats_its_teacher_on_masked_faces_of_unseen_people(masked_package, mobilefacenet_package, tmp_path):
    """LFW fold 6 (people no training saw) with the procedural masks no training look uses: the masked model's
    M-U and M-M EERs are below the teacher's (measured on folds 6-10: 2.1 / 2.4 % against 5.9 / 7.1 %), and
    its unmasked accuracy stays within 1 pp of the teacher's (6 of the fold's 600 pairs)."""
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(cli, ["eval", "--model", str(mobilefacenet_package), "--model",
                                      str(masked_package), "--dataset", "lfw-masked", "--mask-renderer",
                                      "procedural", "--folds", "6", "--bootstrap", "0", "--no-cache",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    teacher, masked = (entry["protocols"] for entry in json.loads(out.read_text())["models"])
    for protocol in ("M-U", "M-M"):
        assert masked[protocol]["eer"] < teacher[protocol]["eer"] - 0.01, protocol
    assert masked["U-U"]["accuracy"] >= teacher["U-U"]["accuracy"] - 0.01


@needs_torch
def test_its_training_people_travel_with_it_and_thresholds_refuse_them(masked_package):
    """The package records the people the shipped weights trained on (the LFW demo split less the validation
    people): none of LFW folds 6-10, most of the people in no pair; mfr thresholds refuses those people
    unless told, and measures on folds 6-10 with nobody seen."""
    from tests.test_threshold_people import people_of_pairs_file

    training = load_manifest(masked_package).stages.training
    assert training is not None and (training.method, training.init, training.teacher_model) == (
        "maskinv", "teacher", "mobilefacenet")
    trained = set(training.trained_people)
    assert len(trained) == training.people == 3472
    assert not trained & people_of_pairs_file({6, 7, 8, 9, 10})
    assert trained <= {p.name for p in lfw_root().iterdir() if p.is_dir()}
    outside = {p.name for p in lfw_root().iterdir() if p.is_dir()} - people_of_pairs_file(set(range(1, 11)))
    assert len(outside & trained) > 0.85 * len(outside)  # 10 % of all eligible people were set aside

    def thresholds(*options: str):
        return CliRunner().invoke(cli, ["thresholds", "--model", str(masked_package), "--images", "60", *options])

    refused = thresholds()  # the default set: LFW people in no pair, which it trained on
    assert refused.exit_code != 0 and "trained on" in refused.output and "--folds 6,7,8,9,10" in refused.output
    allowed = thresholds("--allow-seen", "--json")
    assert allowed.exit_code == 0, allowed.output
    record = json.loads(allowed.stdout)
    assert 0 < record["seen_people"] <= record["people"] <= 60  # 60 faces spread over the people in no pair
    unseen = thresholds("--folds", "6,7,8,9,10", "--json")
    assert unseen.exit_code == 0, unseen.output
    assert json.loads(unseen.stdout)["seen_people"] == 0


@needs_torch
def test_open_set_runs_judge_it_only_on_people_it_never_trained_on(masked_package):
    """MFR2 shares people with LFW under other spellings: Ben Affleck (LFW fold 5) and Floyd Mayweather (in no
    pair) are among its training people, Nancy Pelosi (fold 8) is not; an open-set run leaves the first two out."""
    from mfr.benchmarks.openset import trained_note, unseen_people
    from mfr.runtime.embedder import FaceEmbedder

    kept, trained = unseen_people({"BenAffleck", "FloydMayweather", "NancyPelosi"}, FaceEmbedder.open(masked_package))
    assert (kept, trained) == (["NancyPelosi"], ["BenAffleck", "FloydMayweather"])
    assert trained_note(trained) == "; less 2 people the model trained on (BenAffleck, FloydMayweather)"
