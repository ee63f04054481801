"""Real model inputs for the checks that compare two forms of one model (torch vs ONNX, engine vs ONNX).

Random tensors hide preprocessing-sensitive failures (saturating activations, BatchNorm folding errors
only visible on face statistics), so the checks feed aligned LFW faces through the runtime's own CPU
preprocessing. Torch-free: ``build-engine`` uses it on devices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr.data.lfw import sample_images
from mfr.errors import DataError
from mfr.paths import dataset_dir, report_path
from mfr.runtime.detection import fit_longest_side
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import crop_from_aligned, normalize
from mfr.spec import PreprocessSpec

DETECTOR_MAX_SIDE = 640  # the longest side the detectors are fed by default (PackageDetector, --detect-size)


def sample_faces(count: int, spec: PreprocessSpec, root: Path | None = None) -> np.ndarray:
    """``count`` aligned LFW faces (one per person, as ``sample_images`` picks them), warped to the model's
    template and preprocessed by ``spec``."""
    return normalize([crop_from_aligned(read_image_bgr(path), spec) for path in sample_images(count, root)], spec)


def detector_photos(count: int, spec: PreprocessSpec, max_side: int = DETECTOR_MAX_SIDE,
                    pad_multiple: int = 1) -> tuple[list[np.ndarray], str]:
    """Real unaligned photos at their own aspect ratios, longest side <= ``max_side``, each a (1, C, H, W)
    input normalised by ``spec`` and padded with zeros (the mean colour) to a multiple of ``pad_multiple``
    (a detector's head says which); and a description of them."""
    root = dataset_dir("demo")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    if not paths:
        raise DataError(f"{root}: no photos for the detector check")
    photos = []
    for path in paths:
        photo = normalize(fit_longest_side(read_image_bgr(path), max_side)[0], spec)
        height, width = photo.shape[2:]
        pad_h, pad_w = -height % pad_multiple, -width % pad_multiple
        photos.append(np.pad(photo, ((0, 0), (0, 0), (0, pad_h), (0, pad_w))) if pad_h or pad_w else photo)
    return photos, f"{len(paths)} demo photos ({report_path(root)}), longest side <= {max_side}"
