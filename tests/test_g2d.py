"""G2D's pieces against values worked out by hand: the relational distillation losses (Park et al., 2019)
and the weighted reconstruction loss; the architecture's size."""

from __future__ import annotations

import math

import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def test_rkd_distance_loss_matches_a_hand_computed_value():
    import torch

    from mfr.training.g2d_losses import rkd_distance_loss

    teacher = torch.tensor([[0.0], [1.0], [3.0]])  # distances 1, 3, 2: mean 2 -> 0.5, 1.5, 1.0
    student = torch.tensor([[0.0], [2.0], [3.0]])  # distances 2, 3, 1: mean 2 -> 1.0, 1.5, 0.5
    # differences -0.5, 0, 0.5 under the Huber loss (0.5 d^2 below 1): 0.125, 0, 0.125 -> mean 1/12
    assert rkd_distance_loss(student, teacher).item() == pytest.approx(1 / 12, rel=1e-5)


def test_rkd_angle_loss_matches_a_hand_computed_value():
    import torch

    from mfr.training.g2d_losses import rkd_angle_loss

    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    # at A both angles are right angles; at B the cosine is 1/sqrt2 (teacher) vs 1/sqrt5 (student), at C
    # 1/sqrt2 vs 2/sqrt5, each for two ordered triplets; every other triplet agrees; 27 triplets in all
    b = 1 / math.sqrt(2) - 1 / math.sqrt(5)
    c = 1 / math.sqrt(2) - 2 / math.sqrt(5)
    expected = (2 * 0.5 * b * b + 2 * 0.5 * c * c) / 27
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_relational_losses_ignore_rotation_and_scale_but_not_a_shuffle():
    import torch

    from mfr.training.g2d_losses import rkd_loss

    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(16, 8, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator))
    assert rkd_loss(3.0 * teacher @ rotation, teacher).item() < 1e-6
    assert rkd_loss(teacher[torch.randperm(16, generator=generator)], teacher).item() > 0.01


def test_masked_l1_weights_the_hidden_pixels():
    import torch

    from mfr.training.g2d_losses import masked_l1

    target = torch.zeros(1, 1, 1, 2)
    prediction = torch.tensor([[[[1.0, 3.0]]]])  # errors 1 (visible) and 3 (hidden)
    hidden = torch.tensor([[[[0.0, 1.0]]]])
    assert masked_l1(prediction, target, hidden, hidden_weight=5.0).item() == pytest.approx((1 + 5 * 3) / 6)
    assert masked_l1(prediction, target, torch.zeros_like(hidden)).item() == pytest.approx(2.0)


def test_g2d_is_edge_sized_next_to_mobilefacenet():
    from mfr.models.blocks import count_macs
    from mfr.models.g2d import G2DInpainter, G2DNet
    from mfr.models.mobilefacenet import MobileFaceNet

    g2d, reference = G2DNet(), MobileFaceNet()
    # the MobileFaceNet paper (Chen et al., 2018) gives 221M multiply-adds; this variant's layers differ a little
    assert count_macs(reference) == pytest.approx(221e6, rel=0.1)
    assert count_macs(g2d) <= 1.5 * count_macs(reference)
    assert sum(p.numel() for p in g2d.parameters()) <= 1.5 * sum(p.numel() for p in reference.parameters())
    inpainter = G2DInpainter(g2d)
    assert inpainter.encoder is g2d.encoder  # the generative stage trains the very encoder that is deployed
    assert not any(name.startswith("decoder") for name in g2d.state_dict())  # the decoder never ships


def test_free_form_holes_are_seeded_and_cover_a_bounded_share():
    import numpy as np

    from mfr.training.holes import HOLE_SHARE, apply_holes, free_form_holes, hidden_region

    shares = [free_form_holes(np.random.default_rng(s)).mean() for s in range(60)]
    assert np.array_equal(free_form_holes(np.random.default_rng(3)), free_form_holes(np.random.default_rng(3)))
    assert not np.array_equal(free_form_holes(np.random.default_rng(3)), free_form_holes(np.random.default_rng(4)))
    assert min(shares) >= HOLE_SHARE[0] * 0.9 and max(shares) <= 0.7  # strokes overshoot a little, never the face
    face = np.full((112, 112, 3), 128, np.uint8)
    holes = free_form_holes(np.random.default_rng(5))
    filled = apply_holes(face, holes, np.random.default_rng(5))
    assert (filled[holes == 0] == 128).all()  # nothing outside the holes is touched
    # a fill colour may equal the face's at some pixels; hidden_region finds every changed one and no other
    changed = hidden_region(face, filled)
    assert changed.sum() > 0.9 * holes.sum() and not changed[holes == 0].any()


