"""A second, independent mask renderer, for judging only: procedural occluders drawn from the landmarks.

The training generator (``masks.MaskGenerator``) warps MaskTheFace's photographic templates; a student
trained on them may learn those templates rather than "a mask". This renderer shares nothing with it but
the 5 landmarks: it draws its own shapes with OpenCV (surgical mask with pleats and ear loops, cloth
mask with a printed pattern, N95 cup with a seam and straps, scarf, a hand over the mouth), in random
colours, with fabric texture, shading and placement jitter, so a gain that survives it is a gain on
masks the training never saw. Deterministic per (seed, key); never used in training (``mfr.training``
imports only the template generator).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

STYLES = ("surgical", "cloth", "n95", "scarf", "hand")
VERSION = 3  # part of cached embeddings' keys: bump when the drawing changes
SKIN_TONES = ((88, 120, 168), (112, 150, 196), (140, 176, 220), (60, 90, 130), (96, 140, 190))  # BGR


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"procedural/{key}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(eye centre, unit vector across the face, unit vector down it, eye distance, eyes-to-mouth height)."""
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    across = pts[1] - pts[0]
    eye_distance = max(float(np.linalg.norm(across)), 1e-6)
    ux = across / eye_distance
    down = np.array([-ux[1], ux[0]])
    return eyes, ux, down, eye_distance, max(float((mouth - eyes) @ down), 1e-6)


