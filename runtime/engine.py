"""The one interface every inference backend implements (compare Polygraphy's runners).

An ``Engine`` runs a model on a preprocessed NCHW float32 batch. ``run`` is a single backend call and
refuses a batch outside the engine's profile; ``infer`` splits larger batches into profile-sized calls;
``embed`` returns the first output (the embedding of a recognition model). Input checks live here,
once, so every backend rejects the same bad input with the same message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest, TensorInfo


class Engine(ABC):
    backend: str = ""

    def __init__(self, source: Path, manifest: Manifest, model_file: Path, profile: BatchProfile,
                 precision: str | None = None) -> None:
        self.source = Path(source)  # the engine directory (or package) it came from, for messages
        self.model_file = Path(model_file)  # the file the backend runs (its hash keys cached embeddings)
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
        if not self.profile.min <= count <= self.profile.max:
            raise EngineError(f"{self.source}: batch of {count} is outside the engine's profile "
                              f"[{self.profile.min}, {self.profile.max}]; use infer()/embed(), which split "
                              f"large batches, or rebuild with --max-batch")

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One backend call; the batch size must lie within the engine's profile."""
        self.check_input(batch)
        self.check_batch_size(len(batch))
        return self._run(np.ascontiguousarray(batch))

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs for any batch size: batches above the profile are split into calls of its maximum."""
        self.check_input(batch)
        if len(batch) <= self.profile.max:
            return self.run(batch)
        parts = [self.run(batch[start:start + self.profile.max]) for start in range(0, len(batch), self.profile.max)]
        return {name: np.concatenate([part[name] for part in parts]) for name in self.output_names}

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """The first output (raw, not normalised) for any batch size: (N, D) embeddings for recognition."""
        if len(batch) == 0:
            dim = self.manifest.spec.embedding_dim or 0
            return np.zeros((0, dim), np.float32)
        return self.infer(batch)[self.output_names[0]]

    @abstractmethod
    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one checked, contiguous batch within the profile."""

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
