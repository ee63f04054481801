"""``mfr restore``: the unmasked face a MEER package's restoring decoder imagines for an aligned crop.

The output is a synthesis: plausible pixels the model draws from what it saw, not the person's face.
It is shown for a person to look at (what did the model make of the visible part?) and never used as
evidence of identity; the sheet says so on the image itself, so it cannot travel without that label.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mfr.atomic import sha256_file
from mfr.errors import ManifestError
from mfr.manifest import Manifest, listed_file, load_manifest
from mfr.runtime.engine_ort import onnxruntime_session
from mfr.runtime.preprocess import denormalize, normalize

RESTORE_KEY = "restore_onnx"  # the manifest key mfr.export.restorer lists restore.onnx under
LABEL = ("SYNTHESIS: imagined by the model,", "not a photo; never evidence of identity")


class FaceRestorer:
    """``restore(crops)``: uint8 BGR aligned crops (N, H, W, 3) -> the restored faces, uint8 BGR."""

    def __init__(self, manifest: Manifest, model: Path) -> None:
        self.manifest = manifest
        self.session = onnxruntime_session(str(model))
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def open(cls, package: Path) -> FaceRestorer:
        package = Path(package)
        manifest = load_manifest(package)
        model = listed_file(package, manifest, RESTORE_KEY,
                            f"{package} has no restoring decoder ({manifest.model} package; only a MEER package "
                            f"trained with synthesis has one: mfr train meer without --no-synthesis)")
        if sha256_file(model) != manifest.sha256.get(RESTORE_KEY):
            raise ManifestError(f"{model}: sha256 differs from the one in {package / 'manifest.json'}")
        return cls(manifest, model)

    def restore(self, crops: np.ndarray) -> np.ndarray:
        spec = self.manifest.spec
        restored = self.session.run(None, {self.input_name: normalize(crops, spec)})[0]
        return denormalize(np.asarray(restored, np.float32), spec)


def restoration_sheet(crop: np.ndarray, restored: np.ndarray, scale: int = 2) -> np.ndarray:
    """The aligned input beside the restored face, enlarged, under a banner that labels it a synthesis."""
    pair = np.hstack([crop, restored])
    pair = cv2.resize(pair, (pair.shape[1] * scale, pair.shape[0] * scale), interpolation=cv2.INTER_LINEAR)
    banner = np.zeros((52, pair.shape[1], 3), np.uint8)
    banner[:] = (0, 0, 160)
    for line, text in enumerate(LABEL):
        cv2.putText(banner, text, (8, 21 + 22 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    captions = np.full((24, pair.shape[1], 3), 255, np.uint8)
    half = pair.shape[1] // 2
    cv2.putText(captions, "input (aligned)", (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(captions, "restored (synthesis)", (half + 8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([banner, captions, pair])
