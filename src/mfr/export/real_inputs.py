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
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.package_detector import network_input
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
    input made as the detector makes it (``network_input``: normalised by ``spec``, padded with the mean colour
    to a multiple of ``pad_multiple``, which a detector's head gives); and a description of them."""
    root = dataset_dir("demo")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    if not paths:
        raise DataError(f"{root}: no photos for the detector check")
    photos = [network_input(read_image_bgr(path), spec, pad_multiple, max_side)[0] for path in paths]
    return photos, f"{len(paths)} demo photos ({report_path(root)}), longest side <= {max_side}"
