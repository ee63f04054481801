"""Synthetic masks: reproducible, placed over nose and mouth, side templates by head pose."""

from __future__ import annotations

import cv2
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


# --- the procedural renderer (judging only) --------------------------------------------------------------

def test_procedural_masks_are_deterministic_cover_the_lower_face_and_vary():
    from mfr.augment.procedural_masks import STYLES, ProceduralMaskRenderer
    from mfr.data.lfw import lfw_root, sample_images
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.image_io import read_image_bgr

    renderer = ProceduralMaskRenderer(seed=0)
    root = lfw_root()
    seen = set()
    for path in sample_images(40):
        image = read_image_bgr(path)
        points = aligned_crop_landmarks(*image.shape[:2])
        key = str(path.relative_to(root))
        masked = renderer.apply(image, points, key)
        assert np.array_equal(masked, renderer.apply(image, points, key))  # same (seed, key): same pixels
        assert not np.array_equal(masked, ProceduralMaskRenderer(seed=1).apply(image, points, key))
        changed = np.abs(masked.astype(int) - image.astype(int)).max(axis=2) > 0
        eyes_y = int(points[:2, 1].mean())
        mouth = np.round(points[3:].mean(axis=0)).astype(int)
        assert changed[mouth[1], mouth[0]]  # the mouth is covered
        assert changed[: eyes_y - 8].mean() < 0.05  # forehead and eyes stay visible
        seen.add(renderer.style(key))
    assert seen == set(STYLES)  # every look appears among 40 faces


def test_training_never_uses_the_judging_renderer():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "mfr" / "training"
    files = sorted(root.rglob("*.py"))
    assert len(files) > 5, root  # the training code is where this looks
    for path in files:
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {"mfr.augment.procedural_masks", "mfr.augment.renderers"} & modules, path


def test_mask_sheet_draws_either_renderer(tmp_path):
    from click.testing import CliRunner

    from mfr.cli.main import cli

    for renderer in ("templates", "procedural"):
        out = tmp_path / f"{renderer}.png"
        result = CliRunner().invoke(cli, ["mask-sheet", "--out", str(out), "--count", "6", "--renderer", renderer])
        assert result.exit_code == 0, result.output
        sheet = cv2.imread(str(out))
        assert sheet is not None and sheet.shape == (112, 6 * 224, 3)
