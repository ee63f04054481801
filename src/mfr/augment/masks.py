"""Synthetic face masks: MaskTheFace templates warped onto a face from its 5 landmarks.

Each template (RGBA) comes with six anchors in ``masks.cfg``: a top-left, b top-middle (nose bridge),
c top-right, d bottom-left, e chin, f bottom-right. From the 5 landmarks we place the same six points on
the face, fit a homography and alpha-blend the warped template. Mask type and colour are drawn from a
generator seeded by (seed, key) -- the key is usually the image path -- so an evaluation is reproducible
bit for bit and independent of the order images are processed in. A face turned sideways (nose off the
eye midline) gets the ``_left``/``_right`` template.
"""

from __future__ import annotations

import configparser
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mfr.augment.renderers import MaskRenderer
from mfr.errors import DataError
from mfr.paths import dataset_dir

DEFAULT_FAMILIES = ("surgical", "surgical_blue", "surgical_green", "KN95", "N95", "cloth")
RECOLOR_FAMILIES = ("surgical", "cloth")
YAW_FOR_SIDE_TEMPLATE = 0.15  # nose offset from the eye midline, in eye distances
_ANCHORS = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")


@dataclass(frozen=True)
class MaskTemplate:
    name: str
    family: str
    side: str  # "front", "left" or "right"
    rgba: np.ndarray
    anchors: np.ndarray  # (6, 2) a..f in template pixels


def load_mask_templates(root: Path | None = None) -> dict[str, MaskTemplate]:
    """Templates from ``masks.cfg`` under ``root`` (default: the data root's ``masks/masks``)."""
    root = Path(root) if root is not None else dataset_dir("masks") / "masks"
    cfg_path = root / "masks.cfg"
    if not cfg_path.is_file():
        raise DataError(f"{cfg_path} not found")
    cfg = configparser.ConfigParser()
    cfg.read(cfg_path)
    templates = {}
    for name in cfg.sections():
        section = cfg[name]
        if "template" not in section:  # MaskTheFace's "empty"/"inpaint" modes have no image
            continue
        image_path = root / section["template"].removeprefix("masks/")
        rgba = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise DataError(f"{image_path}: mask template must be an RGBA PNG")
        anchors = np.array([[float(v) for v in section[a].split(",")] for a in _ANCHORS])
        side = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
        family = name.removesuffix("_left").removesuffix("_right")
        templates[name] = MaskTemplate(name, family, side, rgba, anchors)
    return templates


def face_anchors(landmarks: np.ndarray) -> np.ndarray:
    """The six mask anchor points (a..f) on a face, from its 5 landmarks (image-left eye first)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = pts
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    across = right_eye - left_eye
    eye_distance = float(np.linalg.norm(across))
    ux = across / max(eye_distance, 1e-6)
    down = np.array([-ux[1], ux[0]])
    height = float((mouth - eyes) @ down)  # eyes to mouth, along the face's vertical
    bridge = eyes + 0.5 * (nose - eyes)
    chin = mouth + 0.55 * height * down
    jaw = mouth + 0.25 * height * down
    half_top, half_bottom = 1.05 * eye_distance, 0.85 * eye_distance
    return np.array([
        bridge - half_top * ux + 0.1 * height * down,
        bridge,
        bridge + half_top * ux + 0.1 * height * down,
        jaw - half_bottom * ux,
        chin,
        jaw + half_bottom * ux,
    ])


def head_side(landmarks: np.ndarray) -> str:
    """'left'/'right' when the nose sits clearly left/right of the eye midline (in the image), else 'front'."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    across = pts[1] - pts[0]
    offset = float((pts[2] - (pts[0] + pts[1]) / 2) @ across) / max(float(across @ across), 1e-6)
    if offset < -YAW_FOR_SIDE_TEMPLATE:
        return "left"
    if offset > YAW_FOR_SIDE_TEMPLATE:
        return "right"
    return "front"


def stable_seed(seed: int, key: str) -> list[int]:
    """A generator seed from (seed, key), the same in every process and Python version (unlike hash())."""
    return [seed, int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")]


class MaskGenerator:
    """``apply(image, landmarks, key)`` -> the image with a synthetic mask; deterministic per (seed, key)."""

    def __init__(self, templates: dict[str, MaskTemplate] | None = None, seed: int = 0,
                 families: tuple[str, ...] = DEFAULT_FAMILIES, recolor_probability: float = 0.5) -> None:
        self.templates = templates if templates is not None else load_mask_templates()
        unknown = [f for f in families if not any(t.family == f for t in self.templates.values())]
        if unknown:
            known = sorted({t.family for t in self.templates.values()})
            raise DataError(f"unknown mask families {unknown}; known: {known}")
        self.seed, self.families, self.recolor_probability = seed, families, recolor_probability

    def pick(self, landmarks: np.ndarray, key: str) -> tuple[MaskTemplate, tuple[int, int, int] | None]:
        rng = np.random.default_rng(stable_seed(self.seed, key))
        family = self.families[int(rng.integers(len(self.families)))]
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        recolor = family in RECOLOR_FAMILIES and rng.random() < self.recolor_probability
        return self.template_for(family, landmarks), (color if recolor else None)  # type: ignore[return-value]

    def template_for(self, family: str, landmarks: np.ndarray) -> MaskTemplate:
        """The family's template for the way the face is turned (its ``_left``/``_right`` one, if any)."""
        side = head_side(landmarks)
        name = family if side == "front" else f"{family}_{side}"
        return self.templates.get(name, self.templates[family])

    def apply(self, image: np.ndarray, landmarks: np.ndarray, key: str) -> np.ndarray:
        """Return a copy of the uint8 BGR ``image`` with a mask over nose, mouth and chin."""
        template, color = self.pick(landmarks, key)
        colour, alpha = warp_template(template, face_anchors(landmarks), image.shape[:2], key)
        if color is not None:
            colour = 0.5 * colour + 0.5 * np.array(color, np.float32)
        return (image.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def warp_template(template: MaskTemplate, anchors: np.ndarray, size: tuple[int, int],
                  key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The template warped so its anchors a..f land on ``anchors``: float32 BGR (H, W, 3) and alpha (H, W, 1)
    in [0, 1], for an image of ``size`` (height, width)."""
    homography, _ = cv2.findHomography(template.anchors, np.asarray(anchors, np.float64), 0)
    if homography is None:
        raise DataError(f"{key}: cannot place a mask on these landmarks")
    height, width = size
    warped = cv2.warpPerspective(template.rgba, homography, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return warped[..., :3].astype(np.float32), warped[..., 3:].astype(np.float32) / 255.0


def contact_sheet(images: list[np.ndarray], landmarks: list[np.ndarray], keys: list[str],
                  generator: MaskRenderer, columns: int = 6, tile: int = 112) -> np.ndarray:
    """Original | masked tile pairs in a grid, for looking at what the generator does."""
    tiles = []
    for image, points, key in zip(images, landmarks, keys, strict=True):
        masked = generator.apply(image, points, key)
        tiles.append(np.hstack([cv2.resize(image, (tile, tile)), cv2.resize(masked, (tile, tile))]))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
