"""A face detector run from a model package, an engine directory or a served model: resize, normalise by
the manifest's spec, pad for the network, run the engine, decode (``detector_heads``), suppress.

Every detector family runs through this one class, so a detector's INT8 model, its TensorRT engine or a
model on a Triton server is chosen the way a recogniser's is (``mfr.runtime.engine_load.open_model``), and
the calibration and the evaluation decode exactly as the camera loop does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mfr.runtime.detection import Face, fit_longest_side, fitted_size, padded_size, select_faces
from mfr.runtime.detector_heads import head_for
from mfr.runtime.engine_load import open_model
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec


def network_input(image: np.ndarray, spec: PreprocessSpec, pad_multiple: int, max_side: int,
                  min_side: int = 0) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(1, 3, H, W) input of one BGR image, the resize factor applied, and the resized (unpadded) size.
    Padding is zeros after normalisation (the mean colour) on the bottom and right, where no box reaches."""
    resized, factor = fit_longest_side(image, max_side, min_side)
    height, width = resized.shape[:2]
    pad_h, pad_w = padded_size(height, width, pad_multiple)
    if (pad_h, pad_w) != (height, width):
        resized = cv2.copyMakeBorder(resized, 0, pad_h - height, 0, pad_w - width, cv2.BORDER_CONSTANT,
                                     value=padding_colour(spec))
    return detector_blob(resized, spec), factor, (height, width)


def detector_blob(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``normalize`` of one whole frame, through OpenCV's ``blobFromImage`` where that is the same arithmetic
    (scale and std 1: ``p - mean`` exactly, in one pass instead of numpy's three over 0.7 M values;
    measured at 640x384 on a 2-core AMD EPYC with AVX-512 VNNI, OpenCV 5.0: 0.55 ms instead of 2.7 ms), else
    ``normalize`` itself."""
    if spec.scale != 1.0 or any(s != 1.0 for s in spec.std):
        return normalize(image, spec)
    mean = tuple(float(m) for m in spec.mean)
    return np.asarray(cv2.dnn.blobFromImage(image, 1.0, (0, 0), mean, spec.color_order == "RGB", False))


def padding_colour(spec: PreprocessSpec) -> tuple[float, ...]:
    """The uint8 BGR colour that normalises to zero (what padding with zeros means to the network)."""
    values = [float(np.clip(round(m / spec.scale), 0, 255)) for m in spec.mean]
    return tuple(values if spec.color_order == "BGR" else values[::-1])


class PackageDetector:
    """``detect(image)`` -> faces, highest score first, in the image's own coordinates.

    On a TensorRT engine the frame's resize and normalisation run on the GPU (the CUDA preprocessing
    kernel, ``CudaPreprocessor.resized``), written straight into the engine's input; elsewhere on the CPU."""

    def __init__(self, location: Path | str, precision: str | None = None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.4, max_side: int = 640, min_side: int = 0, threads: int = 0,
                 gpu_preprocessing: bool = True, log: Callable[[str], None] = lambda _: None) -> None:
        self.engine = open_model(location, precision, threads)
        self.manifest = self.engine.manifest
        self.head = head_for(self.manifest.decoder, f"{location} (manifest)")
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_side, self.min_side = max_side, min_side
        self.gpu: Any = None  # the CUDA preprocessing on a GPU engine (cuda_preprocess.engine_preprocessor)
        if gpu_preprocessing:
            from mfr.runtime.cuda_preprocess import engine_preprocessor

            self.gpu = engine_preprocessor(self.engine, 1, log=log)

    @property
    def precision(self) -> str:
        return self.engine.precision

    def detect(self, image: np.ndarray) -> list[Face]:
        if self.gpu is not None:
            return self._detect_on_gpu(image)
        batch, factor, (height, width) = network_input(image, self.manifest.spec, self.head.pad_multiple,
                                                       self.max_side, self.min_side)
        outputs = self.engine.infer(batch)
        return self.faces({name: value[0] for name, value in outputs.items()}, height, width, factor)

    def _detect_on_gpu(self, image: np.ndarray) -> list[Face]:
        factor, height, width = fitted_size(image.shape[0], image.shape[1], self.max_side, self.min_side)
        pad_h, pad_w = padded_size(height, width, self.head.pad_multiple)
        engine: Any = self.engine
        assert self.gpu is not None
        self.gpu.resized(image, factor, pad_h, pad_w, engine.input_pointer)
        outputs = engine.infer_bound_input(1, [1, 3, pad_h, pad_w])
        return self.faces({name: value[0] for name, value in outputs.items()}, height, width, factor)

    def faces(self, outputs: dict[str, np.ndarray], height: int, width: int, factor: float) -> list[Face]:
        """The faces of one image's raw outputs (what calibration compares between FP32 and INT8)."""
        boxes, scores, landmarks = self.head.decode(outputs, height, width)
        return select_faces(boxes, scores, landmarks, self.score_threshold, self.nms_threshold, factor)

