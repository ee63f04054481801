"""Training-only face covers and image degradations, so a student learns "something hides the nose and
mouth" rather than six MaskTheFace templates in one place on a perfectly aligned face.

Looks of a masked training face, each deterministic per (seed, key):

- ``templates``: MaskTheFace templates exactly as the evaluation default draws them (``masks.MaskGenerator``).
- ``jittered``: the same templates with the six anchors moved (top edge from the nose bridge to below the
  nose, wider or narrower, chin higher or lower, a small tilt), recoloured in any colour, printed with a
  texture (stripes, dots, checks or noise) and shaded. Real masks sit higher or lower than the template.
- ``occluder``: a random polygon over the lower face (any object in front of the mouth), flat, gradient
  or textured.

``degrade`` then perturbs any training face, masked or not: a small similarity transform (detected
landmarks are noisy, more so on masked faces), brightness/contrast/gamma, blur or a lower resolution,
JPEG artefacts, sometimes grey. The target stays the teacher's embedding of the clean unmasked face.

Independent of the judging renderer (``mfr.augment.procedural_masks``), which training never imports.
"""

from __future__ import annotations

import cv2
import numpy as np

from mfr.augment.masks import (
    DEFAULT_FAMILIES,
    MaskGenerator,
    face_anchors,
    load_mask_templates,
    stable_seed,
    warp_template,
)

LOOKS = ("templates", "jittered", "occluder")
VALIDATION_FAMILY = "KN95"  # kept out of every training look: validation judges transfer to it
TRAINING_FAMILIES = tuple(f for f in DEFAULT_FAMILIES if f != VALIDATION_FAMILY)


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """A float32 (H, W, 3) fill: flat, stripes, dots, checks or noise around the BGR colour ``base``."""
    kind = int(rng.integers(5))
    fill = np.broadcast_to(base, (height, width, 3)).astype(np.float32).copy()
    if kind == 0:
        return fill
    other = rng.integers(0, 256, 3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = float(rng.uniform(3, 12))
    angle = float(rng.uniform(0, np.pi))
    if kind == 1:  # stripes
        on = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
    elif kind == 2:  # dots
        on = (np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)) > 0.6
    elif kind == 3:  # checks
        on = ((xx // period + yy // period) % 2) == 0
    else:  # noise, blurred to a fabric-like grain
        noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), rng.uniform(0.5, 2))
        return np.clip(fill + noise[..., None] * float(rng.uniform(8, 30)), 0, 255)
    fill[on] = other
    return fill


def _shading(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W, 1) multiplicative light gradient in [0.7, 1.15]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.normal(size=2)
    ramp = (xx * direction[0] + yy * direction[1]) / max(height, width)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    low, high = float(rng.uniform(0.7, 0.95)), float(rng.uniform(1.0, 1.15))
    return (low + (high - low) * ramp)[..., None]


