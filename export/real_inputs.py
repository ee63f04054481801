"""Real model inputs for the checks that compare two forms of one model (torch vs ONNX, engine vs ONNX).

Random tensors hide preprocessing-sensitive failures (saturating activations, BatchNorm folding errors
only visible on face statistics), so the checks feed aligned LFW faces through the runtime's own CPU
preprocessing. Torch-free: ``build-engine`` uses it on devices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr.data.lfw import sample_images
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec


def sample_faces(count: int, spec: PreprocessSpec, root: Path | None = None) -> np.ndarray:
    """``count`` aligned LFW faces (one per person, as ``sample_images`` picks them), preprocessed by ``spec``."""
    return normalize([read_image_bgr(path) for path in sample_images(count, root)], spec)
