"""Does a face wear a mask? A small logistic classifier on the aligned crop, to pick the masked threshold.

It looks at the crop, not at an embedding: a mask-robust model (MaskInv) is trained to give masked and
unmasked faces the same embedding, so an embedding-based detector would fail exactly where it matters.
Features: the lower face (nose tip to chin) on a coarse grid in CIELAB, minus the mean colour of the
upper face (eyes and forehead), so skin tone and lighting cancel and what is left is whether the lower
face still looks like the same skin. Standardised, then one logistic unit: a few microseconds per face.

Trained by ``mfr train mask-classifier`` on synthetic masks (the judging sets stay out) and shipped as
``mfr/weights/mask-classifier/mask_classifier.npz``; its accuracy on MFR2's real mask labels is in
docs/recognition.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mfr.errors import DataError
from mfr.paths import bundled_weights
from mfr.runtime.preprocess import align_faces
from mfr.spec import ARCFACE_TEMPLATE_112, PreprocessSpec

CROP = 112  # features are taken from a 112x112 crop aligned to the ArcFace template
# That crop, as a spec: whatever crop the recognition model takes, the classifier reads this one
CLASSIFIER_SPEC = PreprocessSpec(input_size=(CROP, CROP), color_order="BGR", scale=1.0, mean=(0.0, 0.0, 0.0),
                                 std=(1.0, 1.0, 1.0), template=ARCFACE_TEMPLATE_112)
UPPER = (slice(28, 60), slice(24, 88))  # eyes and the brow between them
LOWER = (slice(64, 112), slice(16, 96))  # nose tip, mouth, chin
GRID = (6, 8)  # rows, columns of the lower-face grid


def mask_features(crops: np.ndarray) -> np.ndarray:
    """(N, 112, 112, 3) uint8 BGR aligned crops -> (N, F) float32 features."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:3] != (CROP, CROP):
        crops = np.stack([cv2.resize(c, (CROP, CROP), interpolation=cv2.INTER_AREA) for c in crops])
    rows = []
    for crop in crops:
        lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB).astype(np.float32)
        upper = lab[UPPER].reshape(-1, 3).mean(axis=0)
        grid = cv2.resize(lab[LOWER], (GRID[1], GRID[0]), interpolation=cv2.INTER_AREA) - upper
        spread = lab[LOWER].reshape(-1, 3).std(axis=0)
        rows.append(np.concatenate([grid.ravel(), spread, upper]))
    return np.asarray(rows, np.float32)


def reads_crops_of(spec: PreprocessSpec) -> bool:
    """Whether the classifier reads crops of ``spec`` as they are: 112x112 on the ArcFace template (a crop of
    another size or template frames the face differently)."""
    return spec.input_size == CLASSIFIER_SPEC.input_size and spec.template is not None \
        and bool(np.allclose(spec.template, ARCFACE_TEMPLATE_112))


def classifier_crops(image: np.ndarray, landmarks: list[np.ndarray] | np.ndarray, spec: PreprocessSpec,
                     crops: np.ndarray) -> np.ndarray:
    """The crops the classifier reads for faces whose recognition ``crops`` (of ``spec``) came from ``image`` and
    ``landmarks``: those crops themselves where it reads them as they are, else the faces aligned anew."""
    return crops if reads_crops_of(spec) else align_faces(image, landmarks, CLASSIFIER_SPEC)


@dataclass(frozen=True)
class MaskClassifier:
    weights: np.ndarray  # (F,)
    bias: float
    mean: np.ndarray  # (F,) feature standardisation
    std: np.ndarray
    about: dict  # how it was trained and measured

    @classmethod
    def load(cls, path: Path | None = None) -> MaskClassifier:
        path = Path(path) if path is not None else bundled_weights("mask-classifier", "mask_classifier.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["weights"], float(data["bias"]), data["mean"], data["std"],
                           json.loads(str(data["about"])))
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: not a mask classifier ({exc}); train one with mfr train mask-classifier") \
                from None

    def save(self, path: Path) -> None:
        from mfr.atomic import atomic_file

        with atomic_file(Path(path), suffix=".npz") as tmp:
            np.savez(tmp, weights=self.weights, bias=np.float32(self.bias), mean=self.mean, std=self.std,
                     about=np.array(json.dumps(self.about)))

    def probability(self, crops: np.ndarray) -> np.ndarray:
        """The probability that each aligned crop shows a masked face."""
        if len(crops) == 0:
            return np.zeros(0, np.float32)
        z = ((mask_features(crops) - self.mean) / self.std) @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        return self.probability(crops) >= 0.5


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-2, steps: int = 25) -> MaskClassifier:
    """Logistic regression by Newton's method (a few hundred features: exact and fast in numpy, so no
    learning library is needed for it)."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    x = np.hstack([(features - mean) / std, np.ones((len(features), 1), np.float32)]).astype(np.float64)
    y = labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    penalty = l2 * len(x) * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        w -= np.linalg.solve(hessian, gradient)
    return MaskClassifier(w[:-1].astype(np.float32), float(w[-1]), mean.astype(np.float32), std.astype(np.float32), {})
