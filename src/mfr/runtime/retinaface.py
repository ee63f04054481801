"""RetinaFace from a model package or engine directory, run through the engine interface; priors decoded
in numpy.

The decoding parameters (anchor sizes, strides, variances) come from the package manifest's
``decoder`` section, written at export from the model registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.errors import ManifestError
from mfr.runtime.detection import Face, fit_longest_side, select_faces
from mfr.runtime.engine_load import open_model
from mfr.runtime.preprocess import normalize


@dataclass
class RetinaFacePriors:
    min_sizes: list[list[int]]
    steps: list[int]
    variance: tuple[float, float]
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_manifest(cls, decoder: dict[str, Any] | None, source: str) -> RetinaFacePriors:
        if not decoder or decoder.get("type") != "retinaface":
            raise ManifestError(f"{source}: no RetinaFace decoder section; is this a RetinaFace package?")
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

    def decode(self, deltas: np.ndarray, landmark_deltas: np.ndarray, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (P, 4) x1y1x2y2 and landmarks (P, 5, 2) in pixels of the network input."""
        priors = self.priors(height, width)
        center = priors[:, :2] + deltas[:, :2] * self.variance[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(deltas[:, 2:] * self.variance[1])
        scale = np.array([width, height], np.float32)
        boxes = np.concatenate([(center - size / 2) * scale, (center + size / 2) * scale], axis=1)
        points = priors[:, None, :2] + landmark_deltas.reshape(-1, 5, 2) * self.variance[0] * priors[:, None, 2:]
        return boxes, points * scale


class RetinaFaceDetector:
    """``detect(image)`` -> faces, from a package written by ``mfr-export onnx --model retinaface-mnet025``
    (run by ONNX Runtime) or an engine directory built from one."""

    def __init__(self, package: Path | str, score_threshold: float = 0.5, nms_threshold: float = 0.4,
                 max_side: int = 640, min_side: int = 320) -> None:
        self.engine = open_model(package)  # a package, an engine directory or a served model's address
        self.manifest = self.engine.manifest
        self.priors = RetinaFacePriors.from_manifest(self.manifest.decoder, f"{package} (manifest)")
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_side, self.min_side = max_side, min_side

    def detect(self, image: np.ndarray) -> list[Face]:
        resized, factor = fit_longest_side(image, self.max_side, self.min_side)
        height, width = resized.shape[:2]
        outputs = self.engine.infer(normalize(resized, self.manifest.spec))
        deltas, scores, landmark_deltas = (outputs[name] for name in self.engine.output_names)
        boxes, landmarks = self.priors.decode(deltas[0], landmark_deltas[0], height, width)
        return select_faces(boxes, scores[0], landmarks, self.score_threshold, self.nms_threshold, factor)
