"""The LFW accuracy drop the calibration's fallback steers by, on LFW View 2 folds 1-5 only.

The fallback keeps layers in float until the drop on these pairs is small enough, so a drop measured
on the same pairs is optimistic by construction. Folds 6-10 (person-disjoint from folds 1-5), masked
LFW on those folds and MFR2 are never looked at here: the drop reported on them afterwards
(``mfr eval --precision both --folds 6,7,8,9,10``) is an honest one.

Faces are embedded as ``mfr eval`` embeds them (aligned crops, flip-sum, ONNX Runtime on the CPU) and
scored by the same 10-fold-style protocol, here over the 5 folds: each fold's threshold is chosen on
the other four.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr import metrics
from mfr.cache import ArrayCache, cache_key
from mfr.data.lfw import read_lfw
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.align import aligned_crop_landmarks, estimate_similarity
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.engine_ort import OnnxRuntimeEngine
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import warp_face

FALLBACK_FOLDS = (0, 1, 2, 3, 4)  # 0-based: LFW folds 1-5
FALLBACK_FOLDS_LABEL = "LFW View 2 folds 1-5"


@dataclass(frozen=True)
class LfwScore:
    accuracy: float  # k-fold accuracy over the chosen folds
    impostor_mean: float  # mean similarity of different-person pairs (a collapsed model has it near 1)


class LfwFoldCheck:
    """The aligned faces of the chosen folds, read once; ``score(model)`` embeds and scores them."""

    def __init__(self, manifest: Manifest, folds: tuple[int, ...] = FALLBACK_FOLDS, root: Path | None = None) -> None:
        dataset = read_lfw(root)
        pairs = [pair for pair in dataset.pairs if pair.fold in folds]
        self.images = sorted({path for pair in pairs for path in (pair.left, pair.right)})
        index = {path: i for i, path in enumerate(self.images)}
        self.left = np.array([index[pair.left] for pair in pairs])
        self.right = np.array([index[pair.right] for pair in pairs])
        self.same = np.array([pair.same for pair in pairs])
        self.folds = np.array([pair.fold for pair in pairs])
        self.manifest = manifest
        self.crops = np.stack([self._crop(path) for path in self.images])

    @property
    def pairs(self) -> int:
        return len(self.same)

    def _crop(self, path: Path) -> np.ndarray:
        image = read_image_bgr(path)
        points = aligned_crop_landmarks(*image.shape[:2])
        return warp_face(image, estimate_similarity(points, self.manifest.spec), self.manifest.spec)

    def score(self, model: Path, cache_dir: Path | None = None, model_sha256: str | None = None) -> LfwScore:
        """Accuracy of ``model`` (an ONNX file run by ONNX Runtime on the CPU, INT8 evaluated exactly); with
        ``cache_dir`` and the model's sha256 its embeddings are cached (the FP32 model's, reused by every
        calibration of it)."""
        cache = ArrayCache(cache_dir if model_sha256 else None, "embeddings")
        key = cache_key(model=model_sha256, flip=True, exact_int8=True, spec=self.manifest.spec.to_dict(),
                        images=[str(p) for p in self.images])
        embeddings = cache.get(key)
        if embeddings is None or len(embeddings) != len(self.images):
            engine = OnnxRuntimeEngine(model.parent, self.manifest, model, BatchProfile(), exact_int8=True)
            embeddings = FaceEmbedder(engine).embed_crops(self.crops, flip=True)
            cache.put(key, embeddings)
        scores = (embeddings[self.left] * embeddings[self.right]).sum(axis=1)
        accuracy = metrics.kfold_accuracy(scores, self.same, self.folds).accuracy
        return LfwScore(accuracy, float(scores[~self.same].mean()))
