"""Faces -> L2-normalised embeddings, through any engine (torch-free).

The one place the runtime turns faces into embeddings: the spec's normalisation, the engine, the
optional flip-sum (the embedding of a face plus that of its mirror image), normalisation to unit length.
Two entry points, named by what goes in: ``embed_crops`` (aligned uint8 crops) and ``embed_frame_faces``
(a whole frame and the 5 landmarks of each face in it; on a TensorRT engine the CUDA kernel aligns them).
Both give the same kind of embedding on every engine: ``flip`` means the flip-sum on the CPU path and on the
GPU path alike (there the kernel writes each face's mirror image into the same batch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mfr.atomic import sha256_file
from mfr.errors import ManifestError
from mfr.runtime.engine import Engine
from mfr.runtime.engine_load import open_model, package_model_key
from mfr.runtime.preprocess import align_faces, normalize
from mfr.runtime.similarity import l2_normalize


class FaceEmbedder:
    def __init__(self, engine: Engine, batch_size: int = 64, gpu_preprocessing: bool = True,
                 frame_format: str = "BGR", log: Callable[[str], None] = lambda _: None) -> None:
        if engine.manifest.kind != "recognition":
            raise ManifestError(f"{engine.source} holds a {engine.manifest.kind} model, not a recognition model")
        self.engine = engine
        self.manifest = engine.manifest
        self.batch_size = batch_size
        self.frame_format = frame_format
        self.gpu: Any = None  # the CUDA preprocessing on a GPU engine (cuda_preprocess.engine_preprocessor)
        if gpu_preprocessing:
            from mfr.runtime.cuda_preprocess import engine_preprocessor

            self.gpu = engine_preprocessor(engine, engine.profile.max, frame_format, log)

    def embed_frame_faces(self, frame: np.ndarray, landmarks: list[np.ndarray] | np.ndarray,
                          flip: bool = False) -> np.ndarray:
        """A frame (uint8, in ``frame_format``) and 5 landmarks per face -> L2-normalised embeddings (N, D),
        with ``flip`` the flip-sum as in ``embed_crops``.

        On a TensorRT engine the CUDA kernel warps and normalises all faces (and their mirror images) straight
        into the engine's input binding; elsewhere (and as the reference) the CPU path aligns and normalises.
        """
        if len(landmarks) == 0:
            return np.zeros((0, self.manifest.spec.embedding_dim or 0), np.float32)
        gpu = self._gpu_for(flip)
        if gpu is None:
            crops = align_faces(frame if self.frame_format == "BGR" else self._to_bgr(frame), landmarks,
                                self.manifest.spec)
            return self.embed_crops(crops, flip)
        return self._embed_on_gpu(lambda part, out: gpu(frame, landmarks[part], out, flip), len(landmarks), flip)

    def embed_crops(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """Aligned uint8 BGR crops (N, H, W, 3) -> L2-normalised embeddings (N, D); with ``flip``, each is
        the sum of the embeddings of the crop and its mirror image (before normalising). On a TensorRT
        engine the CUDA kernel normalises them (and makes the mirror images) on the GPU, with the same
        result as the CPU path's ``normalize``."""
        if len(crops) == 0:
            return np.zeros((0, self.manifest.spec.embedding_dim or 0), np.float32)
        gpu = self._gpu_for(flip)
        if gpu is not None:
            return self._embed_on_gpu(lambda part, out: gpu.crops(crops[part], out, flip), len(crops), flip)
        outputs = []
        for start in range(0, len(crops), self.batch_size):
            batch = normalize(crops[start:start + self.batch_size], self.manifest.spec)
            out = self.engine.raw_embeddings(batch)
            if flip:
                out = out + self.engine.raw_embeddings(np.ascontiguousarray(batch[..., ::-1]))
            outputs.append(out)
        return l2_normalize(np.concatenate(outputs).astype(np.float32))

    def _gpu_for(self, flip: bool) -> Any:
        """The GPU preprocessor, when there is one and the engine's batch holds a face and its mirror."""
        if self.gpu is None or (flip and self.engine.profile.max < 2):
            return None
        return self.gpu

    def _embed_on_gpu(self, fill: Callable[[slice, int], int], count: int, flip: bool) -> np.ndarray:
        """Embeddings of ``count`` faces, in chunks the engine's batch holds: ``fill(part, pointer)`` writes the
        faces of ``part`` (followed, with ``flip``, by their mirror images) to the input binding and returns
        how many items it wrote."""
        engine: Any = self.engine
        per_call = engine.profile.max // (2 if flip else 1)
        outputs = []
        for start in range(0, count, per_call):
            part = slice(start, min(start + per_call, count))
            raw = engine.infer_bound_input(fill(part, engine.input_pointer))[engine.output_names[0]]
            faces = part.stop - part.start
            outputs.append(raw[:faces] + raw[faces:] if flip else raw)
        return l2_normalize(np.concatenate(outputs).astype(np.float32))

    def _to_bgr(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if self.frame_format == "RGB":
            return np.ascontiguousarray(frame[..., ::-1])
        return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_NV12)

    @classmethod
    def open(cls, path: Path | str, precision: str | None = None, threads: int = 0) -> FaceEmbedder:
        """From an engine directory, a model package or a served model's address (see ``open_model``);
        ``threads``: CPU threads of one call (0: every core)."""
        return cls(open_model(path, precision, threads))

    def model_sha256(self) -> str:
        """Keys cached embeddings: the hash of the file the engine runs (engine directories record it;
        packages are hashed). A model run by a server is keyed by its address as well, so that an
        evaluation through the server is measured through it, never read from a local run's cache."""
        if self.engine.remote is not None:
            return hashlib.sha256(f"{self.engine.remote}|{self.source_sha256()}".encode()).hexdigest()
        return self.manifest.sha256.get("engine") or self._file_sha256()

    def source_sha256(self) -> str:
        """The ONNX file these embeddings come from: an engine's source, or the package file it runs.
        Engines built from one ONNX (ONNX Runtime, TensorRT) share it; FP32 and INT8 models do not, nor
        a package's two INT8 models (int8 and uint8 weights): a server says which one it runs."""
        if self.engine.served_source_sha256 is not None:
            return self.engine.served_source_sha256
        record = self.manifest.engine
        if record is not None:
            return record.source_sha256
        key = package_model_key(self.engine.precision)
        return (self.manifest.sha256.get(key) if key else None) or self._file_sha256()

    def _file_sha256(self) -> str:
        if self.engine.model_file is None:
            raise ManifestError(f"{self.engine.source}: its manifest records no sha256 of the model it runs")
        return sha256_file(self.engine.model_file)

    def fingerprint(self) -> str:
        """Which model made these embeddings: model name, source ONNX and preprocessing spec. Embeddings
        with different fingerprints are not comparable; a gallery never mixes them."""
        spec = hashlib.sha256(json.dumps(self.manifest.spec.to_dict(), sort_keys=True).encode()).hexdigest()
        return f"{self.manifest.model}:{self.source_sha256()[:16]}:{spec[:8]}"

    def describe(self) -> str:
        """The model for messages: engine description and where it was opened from."""
        return f"{self.engine.describe()} from {self.engine.source}"
