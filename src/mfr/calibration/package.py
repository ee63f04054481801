"""``mfr-export calibrate``: ranges once, four artefacts, accuracy-aware fallback, written atomically.

Every INT8 measurement here (sensitivity, held-out cosine, LFW drop) evaluates the Q/DQ model exactly
(``mfr.runtime.engine_ort.exact_session_options``), not with this CPU's integer kernels: the same command
chooses the same float layers on every machine. What a CPU's kernels then do with the model is
``build-engine``'s concern, which checks the engine on the machine it is built on."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from mfr.atomic import check_output_dir, sha256_file, staged_output_dir
from mfr.calibration.data import load_calibration_set
from mfr.calibration.fallback import (
    MAX_IMPOSTOR_SIMILARITY,
    DegenerateModelError,
    check_not_degenerate,
    greedy_fallback,
)
from mfr.calibration.lfw_check import FALLBACK_FOLDS_LABEL, LfwFoldCheck
from mfr.calibration.ort_qdq import write_ort_int8
from mfr.calibration.ranges import collect_stats, compute_ranges
from mfr.calibration.sensitivity import embedding_distance, layer_sensitivity, run_model
from mfr.calibration.trt_qdq import write_trt_int8
from mfr.errors import ManifestError
from mfr.export.fp16 import to_fp16
from mfr.manifest import CalibrationRecord, FallbackRecord, Manifest, listed_file, load_manifest
from mfr.progress import Progress, no_progress
from mfr.runtime.detection import FaceDetector
from mfr.trt_calibration_cache import write_calibration_cache

ORT_INT8 = "model.int8.onnx"
ORT_INT8_U8 = "model.int8.u8.onnx"  # uint8 weights on dense layers: for x86 CPUs without VNNI (ort_qdq)
TRT_INT8 = "model.int8.trt.onnx"
TRT_INT8_FP16 = "model.int8.trt.fp16.onnx"  # the same, its float parts in FP16 (mfr.export.fp16)
CACHE = "calibration.cache"
# the files a calibrated package adds, by manifest key
ARTEFACTS = {"onnx_int8": ORT_INT8, "onnx_int8_u8": ORT_INT8_U8, "onnx_int8_trt": TRT_INT8,
             "onnx_int8_trt_fp16": TRT_INT8_FP16, "trt_calibration_cache": CACHE}
TRT_MIN_COSINE = 0.99


@dataclass(frozen=True)
class PackageCalibrator:
    package: Path
    out: Path
    num_images: int = 512
    masked_share: float = 0.5
    method: str = "percentile"
    percentile: float = 99.999
    calib_dir: Path | None = None
    detector: FaceDetector | None = None
    max_drop_pp: float = 0.10
    min_cosine: float = 0.997  # held-out embedding cosine INT8 vs FP32 the ONNX Runtime model must reach
    fallback_budget: int = 8
    heldout_images: int = 128
    seed: int = 0
    check_lfw: bool = True
    cache_dir: Path | None = None
    force: bool = False

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> CalibrationRecord:
        source = load_manifest(self.package)
        if source.kind != "recognition":
            raise ManifestError(f"{self.package}: calibration needs a recognition package, this is {source.kind}")
        fp32_path = listed_file(self.package, source, "onnx", f"{self.package} lists no FP32 ONNX model (files: "
                                f"{source.files}); calibrate the package written by mfr-export onnx")
        check_output_dir(Path(self.out), self.force)
        started = time.perf_counter()
        log(f"preparing {self.num_images} calibration faces ({self.masked_share:.0%} masked)")
        calib = load_calibration_set(source.spec, self.num_images, self.masked_share, self.seed, self.calib_dir,
                                     self.detector)
        heldout = load_calibration_set(source.spec, self.heldout_images, self.masked_share, self.seed,
                                       self.calib_dir, self.detector, skip=self.num_images)
        log("collecting activation statistics (two passes)")
        ranges = compute_ranges(collect_stats(fp32_path, calib.inputs), self.method, self.percentile)
        calibration_seconds = time.perf_counter() - started
        model = onnx.load(str(fp32_path))
        # the ranking costs one quantize-and-run per layer: only when layers may fall back at all
        reference = run_model(model, heldout.inputs)
        sensitivity = layer_sensitivity(model, ranges, embedding_distance(heldout.inputs, reference),
                                        progress) if self.fallback_budget else {}
        search = FallbackSearch(self, source, fp32_path, ranges, heldout.inputs, reference, list(sensitivity), log)
        with staged_output_dir(Path(self.out), self.force) as stage:
            for key, name in source.files.items():  # the FP32 model and what came with it (the FP16 model)
                shutil.copy(listed_file(self.package, source, key, f"{self.package} lists {name}, which is missing"),
                            stage / name)
            manifest = source
            manifest.files.update(ARTEFACTS)
            log("accuracy-aware fallback for the ONNX Runtime model")
            ort_record = search.onnxruntime("s8", stage / ORT_INT8)
            # x86 CPUs without VNNI saturate int8 weights in matrix products (mfr.runtime.machine.int8_saturates):
            # the model with uint8 weights there, its float layers chosen by its own fallback
            log("accuracy-aware fallback for the ONNX Runtime model with uint8 weights (x86 CPUs without VNNI)")
            u8_record = search.onnxruntime("u8", stage / ORT_INT8_U8)
            trt_record, mixed_cosine = search.tensorrt(stage / TRT_INT8, stage / TRT_INT8_FP16)
            write_calibration_cache(ranges, stage / CACHE)
            record = CalibrationRecord(
                method=self.method, percentile=self.percentile if self.method == "percentile" else None,
                images=len(calib.paths), masked=calib.masked, heldout_images=len(heldout.paths),
                source=calib.source, seed=self.seed, seconds_ranges=round(calibration_seconds, 1),
                seconds_total=round(time.perf_counter() - started, 1),
                ranges={name: list(r) for name, r in ranges.items()},
                sensitivity={name: round(v, 7) for name, v in list(sensitivity.items())[:16]},
                onnxruntime=ort_record, tensorrt_qdq=trt_record, tensorrt_qdq_fp16_cosine=round(mixed_cosine, 6),
                onnxruntime_u8_weights=u8_record,
            )
            manifest.stages = replace(manifest.stages, calibration=record)
            manifest.sha256.update({name: sha256_file(stage / file) for name, file in ARTEFACTS.items()})
            manifest.save(stage)
        return record


class FallbackSearch:
    """The accuracy-aware fallback of one calibration: which layers go back to float in each INT8 model,
    judged by the held-out embedding cosine to the FP32 model and, for the ONNX Runtime models, by the
    accuracy drop on the LFW folds the fallback is steered by (``lfw``; None: the cosine alone)."""

    def __init__(self, request: PackageCalibrator, source: Manifest, fp32_path: Path,
                 ranges: dict[str, tuple[float, float]], heldout: np.ndarray, reference: np.ndarray, order: list[str],
                 log: Callable[[str], None]) -> None:
        self.request, self.fp32_path, self.ranges, self.heldout = request, fp32_path, ranges, heldout
        self.reference, self.order, self.log = reference, order, log
        self.lfw: LfwFoldCheck | None = None
        if request.check_lfw:
            log(f"reading the {FALLBACK_FOLDS_LABEL} faces the fallback is steered by")
            self.lfw = LfwFoldCheck(source)
            self.fp32_lfw = self.lfw.score(fp32_path, request.cache_dir, source.sha256.get("onnx"))

    def closeness(self, writer: Callable[..., None], path: Path) -> Callable[[list[str]], float]:
        """The held-out mean cosine to FP32 of the model ``writer`` makes with the given layers in float."""
        def measure(excluded: list[str]) -> float:
            writer(self.fp32_path, self.ranges, path, excluded)
            embeddings = run_model(onnx.load(str(path)), self.heldout)
            check_not_degenerate(embeddings, str(path))
            return float((embeddings * self.reference).sum(axis=1).mean())
        return measure

    def measured_drop(self, path: Path) -> float:
        """The LFW accuracy drop of the INT8 model at ``path``, in pp."""
        assert self.lfw is not None
        int8 = self.lfw.score(path)
        if int8.impostor_mean > MAX_IMPOSTOR_SIMILARITY:
            raise DegenerateModelError(f"{path}: mean LFW impostor similarity {int8.impostor_mean:.3f} > "
                                       f"{MAX_IMPOSTOR_SIMILARITY}: the INT8 model has collapsed")
        # rounded: one pair of 3,000 is 0.0333 pp, and 3 pairs must compare equal to a 0.10 pp bar
        return round(100 * (self.fp32_lfw.accuracy - int8.accuracy), 4)

    def onnxruntime(self, weights: str, path: Path) -> FallbackRecord:
        """Greedy fallback for the ONNX Runtime model with ``weights`` (a scheme of ort_qdq), written to ``path``."""
        request, write = self.request, partial(write_ort_int8, weights=weights)

        def good_enough(excluded: list[str], cosine: float) -> tuple[bool, float | None]:
            if self.lfw is None:
                return cosine >= request.min_cosine, None
            write(self.fp32_path, self.ranges, path, excluded)
            drop = self.measured_drop(path)
            self.log(f"  {len(excluded)} layers in FP32: drop on {FALLBACK_FOLDS_LABEL} {drop:.3f} pp, held-out "
                     f"cosine {cosine:.5f}")
            return drop <= request.max_drop_pp and cosine >= request.min_cosine, drop

        max_drop = request.max_drop_pp if self.lfw is not None else None
        result = greedy_fallback(self.order, request.fallback_budget, self.closeness(write, path), good_enough,
                                 max_drop=max_drop)
        write(self.fp32_path, self.ranges, path, result.excluded)
        return FallbackRecord(result.excluded, result.met, request.min_cosine, result.steps, max_drop_pp=max_drop,
                              checked_on=f"{FALLBACK_FOLDS_LABEL} ({self.lfw.pairs} pairs)" if self.lfw else None)

    def tensorrt(self, path: Path, fp16_path: Path) -> tuple[FallbackRecord, float]:
        """The TensorRT Q/DQ model (layers back to float until the held-out cosine reaches TRT_MIN_COSINE) and
        the same with its float parts in FP16; the record and the FP16 variant's held-out cosine."""
        self.log(f"layer fallback for the TensorRT Q/DQ model (held-out cosine >= {TRT_MIN_COSINE})")
        result = greedy_fallback(self.order, self.request.fallback_budget, self.closeness(write_trt_int8, path),
                                 lambda excluded, cosine: (cosine >= TRT_MIN_COSINE, None))
        write_trt_int8(self.fp32_path, self.ranges, path, result.excluded)
        mixed = to_fp16(self.fp32_path, [self.heldout], source=path).model
        onnx.save(mixed, str(fp16_path))
        mixed_cosine = float((run_model(mixed, self.heldout) * self.reference).sum(axis=1).mean())
        self.log(f"TensorRT Q/DQ model with FP16 float parts: held-out cosine {mixed_cosine:.5f}")
        return FallbackRecord(result.excluded, result.met, TRT_MIN_COSINE, result.steps), mixed_cosine
