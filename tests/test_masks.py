"""Synthetic masks: reproducible, placed over nose and mouth, side templates by head pose."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.augment.masks import MaskGenerator, head_side, load_mask_templates
from mfr.data.lfw import sample_images
from mfr.errors import DataError
from mfr.runtime.image_io import read_image_bgr
from mfr.spec import ARCFACE_TEMPLATE_112

TEMPLATE = np.array(ARCFACE_TEMPLATE_112)


@pytest.fixture(scope="module")
def generator() -> MaskGenerator:
    return MaskGenerator(seed=0)


def test_masks_are_reproducible_per_seed_and_key(generator):
    face = read_image_bgr(sample_images(1)[0])
    first = generator.apply(face, TEMPLATE, "a/a_0001.jpg")
    assert np.array_equal(first, MaskGenerator(seed=0).apply(face, TEMPLATE, "a/a_0001.jpg"))
    others = [MaskGenerator(seed=s).apply(face, TEMPLATE, "a/a_0001.jpg") for s in range(1, 6)]
    assert any(not np.array_equal(first, other) for other in others)


def test_masks_cover_nose_and_mouth_but_not_eyes(generator):
    for path in sample_images(12):
        face = read_image_bgr(path)
        masked = generator.apply(face, TEMPLATE, str(path))
        changed = np.abs(masked.astype(int) - face.astype(int)).sum(axis=2) > 0
        for x, y in TEMPLATE[2:]:  # nose tip, mouth corners
            assert changed[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].all(), path
        for x, y in TEMPLATE[:2]:  # eyes stay visible
            assert not changed[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].any(), path


def test_side_templates_follow_head_pose():
    assert head_side(TEMPLATE) == "front"
    turned = TEMPLATE.copy()
    turned[2, 0] -= 12  # nose well left of the eye midline (eye distance ~35 px)
    assert head_side(turned) == "left"
    turned[2, 0] += 24
    assert head_side(turned) == "right"
    template, _ = MaskGenerator(seed=0).pick(turned, "x")
    assert template.side == "right"


def test_missing_mask_config_is_an_error(tmp_path):
    with pytest.raises(DataError, match="masks.cfg not found"):
        load_mask_templates(tmp_path)


def test_unknown_mask_family_is_refused():
    with pytest.raises(DataError, match="unknown mask families"):
        MaskGenerator(families=("balaclava",))
