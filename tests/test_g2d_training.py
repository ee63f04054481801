"""G2D training on a tiny aligned ImageFolder (18 faces of 6 LFW training people): every stage lowers its
loss, the encoder stays frozen after the generative stage (and trains in the ablation), a resumed run
equals an uninterrupted one, and the student exports as a package with parity."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mfr.errors import MfrError
from tests.conftest import SHIPPED_MOBILEFACENET_SHA256

torch = pytest.importorskip("torch")

from mfr.training.g2d import G2DConfig, G2DTrainer  # noqa: E402
from mfr.training.recipes import G2D_RECIPES  # noqa: E402


def train(teacher: Path, data: Path, out: Path, **options: object):
    # from scratch (--init random, its schedule) unless a test says otherwise: the mechanism on a small net
    settings = {**asdict(G2D_RECIPES["random"]),
                "batch_size": 6, "holes_epochs": 1, "masks_epochs": 1, "distill_epochs": 1, "classifier_epochs": 1,
                "log_every": 1, "force": True, "mask_looks": ("templates",), "augment_probability": 0.0,
                "init": "random", "validation_people": 0.0, **options}
    return G2DTrainer(G2DConfig(teacher=teacher, out=out, data=data, **settings))(log=lambda _: None)


def mean_loss(rows: list[dict], stage: str, which: str) -> float:
    """Mean loss of the first or the last two epochs of ``stage``."""
    epochs = sorted({r["epoch"] for r in rows if r["stage"] == stage})
    chosen = epochs[:2] if which == "first" else epochs[-2:]
    return float(np.mean([r["loss"] for r in rows if r["stage"] == stage and r["epoch"] in chosen]))


def test_every_stage_lowers_its_loss(mobilefacenet_package, tiny_folder, tmp_path):
    # one batch of all 18 faces per step: the loss of a step is comparable with the step before
    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", batch_size=18, holes_epochs=6,
                   masks_epochs=6, distill_epochs=12, classifier_epochs=8, mask_probability=0.0, classifier_lr=0.05)
    for stage in ("holes", "masks", "distill", "classifier"):
        first, last = mean_loss(result.log, stage, "first"), mean_loss(result.log, stage, "last")
        assert last < 0.9 * first, (stage, first, last)
    assert result.stages["classifier"]["last"]["accuracy"] > result.stages["classifier"]["first"]["accuracy"]
    sheet = cv2.imread(str(tmp_path / "run" / "reconstructions.png"))
    assert sheet.shape[0] == 5 * 112 and sheet.shape[1] > 8 * 112  # 2 covered + 2 drawn + originals, 8 faces
    logged = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert logged["schedule"] == ["holes"] * 6 + ["masks"] * 6 + ["distill"] * 12 + ["classifier"] * 8
    from mfr.models.g2d import G2DNet

    assert logged["student"]["parameters"] == sum(p.numel() for p in G2DNet().parameters())


def test_encoder_is_frozen_after_the_generative_stage_and_trains_in_the_ablation(mobilefacenet_package,
                                                                                   tiny_folder, tmp_path):
    steps_per_epoch = 3
    generative = train(mobilefacenet_package, tiny_folder, tmp_path / "g2d", max_steps=2 * steps_per_epoch)
    after_stage_1 = torch.load(tmp_path / "g2d" / "train_state.pt", weights_only=True)["modules"]["net"]
    generative = train(mobilefacenet_package, tiny_folder, tmp_path / "g2d", resume=True, force=False)
    final = torch.load(generative.student, weights_only=True)
    encoder = [k for k in final if k.startswith("encoder.")]
    reformer = [k for k in final if k.startswith("reformer.") and final[k].dtype.is_floating_point]
    assert all(torch.equal(final[k], after_stage_1[k]) for k in encoder)
    assert not all(torch.equal(final[k], after_stage_1[k]) for k in reformer)
    ablation = train(mobilefacenet_package, tiny_folder, tmp_path / "ablation", generative=False)
    assert [r["stage"] for r in ablation.log if r["epoch"] < 3] == ["distill"] * 9  # stage 1's epochs go to stage 2
    torch.manual_seed(0)
    initial = __import__("mfr.models.g2d", fromlist=["G2DNet"]).G2DNet().state_dict()
    trained = torch.load(ablation.student, weights_only=True)
    assert not torch.equal(trained["encoder.stages.0.0.weight"], initial["encoder.stages.0.0.weight"])


def test_a_resumed_run_continues_like_an_uninterrupted_one(mobilefacenet_package, tiny_folder, tmp_path):
    options = {"masks_epochs": 2, "distill_epochs": 2}
    whole = train(mobilefacenet_package, tiny_folder, tmp_path / "whole", **options)
    train(mobilefacenet_package, tiny_folder, tmp_path / "parts", max_steps=6, **options)  # stops inside "masks"
    resumed = train(mobilefacenet_package, tiny_folder, tmp_path / "parts", resume=True, force=False, **options)
    assert [r["stage"] for r in resumed.log] == [r["stage"] for r in whole.log]
    assert [r["loss"] for r in resumed.log] == pytest.approx([r["loss"] for r in whole.log], rel=1e-5)
    a, b = torch.load(whole.student, weights_only=True), torch.load(resumed.student, weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    with pytest.raises(MfrError, match="cosine_weight: 0.0 -> 1.0"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "parts", resume=True, force=False, cosine_weight=1.0,
              **options)


def test_cli_trains_and_exports_a_package_that_loads_strictly(mobilefacenet_package, tiny_folder, tmp_path):
    from mfr.cli.main import cli
    from mfr.manifest import load_manifest
    from mfr.registry import get_model_entry

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "g2d", "--teacher", str(mobilefacenet_package), "--data",
                                      str(tiny_folder), "--out", str(out), "--batch-size", "6", "--holes-epochs", "1",
                                      "--masks-epochs", "1", "--distill-epochs", "1", "--classifier-epochs", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    # 2 of the 6 people set aside for validation (--validation-people 0.1, at least 2): 12 faces, 2 steps an epoch
    assert summary["steps"] == 8 and set(summary["stages"]) == {"holes", "masks", "distill", "classifier"}
    validation = json.loads((out / "train_log.json").read_text())["validation"]
    assert [v["epoch"] for v in validation] == [0, 1, 2, 3, 4] and all(0 <= v["uu_eer"] <= 100 for v in validation)
    # --init teacher by default: E and R are MobileFaceNet's trunk and head, exported as g2d-mobilefacenet
    get_model_entry("g2d-mobilefacenet").build().load_state_dict(torch.load(out / "student.pt", weights_only=True),
                                                                  strict=True)
    manifest = load_manifest(out / "package")
    assert manifest.model == "g2d-mobilefacenet" and manifest.parity is not None
    assert manifest.parity.min_cosine >= 0.9999
    logged = json.loads((out / "train_log.json").read_text())
    assert logged["student"]["init"] == "teacher"
    # the rest of the schedule is the recipe kept from the teacher (README): keep term, E trained, cosine term
    assert {k: logged["config"][k] for k in ("keep_weight", "distill_encoder", "cosine_weight")} == {
        "keep_weight": 1.0, "distill_encoder": "fine-tune", "cosine_weight": 1.0}
    training = manifest.stages.training  # the package says how its weights were made
    assert training is not None and (training.method, training.init, training.teacher_model) == (
        "g2d", "teacher", "mobilefacenet")
    assert (training.people, training.faces, training.validation_share) == (4, 12, 0.1)
    # the people it trained on, by name (the 2 set aside for validation are not among them)
    assert len(training.trained_people) == 4 and set(training.trained_people) < {p.name for p in tiny_folder.iterdir()}
    assert training.teacher_weights_sha256 == SHIPPED_MOBILEFACENET_SHA256
    again = CliRunner().invoke(cli, ["train", "g2d", "--teacher", str(mobilefacenet_package), "--data",
                                     str(tiny_folder), "--out", str(out)])
    assert again.exit_code == 1 and "--resume" in again.output


@pytest.mark.parametrize("init, expected", [
    ("teacher", {"holes_epochs": 1, "masks_epochs": 1, "distill_epochs": 4, "keep_weight": 1.0,
                 "distill_encoder": "fine-tune", "cosine_weight": 1.0}),
    ("random", {"holes_epochs": 3, "masks_epochs": 3, "distill_epochs": 12, "keep_weight": 0.0,
                "distill_encoder": "frozen", "cosine_weight": 0.0})])
def test_cli_schedule_follows_init_unless_an_option_is_given(mobilefacenet_package, tiny_folder, tmp_path, init,
                                                              expected):
    from mfr.cli.main import cli

    def config(*options: str) -> dict:
        out = tmp_path / "-".join((init, *options))
        result = CliRunner().invoke(cli, ["train", "g2d", "--teacher", str(mobilefacenet_package), "--data",
                                          str(tiny_folder), "--out", str(out), "--batch-size", "6", "--init", init,
                                          "--max-steps", "1", "--no-package", "--validation-people", "0", *options])
        assert result.exit_code == 0, result.output
        logged = json.loads((out / "train_log.json").read_text())["config"]
        return {k: logged[k] for k in expected}

    assert config() == expected
    assert config("--distill-epochs", "2", "--cosine-weight", "0.5") == {**expected, "distill_epochs": 2,
                                                                          "cosine_weight": 0.5}


def test_bad_options_are_refused(mobilefacenet_package, tiny_folder, tmp_path):
    with pytest.raises(MfrError, match="relational distillation needs triplets"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "run", batch_size=2)
    with pytest.raises(MfrError, match="--distill-epochs >= 1"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "run", distill_epochs=0)
