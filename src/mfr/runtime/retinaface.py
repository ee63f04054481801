"""RetinaFace's decoder: priors (anchor boxes) per stride, and the box and landmark deltas against them.

The parameters (anchor sizes, strides, variances) come from the package manifest's ``decoder`` section,
written at export from the model registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RetinaFacePriors:
    min_sizes: list[list[int]]
    steps: list[int]
    variance: tuple[float, float]
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def pad_multiple(self) -> int:
        return 1  # the priors cover any size (ceil of size / step cells)

    @classmethod
    def from_decoder(cls, decoder: dict[str, Any]) -> RetinaFacePriors:
        low, high = decoder["variance"]
        return cls(decoder["min_sizes"], decoder["steps"], (float(low), float(high)))

    def priors(self, height: int, width: int) -> np.ndarray:
        """(P, 4) priors (cx, cy, w, h) normalised by the image size, in the network's output order."""
        if (height, width) not in self._cache:
            levels = []
            for step, sizes in zip(self.steps, self.min_sizes, strict=True):
                rows, cols = -(-height // step), -(-width // step)
                cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / height, (np.arange(cols) + 0.5) * step / width,
                                     indexing="ij")
                per_size = [np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], axis=-1)
                            for s in sizes]
                levels.append(np.stack(per_size, axis=2).reshape(-1, 4))  # row, col, anchor
            self._cache[(height, width)] = np.concatenate(levels).astype(np.float32)
        return self._cache[(height, width)]

    def decode(self, outputs: dict[str, np.ndarray], height: int,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (P, 4) x1y1x2y2, face scores (P,) and landmarks (P, 5, 2) in pixels of the network input."""
        deltas, scores, landmark_deltas = outputs["bbox_deltas"], outputs["scores"], outputs["landmark_deltas"]
        priors = self.priors(height, width)
        center = priors[:, :2] + deltas[:, :2] * self.variance[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(deltas[:, 2:] * self.variance[1])
        scale = np.array([width, height], np.float32)
        boxes = np.concatenate([(center - size / 2) * scale, (center + size / 2) * scale], axis=1)
        points = priors[:, None, :2] + landmark_deltas.reshape(-1, 5, 2) * self.variance[0] * priors[:, None, 2:]
        return boxes, scores, points * scale
