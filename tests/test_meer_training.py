"""MEER training on a tiny aligned ImageFolder (18 faces of 6 LFW training people): every loss term falls,
the mask map points at masks placed under another seed, the ablations drop what they say, a resumed run
equals an uninterrupted one, and the student exports as a package with parity."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.errors import MfrError
from tests.conftest import SHIPPED_MOBILEFACENET_SHA256, first_and_last

torch = pytest.importorskip("torch")

from mfr.training.meer import MEERConfig, MEERTrainer  # noqa: E402
from mfr.training.recipes import MEER_RECIPES  # noqa: E402


def train(teacher: Path, data: Path, out: Path, **options: object):
    # from scratch (--init random, its schedule) unless a test says otherwise: the mechanism on a small net
    settings = {**asdict(MEER_RECIPES["random"]),
                "batch_size": 6, "epochs": 3, "warmup_epochs": 1, "log_every": 1, "force": True,
                "mask_looks": ("templates",), "init": "random", "validation_people": 0.0, **options}
    return MEERTrainer(MEERConfig(teacher=teacher, out=out, data=data, **settings))(log=lambda _: None)


def test_every_loss_term_falls_and_the_mask_map_finds_unseen_masks(mobilefacenet_package, tiny_folder, tmp_path):
    # one batch of all 18 faces per step, 70 % masked: a step's terms are comparable with the step before
    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", batch_size=18, epochs=12, warmup_epochs=3,
                   mask_probability=0.7)
    for term in ("identity", "mask_map", "reconstruction", "identity_preserving"):
        first, last = first_and_last(result.log, term)
        assert last < 0.9 * first, (term, first, last)
    assert [r["stage"] for r in result.log] == ["warm-up"] * 3 + ["joint"] * 9
    assert all("identity_preserving" not in r for r in result.log[:3])

    from mfr.models.meer import MEERNet
    from mfr.registry import get_model_entry
    from mfr.runtime.image_io import read_image_bgr
    from mfr.training.batches import BatchPlan
    from mfr.training.g2d_batches import InpaintingBatches
    from mfr.training.looks import TrainingLooks
    from mfr.training.meer_losses import mask_map_iou

    net = MEERNet()
    net.load_state_dict(torch.load(result.student, weights_only=True), strict=True)
    paths = sorted(tiny_folder.rglob("*.jpg"))
    faces = np.stack([read_image_bgr(p) for p in paths])
    spec = get_model_entry("meer").spec
    batch = InpaintingBatches(faces, [p.stem for p in paths], TrainingLooks(("templates",), seed=99), spec, "masks",
                              seed=99)[BatchPlan(0, 0, np.arange(len(paths)))]
    # read with batch statistics: after 12 steps the running ones (momentum 0.1) are still near their start
    with torch.no_grad():
        logits = net.train().parts(batch.inputs).mask_logits
        untrained = MEERNet().train().parts(batch.inputs).mask_logits
    assert mask_map_iou(logits, batch.hidden) > 0.5 > mask_map_iou(untrained, batch.hidden)
    sheet = __import__("cv2").imread(str(tmp_path / "run" / "restored.png"))
    assert sheet.shape[0] == 4 * 112  # masked, mask map, restored, original


def test_ablations_drop_what_they_say(mobilefacenet_package, tiny_folder, tmp_path):
    plain = train(mobilefacenet_package, tiny_folder, tmp_path / "plain", decoupling=False)
    assert plain.model == "meer-plain" and not any("decoupling" in k for k in torch.load(plain.student))
    assert all("mask_map" not in r for r in plain.log) and any("reconstruction" in r for r in plain.log)
    bare = train(mobilefacenet_package, tiny_folder, tmp_path / "bare", synthesis=False)
    assert bare.restorer is None and not (tmp_path / "bare" / "restorer.pt").exists()
    assert all("reconstruction" not in r and "identity_preserving" not in r for r in bare.log)
    assert {r["stage"] for r in bare.log} == {"joint"}  # nothing to warm up for


def test_a_resumed_run_continues_like_an_uninterrupted_one(mobilefacenet_package, tiny_folder, tmp_path):
    whole = train(mobilefacenet_package, tiny_folder, tmp_path / "whole")
    train(mobilefacenet_package, tiny_folder, tmp_path / "parts", max_steps=6)  # stops after the first joint epoch
    resumed = train(mobilefacenet_package, tiny_folder, tmp_path / "parts", resume=True, force=False)
    assert [r["loss"] for r in resumed.log] == pytest.approx([r["loss"] for r in whole.log], rel=1e-5)
    for name in ("student.pt", "restorer.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "parts" / name, weights_only=True)
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    with pytest.raises(MfrError, match="mask_map_weight: 1.0 -> 2.0"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "parts", resume=True, force=False, mask_map_weight=2.0)


def test_cli_trains_and_exports_a_package_that_loads_strictly(mobilefacenet_package, tiny_folder, tmp_path):
    from mfr.cli.main import cli
    from mfr.manifest import load_manifest
    from mfr.registry import get_model_entry

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "meer", "--teacher", str(mobilefacenet_package), "--data",
                                      str(tiny_folder), "--out", str(out), "--batch-size", "6", "--epochs", "2",
                                      "--warmup-epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    # --init teacher by default: MobileFaceNet's trunk and head around the decoupling module
    # 2 of the 6 people set aside for validation (--validation-people 0.1, at least 2): 12 faces, 2 steps an epoch
    assert summary["steps"] == 4 and summary["model"] == "meer-mobilefacenet"
    assert [v["epoch"] for v in json.loads((out / "train_log.json").read_text())["validation"]] == [0, 1, 2]
    get_model_entry("meer-mobilefacenet").build().load_state_dict(torch.load(out / "student.pt", weights_only=True),
                                                                   strict=True)
    manifest = load_manifest(out / "package")
    assert manifest.model == "meer-mobilefacenet" and manifest.parity is not None
    assert manifest.parity.min_cosine >= 0.9999
    assert manifest.files["restore_onnx"] == "restore.onnx" and "restore_onnx" in manifest.sha256
    training = manifest.stages.training
    assert training is not None and (training.method, training.init, training.people) == ("meer", "teacher", 4)
    # the margin term is part of the recipe kept from the teacher (README)
    assert json.loads((out / "train_log.json").read_text())["config"]["margin_loss"] is True
    assert training.teacher_weights_sha256 == SHIPPED_MOBILEFACENET_SHA256
    with pytest.raises(MfrError, match="--warmup-epochs"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "bad", warmup_epochs=5)


def test_restore_draws_a_labelled_synthesis_and_refuses_packages_without_a_decoder(
        mobilefacenet_package, retinaface_package, tiny_folder, tmp_path):
    import cv2

    from mfr.cli.main import cli
    from mfr.export.restorer import RestoreGraph
    from mfr.models.meer import MEERNet, MEERRestorer
    from mfr.paths import dataset_dir
    from mfr.registry import get_model_entry
    from mfr.runtime.preprocess import denormalize, normalize
    from mfr.runtime.restore import FaceRestorer

    out = tmp_path / "run"
    trained = CliRunner().invoke(cli, ["train", "meer", "--teacher", str(mobilefacenet_package), "--data",
                                       str(tiny_folder), "--out", str(out), "--batch-size", "6", "--epochs", "1",
                                       "--warmup-epochs", "0"])
    assert trained.exit_code == 0, trained.output
    aligned = sorted(tiny_folder.rglob("*.jpg"))[0]
    crop = cv2.imread(str(aligned))
    # ONNX Runtime draws what torch draws (to a grey level); the student is MobileFaceNet-based (--init teacher)
    entry = get_model_entry("meer-mobilefacenet")
    net = entry.build()
    assert isinstance(net, MEERNet)
    restorer = MEERRestorer(net.channels, net.stride)
    net.load_state_dict(torch.load(out / "student.pt", weights_only=True))
    restorer.load_state_dict(torch.load(out / "restorer.pt", weights_only=True))
    spec = entry.spec
    with torch.no_grad():
        expected = denormalize(RestoreGraph(net, restorer).eval()(torch.from_numpy(normalize(crop[None], spec)))
                               .numpy(), spec)[0]
    got = FaceRestorer.open(out / "package").restore(crop[None])[0]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    unaligned = dataset_dir("demo") / "examples" / "knn_examples" / "test" / "obama1.jpg"
    for photo, aligned_input in ((aligned, True), (unaligned, False)):
        png = tmp_path / f"{photo.stem}.png"
        result = CliRunner().invoke(cli, ["restore", str(photo), "--model", str(out / "package"), "--out", str(png),
                                          "--detector-package", str(retinaface_package), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output[result.output.index("{"):])
        assert summary["aligned_input"] is aligned_input and summary["synthesis"] is True
        sheet = cv2.imread(str(png))
        assert sheet.shape == (52 + 24 + 224, 448, 3)
        assert (sheet[5, :, 2] == 160).mean() > 0.5  # the red banner that labels it a synthesis
    refused = CliRunner().invoke(cli, ["restore", str(aligned), "--model", str(mobilefacenet_package), "--out",
                                       str(tmp_path / "no.png")])
    assert refused.exit_code == 1 and "no restoring decoder" in refused.output
    assert not (tmp_path / "no.png").exists()
