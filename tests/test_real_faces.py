"""Real-face sanity: the exported MobileFaceNet, fed by the torch-free CPU preprocessing, tells people apart.

Figures are printed (``pytest -s``) and asserted against bars well below the reference LFW accuracy
(about 98.7 % 10-fold), so a broken colour order, normalisation or alignment fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from mfr.data.lfw import read_pairs, sample_images
from mfr.runtime import align_faces, read_image_bgr
from mfr.runtime.embedder import FaceEmbedder


@pytest.fixture(scope="module")
def embedder(mobilefacenet_package):
    """Plain embeddings (no flip): the sanity bar holds without test-time augmentation."""
    return FaceEmbedder.open(mobilefacenet_package)


def test_first_lfw_fold_separates_same_from_different_people(embedder):
    pairs = [p for p in read_pairs() if p.fold == 0]
    assert len(pairs) == 600
    paths = sorted({path for pair in pairs for path in (pair.left, pair.right)})
    index = {path: i for i, path in enumerate(paths)}
    embeddings = embedder.embed_crops(np.stack([read_image_bgr(p) for p in paths]))
    scores = np.array([embeddings[index[p.left]] @ embeddings[index[p.right]] for p in pairs])
    same = np.array([p.same for p in pairs])
    thresholds = np.unique(scores)
    accuracy = max(((scores >= t) == same).mean() for t in thresholds)
    print(f"\nLFW fold 1 (600 pairs): best-threshold accuracy {accuracy:.4f}, "
          f"mean cosine same {scores[same].mean():.3f} / different {scores[~same].mean():.3f}")
    assert accuracy >= 0.97
    assert scores[same].mean() - scores[~same].mean() > 0.4


def test_alignment_undoes_a_similarity_transform_of_real_faces(embedder):
    """Place real faces rotated, scaled and shifted in a larger frame, realign them from the moved
    template landmarks with Umeyama + warpAffine, and compare embeddings with the original crops."""
    import cv2

    spec = embedder.manifest.spec
    template = np.array(spec.template)
    rng = np.random.default_rng(7)
    originals, realigned = [], []
    for path in sample_images(32):
        face = read_image_bgr(path)
        angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(1.2, 2.5)
        c, s = scale * np.cos(angle), scale * np.sin(angle)
        matrix = np.array([[c, -s, rng.uniform(60, 120)], [s, c, rng.uniform(60, 120)]])
        frame = cv2.warpAffine(face, matrix, (480, 400), flags=cv2.INTER_LINEAR)
        landmarks = template @ matrix[:, :2].T + matrix[:, 2]
        originals.append(face)
        realigned.append(align_faces(frame, [landmarks], spec)[0])
    cosine = (embedder.embed_crops(np.stack(originals)) * embedder.embed_crops(np.stack(realigned))).sum(axis=1)
    print(f"\nrealigned vs original crops (32 LFW faces): min cosine {cosine.min():.4f}, mean {cosine.mean():.4f}")
    assert cosine.min() > 0.9
    assert cosine.mean() > 0.97
