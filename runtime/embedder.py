"""Face embeddings from a recognition model package with ONNX Runtime (torch-free).

Issue 6 generalises this into the engine interface shared with TensorRT; until then this is the one
place the runtime turns preprocessed crops into embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from mfr.errors import ManifestError
from mfr.manifest import Manifest, load_manifest
from mfr.runtime.preprocess import normalize

PRECISION_FILES = {"fp32": "onnx", "int8": "onnx_int8"}


def model_file(package: Path, manifest: Manifest, precision: str) -> Path:
    """The model file for ``precision``, or an error saying which command produces it."""
    key = PRECISION_FILES.get(precision)
    if key is None:
        raise ManifestError(f"unknown precision {precision!r}; choose from {', '.join(PRECISION_FILES)}")
    if key not in manifest.files:
        raise ManifestError(f"{package} has no {precision} model (files: {manifest.files}); "
                            f"create one with: mfr-export calibrate --package {package}")
    path = Path(package) / manifest.files[key]
    if not path.is_file():
        raise ManifestError(f"{path} is listed in {package / 'manifest.json'} but missing")
    return path


class OnnxEmbedder:
    def __init__(self, package: Path, precision: str = "fp32", batch_size: int = 64,
                 providers: list[str] | None = None) -> None:
        self.package = Path(package)
        self.manifest = load_manifest(self.package)
        if self.manifest.kind != "recognition":
            raise ManifestError(f"{self.package} holds a {self.manifest.kind} model, not a recognition model")
        self.path = model_file(self.package, self.manifest, precision)
        self.session = ort.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.manifest.inputs[0].name
        self.batch_size = batch_size

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """L2-normalised embeddings of aligned uint8 BGR crops (N, H, W, 3); with ``flip``, the sum of
        the embeddings of each crop and its mirror image (before normalising)."""
        outputs = []
        for start in range(0, len(crops), self.batch_size):
            batch = normalize(crops[start:start + self.batch_size], self.manifest.spec)
            out = self.session.run(None, {self.input_name: batch})[0]
            if flip:
                out = out + self.session.run(None, {self.input_name: np.ascontiguousarray(batch[..., ::-1])})[0]
            outputs.append(out)
        if not outputs:
            return np.zeros((0, self.manifest.spec.embedding_dim or 0), np.float32)
        embeddings = np.concatenate(outputs).astype(np.float32)
        return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