def test_the_hidden_region_of_a_synthetic_mask_is_the_lower_face():

    from mfr.augment.masks import MaskGenerator
    from mfr.data.lfw import lfw_root
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.image_io import read_image_bgr
    from mfr.training.holes import hidden_region

    face = read_image_bgr(sorted(lfw_root().glob("*/*_0001.jpg"))[0])
    masked = MaskGenerator(seed=0).apply(face, aligned_crop_landmarks(112, 112), "face-0")
    hidden = hidden_region(face, masked)
    rows = hidden.mean(axis=1)
    assert 0.15 < hidden.mean() < 0.6
    assert rows[:40].sum() < 0.1 * rows.sum()  # eyes and forehead stay visible
    assert rows[70:].sum() > 0.6 * rows.sum()  # the mask sits on the nose, mouth and chin


@pytest.mark.parametrize("phase", ["holes", "masks"])
def test_inpainting_batches_are_seeded_and_say_what_they_hide(phase):
    import numpy as np
    import torch

    from mfr.data.lfw import lfw_root
    from mfr.registry import get_model_entry
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import normalize
    from mfr.training.batches import BatchPlan
    from mfr.training.g2d_batches import InpaintingBatches
    from mfr.training.looks import LOOKS, TrainingLooks

    paths = sorted(lfw_root().glob("*/*_0001.jpg"))[:6]
    faces = np.stack([read_image_bgr(p) for p in paths])
    spec = get_model_entry("g2d").spec
    batches = InpaintingBatches(faces, [p.stem for p in paths], TrainingLooks(LOOKS, seed=0), spec, phase, seed=1)
    plan = BatchPlan(epoch=0, step=3, indices=np.arange(6))
    first, again = batches[plan], batches[plan]
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.hidden, again.hidden)
    other = batches[BatchPlan(epoch=1, step=3, indices=np.arange(6))]
    assert not torch.equal(first.inputs, other.inputs)
    differs = (first.inputs != first.targets).any(dim=1, keepdim=True)
    assert torch.equal(differs, first.hidden.bool())  # hidden is exactly where the input lost the face
    share = first.hidden.mean().item()
    assert 0.08 < share < 0.6
    if phase == "masks":  # a face mask covers the lower face, mirrored or not
        rows = first.hidden.mean(dim=(0, 1, 3))
        assert rows[:40].sum() < 0.1 * rows.sum()
    # the targets are the clean faces themselves (mirrored with their input when the batch mirrors)
    clean = torch.from_numpy(normalize(faces, spec))
    for row in range(6):
        assert torch.equal(first.targets[row], clean[row]) or torch.equal(first.targets[row],
                                                                           clean[row].flip(-1))
    with pytest.raises(ValueError, match="unknown inpainting phase"):
        InpaintingBatches(faces, [p.stem for p in paths], TrainingLooks(LOOKS), spec, "noise", 0)


def test_inpainting_batches_leave_a_share_uncovered_without_changing_the_covered_ones():
    import numpy as np
    import torch

    from mfr.data.lfw import lfw_root
    from mfr.registry import get_model_entry
    from mfr.runtime.image_io import read_image_bgr
    from mfr.training.batches import BatchPlan
    from mfr.training.g2d_batches import InpaintingBatches
    from mfr.training.looks import LOOKS, TrainingLooks

    paths = sorted(lfw_root().glob("*/*_0001.jpg"))[:16]
    faces = np.stack([read_image_bgr(p) for p in paths])
    spec, keys, plan = get_model_entry("g2d").spec, [p.stem for p in paths], BatchPlan(0, 2, np.arange(16))
    every = InpaintingBatches(faces, keys, TrainingLooks(LOOKS, seed=0), spec, "masks", seed=1)[plan]
    half = InpaintingBatches(faces, keys, TrainingLooks(LOOKS, seed=0), spec, "masks", seed=1,
                             mask_probability=0.5)[plan]
    assert every.covered.all() and 0 < half.covered.sum() < 16
    assert np.array_equal(every.mirrored, half.mirrored)
    for row in range(16):
        if half.covered[row]:
            assert torch.equal(half.inputs[row], every.inputs[row]) and torch.equal(half.hidden[row], every.hidden[row])
        else:
            assert torch.equal(half.inputs[row], half.targets[row]) and half.hidden[row].sum() == 0