class TrainingLooks:
    """``apply(image, landmarks, key)`` -> the face covered by one of ``looks`` (drawn per key)."""

    def __init__(self, looks: tuple[str, ...] = ("templates",), seed: int = 0,
                 families: tuple[str, ...] = TRAINING_FAMILIES) -> None:
        unknown = [look for look in looks if look not in LOOKS]
        if unknown or not looks:
            raise ValueError(f"unknown mask looks {unknown}; choose from {', '.join(LOOKS)}")
        self.looks, self.seed, self.families = looks, seed, families
        self.generator = MaskGenerator(seed=seed, families=families)

    def apply(self, image: np.ndarray, landmarks: np.ndarray, key: str) -> np.ndarray:
        rng = np.random.default_rng(stable_seed(self.seed, f"look/{key}"))
        look = self.looks[int(rng.integers(len(self.looks)))]
        if look == "templates":
            return self.generator.apply(image, landmarks, key)
        if look == "jittered":
            return self.jittered(image, landmarks, rng)
        return self.occluder(image, landmarks, rng)

    def jittered(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        family = self.families[int(rng.integers(len(self.families)))]
        template = self.generator.template_for(family, landmarks)
        anchors = face_anchors(landmarks)
        points = np.asarray(landmarks, np.float64).reshape(5, 2)
        eye_distance = float(np.linalg.norm(points[1] - points[0]))
        top_shift = rng.uniform(-0.15, 0.35) * eye_distance  # + moves the top edge down the nose
        widen = rng.uniform(0.85, 1.2)
        chin_shift = rng.uniform(-0.15, 0.25) * eye_distance
        centre = anchors.mean(axis=0)
        anchors = centre + (anchors - centre) * [widen, 1.0]
        anchors[:3, 1] += top_shift
        anchors[3:, 1] += chin_shift
        angle = np.deg2rad(rng.uniform(-6, 6))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        anchors = centre + (anchors - centre) @ rotation.T + rng.uniform(-0.08, 0.08, 2) * eye_distance
        colour, alpha = warp_template(template, anchors, (height, width))
        mix = float(rng.uniform(0.3, 0.9))
        fill = _texture(rng, height, width, rng.integers(0, 256, 3).astype(np.float32))
        grey = colour.mean(axis=2, keepdims=True) / 255.0  # keeps the template's folds and edges
        colour = (1 - mix) * colour + mix * fill * (0.6 + 0.6 * grey)
        colour = np.clip(colour * _shading(rng, height, width), 0, 255)
        return (image.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)

    def occluder(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        points = np.asarray(landmarks, np.float64).reshape(5, 2)
        eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
        eye_distance = float(np.linalg.norm(points[1] - points[0]))
        top = points[2][1] - rng.uniform(0.0, 0.35) * eye_distance  # somewhere on the nose
        bottom = mouth[1] + rng.uniform(0.6, 1.3) * eye_distance
        half = rng.uniform(0.7, 1.4) * eye_distance
        count = int(rng.integers(6, 10))
        xs = rng.uniform(eyes[0] - half, eyes[0] + half, count)
        ys = rng.uniform(top, bottom, count)
        # four corners keep nose and mouth under it; the other points make the outline irregular
        xs[:4] = eyes[0] + half * rng.uniform(0.75, 1, 4) * [-1, 1, -1, 1]
        ys[:4] = (top + rng.uniform(0, 0.15, 2) * (bottom - top)).tolist() + \
            (bottom - rng.uniform(0, 0.15, 2) * (bottom - top)).tolist()
        hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.float32)).astype(np.int32)
        outline = np.zeros((height, width), np.float32)
        cv2.fillConvexPoly(outline, hull, 1.0, lineType=cv2.LINE_AA)
        alpha = cv2.GaussianBlur(outline, (0, 0), 0.8)[..., None]
        fill = _texture(rng, height, width, rng.integers(0, 256, 3).astype(np.float32))
        fill = np.clip(fill * _shading(rng, height, width), 0, 255)
        return (image.astype(np.float32) * (1 - alpha) + fill * alpha).round().astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausibly worse photograph of the same aligned face (see the module docstring)."""
    height, width = image.shape[:2]
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.92, 1.08)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-3, 3, 2) * [width / 112, height / 112]
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = out.astype(np.float32) * rng.uniform(0.65, 1.35) + rng.uniform(-30, 30)
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** rng.uniform(0.75, 1.35)
    out = out.round().astype(np.uint8)
    blur = rng.random()
    if blur < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.4))
    elif blur < 0.6:
        factor = rng.uniform(0.35, 0.8)
        small = cv2.resize(out, (max(8, int(width * factor)), max(8, int(height * factor))),
                           interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    if rng.random() < 0.1:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def validation_masks(seed: int) -> MaskGenerator:
    """Masks of the family no training look uses, for judging transfer on the validation people."""
    return MaskGenerator(load_mask_templates(), seed=seed, families=(VALIDATION_FAMILY,))
