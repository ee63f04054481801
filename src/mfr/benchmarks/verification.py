"""Verification evaluation of a model package on LFW, masked LFW and MFR2.

Every image goes through the same path a deployment uses: landmarks (the template for pre-aligned
crops, the detector otherwise), optional synthetic mask, Umeyama alignment to the model's template,
spec-driven normalisation, ONNX Runtime. Embeddings are cached per model-file hash and variant.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mfr import metrics
from mfr.augment.renderers import MaskRenderer, mask_renderer, renderer_cache_tag
from mfr.cache import ArrayCache, cache_key
from mfr.data.lfw import read_lfw
from mfr.data.mfr2 import read_mfr2
from mfr.data.pairs import PairDataset
from mfr.errors import DataError
from mfr.paths import report_path
from mfr.progress import Progress, no_progress
from mfr.runtime.align import aligned_crop_landmarks, estimate_similarity
from mfr.runtime.detection import FaceDetector, largest_face
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.machine import fingerprint
from mfr.runtime.preprocess import warp_face
from mfr.spec import PreprocessSpec

DATASETS = ("lfw", "lfw-masked", "mfr2")
PROTOCOLS = {"lfw": ("U-U",), "lfw-masked": ("U-U", "M-U", "M-M"), "mfr2": ("MFR2",)}
NoFacePolicy = Literal["fail", "center"]
_CHUNK = 256


def load_dataset(name: str, root: Path | None = None) -> PairDataset:
    if name in ("lfw", "lfw-masked"):
        return read_lfw(root)
    if name == "mfr2":
        return read_mfr2(root)
    raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


@dataclass
class DetectionReport:
    detector: str
    policy: str
    images: int = 0
    single_face: int = 0
    several_faces: int = 0  # the largest face was used
    no_face: int = 0
    no_face_examples: list[str] = field(default_factory=list)


class CropMaker:
    """Image path -> aligned uint8 BGR crop for the model, optionally with a synthetic mask."""

    def __init__(self, dataset: PairDataset, spec: PreprocessSpec, detector: FaceDetector | None,
                 detector_name: str, policy: NoFacePolicy, masks: MaskRenderer | None) -> None:
        if not dataset.aligned and detector is None:
            raise DataError(f"{dataset.name} holds unaligned photos: a face detector is needed")
        self.dataset, self.spec, self.detector, self.policy, self.masks = dataset, spec, detector, policy, masks
        self.report = DetectionReport(detector_name if not dataset.aligned else "none (pre-aligned)", policy)
        self._landmarks: dict[Path, np.ndarray] = {}

    def landmarks(self, path: Path, image: np.ndarray) -> np.ndarray:
        if path not in self._landmarks:
            self._landmarks[path] = self._find_landmarks(path, image)
        return self._landmarks[path]

    def _find_landmarks(self, path: Path, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if self.dataset.aligned:
            return aligned_crop_landmarks(height, width)
        assert self.detector is not None
        faces = self.detector.detect(image)
        self.report.images += 1
        face = largest_face(faces)
        if face is None:
            self.report.no_face += 1
            if len(self.report.no_face_examples) < 5:
                self.report.no_face_examples.append(report_path(path))
            if self.policy == "fail":
                raise DataError(f"{path}: no face found (use --no-face center to fall back to a centred crop)")
            side = min(height, width)  # the template scaled into the largest centred square
            return aligned_crop_landmarks(side, side) + [(width - side) / 2, (height - side) / 2]
        if len(faces) > 1:
            self.report.several_faces += 1
        else:
            self.report.single_face += 1
        return face.landmarks

    def crop(self, path: Path, masked: bool, spec: PreprocessSpec | None = None) -> np.ndarray:
        """The face of ``path`` (masked or not) aligned for the model, or for ``spec`` (another reader of it)."""
        spec = spec or self.spec
        image = read_image_bgr(path)
        points = self.landmarks(path, image)
        if masked:
            assert self.masks is not None
            image = self.masks.apply(image, points, key=str(path.relative_to(self.dataset.root)))
        return warp_face(image, estimate_similarity(points, spec), spec)


@dataclass
class ProtocolResult:
    pairs: int
    impostor_pairs: int  # a FAR below 1/impostor_pairs cannot be measured: those figures are None
    accuracy: float
    accuracy_std: float
    eer: float
    eer_ci95: tuple[float, float]
    tar_at_far: dict[str, float | None]
    fnmr_at_fmr: dict[str, float | None]
    threshold: float
    roc: dict[str, list[float]] = field(default_factory=dict)  # far, tar: ~120 points (metrics.roc_points)


def judging_folds(folds: np.ndarray) -> np.ndarray:
    """The folds the k-fold accuracy uses: the dataset's, or for a single fold (--folds 3) 10 interleaved
    sub-folds of it, so that each pair's threshold still comes from other pairs."""
    return np.arange(len(folds)) % 10 if len(np.unique(folds)) < 2 else np.asarray(folds)


