"""The training choices of MaskInv: mask looks, degradations, the validation split carved from the
training people, and the unmasked distillation weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mfr.augment.masks import DEFAULT_FAMILIES
from mfr.data.lfw import lfw_root, sample_images
from mfr.runtime.align import aligned_crop_landmarks
from mfr.runtime.image_io import read_image_bgr
from mfr.training.data import TrainingSet
from mfr.training.looks import LOOKS, TRAINING_FAMILIES, VALIDATION_FAMILY, TrainingLooks, degrade


def faces(count: int) -> list[tuple[np.ndarray, str]]:
    root = lfw_root()
    return [(read_image_bgr(path), str(path.relative_to(root))) for path in sample_images(count)]


def test_every_look_is_deterministic_and_covers_the_lower_face_only():
    for look in LOOKS:
        renderer, other_seed = TrainingLooks((look,), seed=0), TrainingLooks((look,), seed=1)
        differs = 0
        for image, key in faces(12):
            points = aligned_crop_landmarks(*image.shape[:2])
            covered = renderer.apply(image, points, key)
            assert np.array_equal(covered, renderer.apply(image, points, key)), look
            differs += not np.array_equal(covered, other_seed.apply(image, points, key))
            changed = np.abs(covered.astype(int) - image.astype(int)).max(axis=2) > 0
            mouth = np.round(points[3:].mean(axis=0)).astype(int)
            assert changed[mouth[1], mouth[0]], (look, key)  # the mouth is hidden
            assert changed[: int(points[:2, 1].mean()) - 8].mean() < 0.05, (look, key)  # eyes, forehead stay
        assert differs >= 6, look  # another seed, mostly another cover (a template may repeat)


def test_the_validation_family_is_in_no_training_look():
    assert VALIDATION_FAMILY in DEFAULT_FAMILIES and VALIDATION_FAMILY not in TRAINING_FAMILIES
    renderer = TrainingLooks(LOOKS, seed=0)
    points = aligned_crop_landmarks(112, 112)
    families = {renderer.generator.pick(points, f"face{i}")[0].family for i in range(300)}
    assert families == set(TRAINING_FAMILIES)
    with pytest.raises(ValueError, match="unknown mask looks"):
        TrainingLooks(("templates", "balaclava"))


def test_degrade_is_seeded_and_keeps_the_face_recognisable():
    image, _ = faces(1)[0]
    worse = [degrade(image, np.random.default_rng([0, i])) for i in range(20)]
    assert all(w.shape == image.shape and w.dtype == np.uint8 for w in worse)
    assert np.array_equal(worse[0], degrade(image, np.random.default_rng([0, 0])))
    assert not any(np.array_equal(w, image) for w in worse)
    # mild: the degraded face still correlates with the original (no crop of another region)
    correlation = [np.corrcoef(w.astype(float).ravel(), image.astype(float).ravel())[0, 1] for w in worse]
    assert min(correlation) > 0.5, correlation


torch = pytest.importorskip("torch")

from mfr.training.losses import distillation_loss  # noqa: E402
from mfr.training.validation import carve_validation  # noqa: E402


def test_weighted_distillation_matches_a_hand_computed_value():
    student = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    # normalised: (0.6, 0.8) vs (0, 1) -> squared error mean ((0.36 + 0.04) / 2) = 0.2; second pair 0
    assert distillation_loss(student, teacher).item() == pytest.approx(0.1)
    assert distillation_loss(student, teacher, torch.tensor([3.0, 1.0])).item() == pytest.approx(0.3)


def synthetic_set(counts: list[int]) -> TrainingSet:
    people = [f"p{i}" for i in range(len(counts))]
    paths = [Path(f"{p}/{j}.jpg") for p, n in zip(people, counts, strict=True) for j in range(n)]
    labels = np.array([i for i, n in enumerate(counts) for _ in range(n)], np.int64)
    return TrainingSet("synthetic", people, paths, labels)


def test_validation_people_are_disjoint_from_training_and_pairs_are_labelled_right():
    data = synthetic_set([1] * 50 + [2, 3, 5, 8, 13, 20, 30, 60] * 5)
    split = carve_validation(data, 0.25, seed=0)
    assert split is not None and carve_validation(data, 0.0, seed=0) is None
    assert not set(split.train.people) & set(split.validation.people)
    assert len(split.train) + len(split.validation) <= len(data)
    assert set(split.train.people) | set(split.validation.people) <= set(data.people)
    counts = {p: sum(1 for path in data.paths if path.parent.name == p) for p in split.validation.people}
    assert all(2 <= n <= 40 for n in counts.values())  # singletons and huge folders stay in training
    assert len(split.validation.people) == round(0.25 * 35)  # 35 people have 2-40 faces
    names = [path.parent.name for path in split.validation.paths]
    for (left, right), same in zip(split.pairs, split.same, strict=True):
        assert left != right and (names[left] == names[right]) == same
    assert split.same.sum() * 5 == (~split.same).sum()
    again = carve_validation(data, 0.25, seed=0)
    assert again is not None and again.validation.paths == split.validation.paths


def test_training_scores_the_validation_people_each_epoch(mobilefacenet_package, tmp_path):
    import shutil

    from mfr.training.data import lfw_demo_split
    from mfr.training.maskinv import MaskInvConfig, MaskInvTrainer

    split = lfw_demo_split()
    root = tmp_path / "faces"
    people = [p for p in split.people if len(list((split.paths[0].parents[1] / p).glob("*.jpg"))) >= 3][:10]
    for person in people:
        (root / person).mkdir(parents=True)
        for image in sorted((split.paths[0].parents[1] / person).glob("*.jpg"))[:3]:
            shutil.copy(image, root / person / image.name)
    config = MaskInvConfig(teacher=mobilefacenet_package, out=tmp_path / "run", data=root, epochs=2, batch_size=6,
                           validation_people=0.2, mask_looks=LOOKS, augment_probability=0.5, unmasked_weight=2.0)
    result = MaskInvTrainer(config)(log=lambda _: None)
    assert [row["epoch"] for row in result.validation] == [0, 1, 2]
    # before training the student is the teacher (ONNX Runtime vs torch: equal to rounding)
    assert result.validation[0]["unmasked_cosine_to_teacher"] > 0.9999
    assert all(0 <= row["mu_eer_unseen"] <= 100 for row in result.validation)
    summary = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert summary["data"]["people"] == 8 and summary["data"]["faces"] == 24  # 2 of 10 people set aside
    assert summary["validation"] == result.validation


def test_batches_built_by_workers_equal_batches_built_inline(tmp_path):
    from mfr.registry import MODELS
    from mfr.training.batches import TrainingBatches, epoch_plan, iterate_batches

    images = np.stack([image for image, _ in faces(24)])
    keys = [key for _, key in faces(24)]
    batches = TrainingBatches(images, keys, TrainingLooks(LOOKS, seed=3), MODELS["mobilefacenet"].spec,
                              mask_probability=0.5, augment_probability=0.5, seed=3)
    plans = epoch_plan(3, epoch=1, faces=24, batch_size=8, first_step=30)
    assert [plan.step for plan in plans] == [30, 31, 32]
    assert sorted(np.concatenate([plan.indices for plan in plans]).tolist()) == list(range(24))
    inline = list(iterate_batches(batches, plans, workers=0))
    in_workers = list(iterate_batches(batches, plans, workers=2))
    for a, b in zip(inline, in_workers, strict=True):
        assert torch.equal(a.inputs, b.inputs) and np.array_equal(a.masked, b.masked)
        assert np.array_equal(a.mirrored, b.mirrored) and a.margin_seed == b.margin_seed
    assert any(batch.masked.any() for batch in inline) and not all(batch.masked.all() for batch in inline)


def test_a_large_training_set_is_memory_mapped_once(tmp_path, monkeypatch):
    from mfr.registry import MODELS
    from mfr.training import batches
    from mfr.training.data import lfw_demo_split

    spec = MODELS["mobilefacenet"].spec
    data = lfw_demo_split()
    small = TrainingSet(data.source, data.people, data.paths[:12], data.labels[:12])
    monkeypatch.setattr(batches, "IN_MEMORY_FACES", 10)
    mapped = batches.load_faces(small, spec, tmp_path)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, small.load_images(spec))
    written = (tmp_path / batches.FACES_NAME).stat().st_mtime_ns
    again = batches.load_faces(small, spec, tmp_path)
    assert np.array_equal(again, mapped) and (tmp_path / batches.FACES_NAME).stat().st_mtime_ns == written
    other = TrainingSet(data.source, data.people, data.paths[1:13], data.labels[1:13])
    assert np.array_equal(batches.load_faces(other, spec, tmp_path), other.load_images(spec))  # file list changed


def test_cli_refuses_an_unknown_mask_look(mobilefacenet_package, tmp_path):
    from click.testing import CliRunner

    from mfr.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "maskinv", "--teacher", str(mobilefacenet_package), "--out",
                                      str(tmp_path / "run"), "--mask-looks", "templates,balaclava"])
    assert result.exit_code == 1 and "--mask-looks must name some of templates, jittered, occluder" in result.output
    assert not (tmp_path / "run").exists()