class ProceduralMaskRenderer:
    """``apply(image, landmarks, key)`` -> the image with a procedural occluder over nose, mouth and chin."""

    def __init__(self, seed: int = 0, styles: tuple[str, ...] = STYLES) -> None:
        unknown = [s for s in styles if s not in STYLES]
        if unknown:
            raise ValueError(f"unknown mask styles {unknown}; known: {list(STYLES)}")
        self.seed, self.styles = seed, styles

    def style(self, key: str) -> str:
        return self.styles[int(_rng(self.seed, key).integers(len(self.styles)))]

    def apply(self, image: np.ndarray, landmarks: np.ndarray, key: str) -> np.ndarray:
        rng = _rng(self.seed, key)
        style = self.styles[int(rng.integers(len(self.styles)))]
        eyes, ux, down, eye_distance, height = face_frame(landmarks)
        # placement jitter: a little up/down, wider/narrower, tilted
        shift = rng.uniform(-0.08, 0.08) * height
        scale = rng.uniform(0.9, 1.12)
        tilt = np.deg2rad(rng.uniform(-6, 6))
        ux = np.array([np.cos(tilt) * ux[0] - np.sin(tilt) * ux[1], np.sin(tilt) * ux[0] + np.cos(tilt) * ux[1]])
        down = np.array([-ux[1], ux[0]])
        origin = eyes + shift * down

        def at(x: float, y: float) -> np.ndarray:
            """A point x eye distances across and y eyes-to-mouth heights down from the (jittered) eyes."""
            return origin + x * scale * eye_distance * ux + y * height * down

        height_px, width_px = image.shape[:2]
        layer = np.zeros((height_px, width_px, 3), np.float32)
        alpha = np.zeros((height_px, width_px), np.float32)
        colour = np.array(rng.integers(20, 236, 3), np.float32)
        outline = self._outline(style, at, rng)
        cv2.fillPoly(alpha, [np.round(outline).astype(np.int32)], 1.0, lineType=cv2.LINE_AA)
        if style == "hand":
            tone = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], np.float32)
            colour = (tone + rng.uniform(-15, 15, 3)).astype(np.float32)
        elif style == "n95":
            colour = np.full(3, rng.uniform(170, 245), np.float32)
        layer[:] = colour
        self._texture(style, layer, alpha, at, rng)
        self._shade(layer, at, rng)
        self._details(style, layer, alpha, at, rng, colour)
        soft = cv2.GaussianBlur(alpha, (3, 3), 0)[..., None]
        out = image.astype(np.float32) * (1 - soft) + np.clip(layer, 0, 255) * soft
        return out.round().astype(np.uint8)

    @staticmethod
    def _outline(style: str, at, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001 - at: (x, y) -> point
        if style == "surgical":
            return np.array([at(-1.05, 0.32), at(-0.2, 0.22), at(0.2, 0.22), at(1.05, 0.32), at(0.95, 1.45),
                             at(0.35, 1.75), at(-0.35, 1.75), at(-0.95, 1.45)])
        if style == "cloth":
            angles = np.linspace(0, np.pi, 24)
            bottom = [at(1.0 * np.cos(a), 1.05 + 0.65 * np.sin(a)) for a in angles]
            return np.array([at(-1.0, 0.4), at(-0.3, 0.25), at(0.0, 0.2), at(0.3, 0.25), at(1.0, 0.4),
                             *bottom])
        if style == "n95":
            angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            return np.array([at(0.95 * np.cos(a), 1.0 + 0.8 * np.sin(a)) for a in angles])
        if style == "scarf":
            top = rng.uniform(0.25, 0.5)
            return np.array([at(-1.6, top), at(1.6, top + rng.uniform(-0.1, 0.1)), at(1.7, 2.4), at(-1.7, 2.4)])
        # hand: a palm over mouth and chin, fingers reaching to one cheek
        side = 1 if rng.random() < 0.5 else -1
        palm = [at(-0.75 * side, 0.5), at(0.55 * side, 0.45), at(0.75 * side, 1.9), at(-0.55 * side, 2.0)]
        fingers = [at(0.55 * side, 0.45), at(1.25 * side, 0.4), at(1.3 * side, 0.8), at(0.7 * side, 0.95)]
        return np.array(palm[:2] + fingers[1:3] + palm[2:])

    @staticmethod
    def _texture(style: str, layer: np.ndarray, alpha: np.ndarray, at, rng: np.random.Generator) -> None:  # noqa: ANN001
        noise = rng.normal(0, 1, layer.shape[:2]).astype(np.float32)
        layer += (cv2.GaussianBlur(noise, (0, 0), 0.8) * rng.uniform(3, 10))[..., None]  # fabric grain
        if style in ("cloth", "scarf") and rng.random() < 0.7:
            pattern = np.zeros(layer.shape[:2], np.float32)
            second = np.array(rng.integers(0, 256, 3), np.float32)
            step = max(int(rng.uniform(0.12, 0.3) * np.linalg.norm(at(1, 0) - at(0, 0))), 2)
            if rng.random() < 0.5:  # stripes along the face's width or height
                start, end = at(-2, 0), at(2, 0) if rng.random() < 0.5 else at(0, 3)
                direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-6)
                normal = np.array([-direction[1], direction[0]])
                ys, xs = np.mgrid[:layer.shape[0], :layer.shape[1]]
                pattern = ((((xs * normal[0] + ys * normal[1]) // step) % 2) == 0).astype(np.float32)
            else:  # dots
                for _ in range(int(rng.integers(15, 40))):
                    centre = at(rng.uniform(-1.5, 1.5), rng.uniform(0.4, 2.2))
                    cv2.circle(pattern, tuple(int(v) for v in np.round(centre)), max(step // 3, 1), 1.0, -1)
            layer[:] = layer * (1 - pattern[..., None]) + second * pattern[..., None]

    @staticmethod
    def _shade(layer: np.ndarray, at, rng: np.random.Generator) -> None:  # noqa: ANN001
        """Light from one side: brightness falls off across the face."""
        ys, xs = np.mgrid[:layer.shape[0], :layer.shape[1]].astype(np.float32)
        direction = at(1, 0) - at(0, 0)
        direction = direction / max(float(np.linalg.norm(direction)), 1e-6)
        centre = at(0, 1.1)
        across = ((xs - centre[0]) * direction[0] + (ys - centre[1]) * direction[1]) / max(layer.shape[1], 1)
        layer *= (1 + rng.uniform(-0.5, 0.5) * across)[..., None]

    @staticmethod
    def _details(style: str, layer: np.ndarray, alpha: np.ndarray, at, rng: np.random.Generator,  # noqa: ANN001
                 colour: np.ndarray) -> None:
        darker = tuple(float(c) for c in colour * 0.7)
        if style == "surgical":  # pleats and ear loops
            for y in (0.85, 1.1, 1.35):
                cv2.line(layer, tuple(int(v) for v in at(-0.95, y)), tuple(int(v) for v in at(0.95, y)), darker, 1,
                         cv2.LINE_AA)
            for side in (-1, 1):
                for y in (0.5, 1.4):
                    start, end = at(side * 1.0, y), at(side * 1.3, 0.9)
                    cv2.line(alpha, tuple(int(v) for v in start), tuple(int(v) for v in end), 1.0, 1, cv2.LINE_AA)
        elif style == "cloth" and rng.random() < 0.6:  # a seam down the middle
            cv2.line(layer, tuple(int(v) for v in at(0, 0.35)), tuple(int(v) for v in at(0, 1.7)), darker, 1,
                     cv2.LINE_AA)
        elif style == "n95":  # centre seam and a head strap
            cv2.line(layer, tuple(int(v) for v in at(0, 0.4)), tuple(int(v) for v in at(0, 1.8)), darker, 1,
                     cv2.LINE_AA)
            strap = tuple(float(c) for c in rng.integers(0, 256, 3))
            for y in (0.7, 1.5):
                cv2.line(layer, tuple(int(v) for v in at(-1.6, y)), tuple(int(v) for v in at(1.6, y)), strap, 1,
                         cv2.LINE_AA)
                cv2.line(alpha, tuple(int(v) for v in at(-1.6, y)), tuple(int(v) for v in at(1.6, y)), 1.0, 1,
                         cv2.LINE_AA)
        elif style == "hand":  # gaps between fingers
            for x in (0.3, 0.6, 0.9):
                cv2.line(layer, tuple(int(v) for v in at(x, 0.8)), tuple(int(v) for v in at(x + 0.1, 1.25)), darker,
                         1, cv2.LINE_AA)