def score_protocol(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, bootstrap: int) -> ProtocolResult:
    folds = judging_folds(folds)
    kfold = metrics.kfold_accuracy(scores, same, folds)
    interval = metrics.bootstrap_interval(metrics.eer, scores, same, resamples=bootstrap) if bootstrap else None
    eer = metrics.eer(scores, same)
    return ProtocolResult(
        pairs=len(scores),
        impostor_pairs=int((~same).sum()),
        accuracy=kfold.accuracy,
        accuracy_std=kfold.accuracy_std,
        eer=eer,
        eer_ci95=(interval.low, interval.high) if interval else (eer, eer),
        tar_at_far={far: metrics.tar_at_far(scores, same, float(far)) for far in ("1e-2", "1e-3")},
        fnmr_at_fmr={name: metrics.fnmr_at_fmr(scores, same, fmr) for name, fmr in (("FMR100", 1e-2),
                                                                                   ("FMR1000", 1e-3))},
        threshold=float(np.mean(kfold.thresholds)),
        roc=metrics.roc_points(scores, same),
    )


@dataclass
class EvalReport:
    model: str
    package: str
    model_sha256: str
    dataset: str
    precision: str
    backend: str
    flip: bool
    protocols: dict[str, ProtocolResult]
    detection: DetectionReport | None
    seconds: float
    machine: dict[str, str]
    masks: str | None = None  # lfw-masked: which renderer and seed drew the masks
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    embeddings: dict[bool, np.ndarray] = field(default_factory=dict, repr=False)  # masked? -> (images, dim)
    pairs: list[tuple[str, str]] = field(default_factory=list, repr=False)  # the scores' photos, dataset-relative
    folds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int), repr=False)  # each pair's, 0-based

    def errors(self) -> list[dict[str, Any]]:
        """The pairs the k-fold accuracy counts wrong, per protocol, each with its score and the threshold it
        was judged at (chosen on the other folds): where a model fails, to look at and to compare models."""
        rows = []
        for protocol, (values, same) in self.scores.items():
            applied = metrics.kfold_thresholds(values, same, judging_folds(self.folds))
            for i in np.flatnonzero((values >= applied) != same):
                rows.append({"package": self.package, "model": self.model, "precision": self.precision,
                             "protocol": protocol, "fold": int(self.folds[i]) + 1, "left": self.pairs[i][0],
                             "right": self.pairs[i][1], "same": bool(same[i]), "score": round(float(values[i]), 6),
                             "threshold": round(float(applied[i]), 6)})
        return rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for internal in ("scores", "embeddings", "pairs", "folds"):
            data.pop(internal)
        if len(self.protocols) == 1:  # single-protocol datasets: the figures at the top level too
            data.update(asdict(next(iter(self.protocols.values()))))
        return data


