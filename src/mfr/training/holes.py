"""What G2D's generative encoder learns to see through, and where: free-form holes, then face masks.

G2D pretrains its encoder for face inpainting ("pretrain then finetune"): first on free-form holes
anywhere on the face (brush strokes and boxes, in the manner of DeepFill v2's free-form masks), which
teach general face completion, then on face masks (the training looks of ``looks.py``), the case it is
for. The reconstruction loss weights the hidden pixels more (``g2d_losses.masked_l1``), so it needs to
know which pixels were hidden: for a synthetic cover drawn on a clean face that is exactly the pixels
the cover changed (``hidden_region``).
"""

from __future__ import annotations

import cv2
import numpy as np

HOLE_SHARE = (0.1, 0.4)  # the share of the face a free-form hole map covers


def free_form_holes(rng: np.random.Generator, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """A (H, W) uint8 map, 1 inside the holes: brush strokes (random walks of thick lines) and sometimes a
    box, drawn until their share of the face lies in ``HOLE_SHARE``."""
    height, width = size
    holes = np.zeros(size, np.uint8)
    target = rng.uniform(*HOLE_SHARE)
    for _ in range(32):
        if holes.mean() >= target:
            break
        if rng.random() < 0.25:
            h, w = (int(v) for v in rng.integers(height // 8, height // 3, 2))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            holes[y:y + h, x:x + w] = 1
            continue
        point = rng.uniform(0, (width, height))
        thickness = int(rng.integers(6, 16))
        for _ in range(int(rng.integers(3, 8))):
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(8, 30)
            following = np.clip(point + length * np.array([np.cos(angle), np.sin(angle)]), 0, (width - 1, height - 1))
            cv2.line(holes, (int(point[0]), int(point[1])), (int(following[0]), int(following[1])), 1, thickness)
            point = following
    return holes


def apply_holes(image: np.ndarray, holes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (H, W, 3 uint8) with the holes filled: a flat colour or noise, as an eraser would leave."""
    out = image.copy()
    if rng.random() < 0.5:
        fill = np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), image.shape)
    else:
        fill = rng.integers(0, 256, image.shape).astype(np.uint8)
    inside = holes.astype(bool)
    out[inside] = fill[inside]
    return out


def hidden_region(clean: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(H, W) uint8, 1 where ``covered`` differs from ``clean`` in any channel: what a synthetic cover hid."""
    return (np.abs(clean.astype(np.int16) - covered.astype(np.int16)).max(axis=2) > 0).astype(np.uint8)
