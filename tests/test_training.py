"""MaskInv training on a tiny aligned ImageFolder: the loss falls, the student exports, p=0 with
distillation only keeps the student at the teacher, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.errors import DataError, MfrError

torch = pytest.importorskip("torch")

from mfr.training.maskinv import MaskInvConfig, MaskInvTrainer  # noqa: E402
from mfr.training.teacher import load_teacher  # noqa: E402


def train(teacher: Path, data: Path, out: Path, **options: object):
    settings = {"batch_size": 6, "epochs": 4, "lr": 0.01, "log_every": 1, "force": True, "validation_people": 0.0,
                "mask_looks": ("templates",), "augment_probability": 0.0, "lr_steps": (4, 5), **options}
    return MaskInvTrainer(MaskInvConfig(teacher=teacher, out=out, data=data, **settings))(log=lambda _: None)


def student_vs_teacher(student_path: Path, teacher_package: Path, data: Path) -> np.ndarray:
    teacher = load_teacher(teacher_package)
    model = teacher.entry.build()
    model.load_state_dict(torch.load(student_path, weights_only=True), strict=True)
    model.eval()
    images = np.stack([np.asarray(__import__("cv2").imread(str(p))) for p in sorted(data.rglob("*.jpg"))])
    from mfr.runtime.preprocess import normalize

    with torch.no_grad():
        got = model(torch.from_numpy(normalize(images, teacher.entry.spec))).numpy()
    want = teacher.raw_embeddings(images, teacher.entry.spec)
    return (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)


def test_a_few_steps_reduce_the_loss(mobilefacenet_package, tiny_folder, tmp_path):
    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", epochs=8, lr=0.02)
    losses = [row["loss"] for row in result.log]
    assert len(losses) == 24  # 18 faces / batch 6 = 3 steps per epoch
    assert np.mean(losses[-6:]) < 0.7 * np.mean(losses[:6]), losses
    for name in ("student.pt", "train_log.csv", "train_log.json", "loss.png", "train_state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    summary = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert summary["data"] == {"source": str(tiny_folder), "faces": 18, "people": 6,
                               "people_names": sorted(p.name for p in tiny_folder.iterdir())}
    assert summary["steps"] == 24


def test_student_checkpoint_loads_strictly_and_exports(mobilefacenet_package, tiny_folder, tmp_path):
    from mfr.export.package import OnnxPackageExporter
    from mfr.manifest import load_manifest

    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", epochs=1)
    manifest = OnnxPackageExporter(model="mobilefacenet", out=tmp_path / "package", weights=result.student,
                                   parity_samples=16)(log=lambda _: None)
    assert manifest.parity is not None and manifest.parity.min_cosine >= 0.9999
    assert manifest.spec == load_manifest(mobilefacenet_package).spec
    assert manifest.sha256["weights"] != load_manifest(mobilefacenet_package).sha256["weights"]


def test_distillation_alone_without_masks_keeps_the_student_at_the_teacher(mobilefacenet_package, tiny_folder,
                                                                          tmp_path):
    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", mask_probability=0.0, margin_loss=False)
    assert max(row["distill"] for row in result.log) < 1e-5
    assert student_vs_teacher(result.student, mobilefacenet_package, tiny_folder).min() > 0.9995


def test_masks_and_margins_move_the_student(mobilefacenet_package, tiny_folder, tmp_path):
    """The control for the test above: with masks the student does move away from the teacher."""
    result = train(mobilefacenet_package, tiny_folder, tmp_path / "run", mask_probability=1.0, lr=0.05)
    assert student_vs_teacher(result.student, mobilefacenet_package, tiny_folder).min() < 0.999


def test_a_resumed_run_continues_like_an_uninterrupted_one(mobilefacenet_package, tiny_folder, tmp_path):
    whole = train(mobilefacenet_package, tiny_folder, tmp_path / "whole", epochs=2)
    train(mobilefacenet_package, tiny_folder, tmp_path / "parts", epochs=1)
    resumed = train(mobilefacenet_package, tiny_folder, tmp_path / "parts", epochs=2, resume=True, force=False)
    assert [r["loss"] for r in resumed.log] == pytest.approx([r["loss"] for r in whole.log], rel=1e-5)
    a, b = torch.load(whole.student, weights_only=True), torch.load(resumed.student, weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_the_same_faces_in_another_folder_train_the_same_student(mobilefacenet_package, tiny_folder, tmp_path):
    """The masks drawn for a face are seeded by ``person/file``, not by where the folder lives: a copy of the
    data elsewhere (each test session's temporary folder is another) trains the same student, step for step."""
    copy = tmp_path / "elsewhere" / "faces"
    shutil.copytree(tiny_folder, copy)
    here = train(mobilefacenet_package, tiny_folder, tmp_path / "here", epochs=1, mask_probability=1.0)
    there = train(mobilefacenet_package, copy, tmp_path / "there", epochs=1, mask_probability=1.0)
    assert [r["loss"] for r in there.log] == [r["loss"] for r in here.log]
    a, b = torch.load(here.student, weights_only=True), torch.load(there.student, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_options(mobilefacenet_package, tiny_folder, tmp_path):
    train(mobilefacenet_package, tiny_folder, tmp_path / "run", epochs=1)
    with pytest.raises(MfrError, match="distill_weight: 100.0 -> 5.0"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "run", epochs=2, resume=True, distill_weight=5.0)


def test_bad_training_input_is_refused(mobilefacenet_package, tiny_folder, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(tiny_folder, odd)
    person = sorted(odd.iterdir())[0]
    __import__("cv2").imwrite(str(person / "big.png"), np.zeros((150, 200, 3), np.uint8))
    with pytest.raises(DataError, match=r"big.png: 200x150 pixels"):
        train(mobilefacenet_package, odd, tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="found 0 images of 0 people"):
        train(mobilefacenet_package, tmp_path / "empty", tmp_path / "run")
    with pytest.raises(MfrError, match="nothing to resume"):
        train(mobilefacenet_package, tiny_folder, tmp_path / "fresh", resume=True)
    with pytest.raises(MfrError, match="not found"):
        train(tmp_path / "no-such-teacher.pt", tiny_folder, tmp_path / "run")


def test_cli_trains_and_exports_a_package(mobilefacenet_package, tiny_folder, tmp_path):
    from mfr.cli.main import cli
    from mfr.manifest import load_manifest

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "maskinv", "--teacher", str(mobilefacenet_package), "--data",
                                      str(tiny_folder), "--out", str(out), "--batch-size", "6", "--max-steps", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["steps"] == 2 and (out / "package" / "model.onnx").is_file()
    training = load_manifest(out / "package").stages.training
    assert training is not None and (training.method, training.init, training.teacher_model) == (
        "maskinv", "teacher", "mobilefacenet")
    assert training.log == str((out / "train_log.json").resolve()) and training.data.startswith(str(tiny_folder))
    again = CliRunner().invoke(cli, ["train", "maskinv", "--teacher", str(mobilefacenet_package), "--data",
                                     str(tiny_folder), "--out", str(out)])
    assert again.exit_code == 1 and "--resume" in again.output and "--force" in again.output


def test_face_reid_0095_teaches_a_student_of_its_own_geometry(face_reid_package, tiny_folder, tmp_path):
    """The 128x128 BGR 0..255 model as a MaskInv teacher: the aligned 112x112 training crops are warped to its
    template, the loss falls, and the student is a strict face-reid-0095 state dict whose package keeps the spec."""
    from mfr.export.package import OnnxPackageExporter
    from mfr.manifest import load_manifest

    # distillation alone, every face masked: the masked faces' distance to the teacher's unmasked embeddings
    # is what falls (the margin loss on six people is spiky with a network whose BatchNorm is folded away)
    result = train(face_reid_package, tiny_folder, tmp_path / "run", epochs=12, lr=0.002, margin_loss=False,
                   mask_probability=1.0)
    losses = [row["distill"] for row in result.log]
    assert np.mean(losses[-6:]) < 0.85 * np.mean(losses[:6]), losses  # measured: 0.69 of the start
    manifest = OnnxPackageExporter(model="face-reid-0095", out=tmp_path / "package", weights=result.student,
                                   parity_samples=8)(log=lambda _: None)
    assert manifest.spec == load_manifest(face_reid_package).spec and manifest.spec.input_size == (128, 128)
    assert manifest.parity is not None and manifest.parity.min_cosine >= 0.9999
