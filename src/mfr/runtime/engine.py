"""The one interface every inference backend implements (compare Polygraphy's runners).

An ``Engine`` runs a model on preprocessed input: a float32 NCHW batch (``mfr.runtime.normalize``'s
output). Two entry points, named by what comes out:

- ``infer(inputs)`` -> every raw output by name, for any batch size (batches above the profile are
  split into calls of its maximum, so one backend call always fits the profile);
- ``raw_embeddings(inputs)`` -> the first output as it is, not normalised: (N, D) for a recognition
  model. ``mfr.runtime.embedder.FaceEmbedder`` turns uint8 face crops into unit-length embeddings.

A backend implements ``_infer_once`` (one call within the profile). Input checks live here, once, so
every backend rejects the same bad input with the same message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest, TensorInfo


class Engine(ABC):
    backend: str = ""
    # The address of a model run by a server (``triton://...``); None for an engine run in this process.
    remote: str | None = None
    # The sha256 of the ONNX file a served model comes from, where the server says (mfr_source_sha256)
    served_source_sha256: str | None = None

    def __init__(self, source: Path | str, manifest: Manifest, model_file: Path | None, profile: BatchProfile,
                 precision: str | None = None) -> None:
        self.source = source  # the engine directory (or package, or server address) it came from, for messages
        # the file the backend runs (its hash keys cached embeddings); None when it lives on a server
        self.model_file = None if model_file is None else Path(model_file)
        self.manifest = manifest
        self.profile = profile
        self.precision = precision or (manifest.engine.precision if manifest.engine else "fp32")
        self.input: TensorInfo = manifest.inputs[0]
        self.output_names = [t.name for t in manifest.outputs]

    def check_input(self, batch: np.ndarray) -> None:
        """Refuse what the model was not built for, naming the engine and what it expects."""
        if not isinstance(batch, np.ndarray):
            raise EngineError(f"{self.source}: expected a numpy array, got {type(batch).__name__}")
        if batch.dtype != np.float32:
            raise EngineError(f"{self.source}: input {self.input.name} must be float32 (the output of "
                              f"mfr.runtime.normalize), got {batch.dtype}")
        expected = self.input.shape
        if batch.ndim != len(expected) or any(isinstance(want, int) and want != got
                                              for want, got in zip(expected[1:], batch.shape[1:], strict=True)):
            raise EngineError(f"{self.source}: input {self.input.name} must have shape {expected} "
                              f"(N, C, H, W), got {list(batch.shape)}")

    def check_batch_size(self, count: int) -> None:
        """One backend call takes between the profile's min and max inputs (TensorRT's optimisation
        profile; enforced for every backend so an engine behaves the same on all of them)."""
        if not self.profile.min <= count <= self.profile.max:
            raise EngineError(f"{self.source}: batch of {count} is outside the engine's profile "
                              f"[{self.profile.min}, {self.profile.max}]; rebuild it with --min-batch/--max-batch")

    def infer(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """float32 NCHW inputs, any batch size -> every raw output by name (float32)."""
        self.check_input(inputs)
        step = self.profile.max
        parts = []
        for start in range(0, max(len(inputs), 1), step):  # an empty batch is refused by the check
            chunk = inputs[start:start + step]
            self.check_batch_size(len(chunk))
            parts.append(self._infer_once(np.ascontiguousarray(chunk)))
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in self.output_names}

    def raw_embeddings(self, inputs: np.ndarray) -> np.ndarray:
        """float32 NCHW inputs, any batch size -> the first output, not normalised: (N, D) for recognition."""
        if len(inputs) == 0:
            dim = self.manifest.spec.embedding_dim or 0
            return np.zeros((0, dim), np.float32)
        return self.infer(inputs)[self.output_names[0]]

    @abstractmethod
    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One backend call on checked, contiguous inputs whose batch size lies within the profile."""

    def close(self) -> None:  # noqa: B027 - backends without resources to release need not override it
        """Release backend resources (device memory, streams); the engine is unusable afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        record = self.manifest.engine
        where = f"{record.device}" if record else "CPU"
        return f"{self.manifest.model} {self.precision} ({self.backend}, {where})"