@dataclass
class Evaluation:
    """Loader-style: stores the request; calling it runs the evaluation."""

    package: Path | str  # a directory, or a served model's address (triton://...)
    dataset: str
    precision: str | None = None  # None: fp32 for a package, the engine's own for an engine directory
    flip: bool = True
    data_dir: Path | None = None
    detector: FaceDetector | None = None
    detector_name: str = "none"
    no_face: NoFacePolicy = "fail"
    mask_seed: int = 0
    mask_renderer: str = "templates"  # mfr.augment.renderers: templates (as in training) or procedural
    folds: tuple[int, ...] | None = None  # evaluate only these folds (0-based)
    cache_dir: Path | None = None
    bootstrap: int = 1000

    def __call__(self, progress: Progress = no_progress) -> EvalReport:
        started = time.perf_counter()
        data = load_dataset(self.dataset, self.data_dir)
        if self.folds is not None:
            data = PairDataset(data.name, data.root, [p for p in data.pairs if p.fold in self.folds], data.aligned)
            if not data.pairs:
                raise DataError(f"no pairs in folds {self.folds} of {self.dataset}")
        embedder = FaceEmbedder.open(self.package, self.precision)
        masks = mask_renderer(self.mask_renderer, self.mask_seed) if self.dataset == "lfw-masked" else None
        crops = CropMaker(data, embedder.manifest.spec, self.detector, self.detector_name, self.no_face, masks)
        model_hash = embedder.model_sha256()
        images = data.images()
        index = {path: i for i, path in enumerate(images)}
        variants = (False, True) if masks is not None else (False,)
        embeddings = {masked: self._embed(images, masked, crops, embedder, model_hash, progress)
                      for masked in variants}
        same = np.array([p.same for p in data.pairs])
        folds = np.array([p.fold for p in data.pairs])
        left = np.array([index[p.left] for p in data.pairs])
        right = np.array([index[p.right] for p in data.pairs])
        protocols, scores = {}, {}
        for name in PROTOCOLS[self.dataset]:
            mask_left, mask_right = name in ("M-U", "M-M"), name == "M-M"
            values = (embeddings[mask_left][left] * embeddings[mask_right][right]).sum(axis=1)
            scores[name] = (values, same)
            protocols[name] = score_protocol(values, same, folds, self.bootstrap)
        return EvalReport(
            model=embedder.manifest.model, package=str(self.package), model_sha256=model_hash,
            dataset=self.dataset, precision=embedder.engine.precision, backend=embedder.engine.backend, flip=self.flip,
            protocols=protocols, detection=None if data.aligned else crops.report,
            seconds=round(time.perf_counter() - started, 2),
            machine=fingerprint(),
            masks=None if masks is None else f"{self.mask_renderer} (seed {self.mask_seed})",
            scores=scores,
            embeddings=embeddings,
            pairs=[(str(p.left.relative_to(data.root)), str(p.right.relative_to(data.root))) for p in data.pairs],
            folds=folds,
        )

    def _embed(self, images: list[Path], masked: bool, crops: CropMaker, embedder: FaceEmbedder, model_hash: str,
               progress: Progress) -> np.ndarray:
        cache = ArrayCache(self.cache_dir, "embeddings")
        landmarks = None
        if not crops.dataset.aligned:  # detection runs every time: it is cheap, feeds the report and the key
            points = np.stack([crops.landmarks(path, read_image_bgr(path)) for path in images])
            landmarks = hashlib.sha256(points.astype(np.float64).tobytes()).hexdigest()
        renderer = {} if self.mask_renderer == "templates" else {
            "mask_renderer": renderer_cache_tag(self.mask_renderer)}
        key = cache_key(model=model_hash, flip=self.flip, masked=masked, mask_seed=self.mask_seed, **renderer,
                        landmarks=landmarks, spec=embedder.manifest.spec.to_dict(), images=[str(p) for p in images])
        cached = cache.get(key)
        if cached is not None and len(cached) == len(images):
            return cached
        label = f"embedding {'masked ' if masked else ''}{crops.dataset.name} faces"
        chunks = [images[i:i + _CHUNK] for i in range(0, len(images), _CHUNK)]
        out = np.concatenate([
            embedder.embed_crops(np.stack([crops.crop(path, masked) for path in chunk]), flip=self.flip)
            for chunk in progress(chunks, len(chunks), label)
        ])
        cache.put(key, out)
        return out
