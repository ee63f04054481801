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
from mfr.calibration.sensitivity import layer_sensitivity, run_model
from mfr.calibration.trt_qdq import write_trt_int8
from mfr.errors import ManifestError
from mfr.export.fp16 import to_fp16
from mfr.manifest import CalibrationRecord, FallbackRecord, listed_file, load_manifest
from mfr.progress import Progress, no_progress
from mfr.runtime.detection import FaceDetector
from mfr.trt_calibration_cache import write_calibration_cache

ORT_INT8 = "model.int8.onnx"
ORT_INT8_U8 = "model.int8.u8.onnx"  # uint8 weights on dense layers: for x86 CPUs without VNNI (ort_qdq)
TRT_INT8 = "model.int8.trt.onnx"
TRT_INT8_FP16 = "model.int8.trt.fp16.onnx"  # the same, its float parts in FP16 (mfr.export.fp16)
CACHE = "calibration.cache"
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
        stats = collect_stats(fp32_path, calib.inputs)
        ranges = compute_ranges(stats, self.method, self.percentile)
        calibration_seconds = time.perf_counter() - started
        model = onnx.load(str(fp32_path))
        # the ranking costs one quantize-and-run per layer: only when layers may fall back at all
        sensitivity = layer_sensitivity(model, ranges, heldout.inputs, progress) if self.fallback_budget else {}
        order = list(sensitivity)
        reference = run_model(model, heldout.inputs)
        if self.check_lfw:
            log(f"reading the {FALLBACK_FOLDS_LABEL} faces the fallback is steered by")
            lfw = LfwFoldCheck(source)
            fp32_lfw = lfw.score(fp32_path, self.cache_dir, source.sha256.get("onnx"))

        with staged_output_dir(Path(self.out), self.force) as stage:
            for key, name in source.files.items():  # the FP32 model and what came with it (the FP16 model)
                shutil.copy(listed_file(self.package, source, key, f"{self.package} lists {name}, which is missing"),
                            stage / name)
            manifest = source
            artefacts = {"onnx_int8": ORT_INT8, "onnx_int8_u8": ORT_INT8_U8, "onnx_int8_trt": TRT_INT8,
                         "onnx_int8_trt_fp16": TRT_INT8_FP16,
                         "trt_calibration_cache": CACHE}
            manifest.files.update(artefacts)

            def closeness(writer: Callable[..., None], path: Path) -> Callable[[list[str]], float]:
                def measure(excluded: list[str]) -> float:
                    writer(fp32_path, ranges, path, excluded)
                    embeddings = run_model(onnx.load(str(path)), heldout.inputs)
                    check_not_degenerate(embeddings, str(path))
                    return float((embeddings * reference).sum(axis=1).mean())
                return measure

            def measured_drop(path: Path) -> float:
                """The LFW accuracy drop of the INT8 model at ``path``, in pp."""
                int8 = lfw.score(path)
                if int8.impostor_mean > MAX_IMPOSTOR_SIMILARITY:
                    raise DegenerateModelError(f"{path}: mean LFW impostor similarity {int8.impostor_mean:.3f} > "
                                               f"{MAX_IMPOSTOR_SIMILARITY}: the INT8 model has collapsed")
                # rounded: one pair of 3,000 is 0.0333 pp, and 3 pairs must compare equal to a 0.10 pp bar
                return round(100 * (fp32_lfw.accuracy - int8.accuracy), 4)

            def fallback(weights: str, path: Path) -> FallbackRecord:
                """Greedy fallback for the ONNX Runtime model with ``weights`` (a scheme of ort_qdq)."""
                write = partial(write_ort_int8, weights=weights)

                def good_enough(excluded: list[str], cosine: float) -> tuple[bool, float | None]:
                    if not self.check_lfw:
                        return cosine >= self.min_cosine, None
                    write(fp32_path, ranges, path, excluded)
                    drop = measured_drop(path)
                    log(f"  {len(excluded)} layers in FP32: drop on {FALLBACK_FOLDS_LABEL} {drop:.3f} pp, held-out "
                        f"cosine {cosine:.5f}")
                    return drop <= self.max_drop_pp and cosine >= self.min_cosine, drop

                result = greedy_fallback(order, self.fallback_budget, closeness(write, path), good_enough,
                                         max_drop=self.max_drop_pp if self.check_lfw else None)
                write(fp32_path, ranges, path, result.excluded)
                return FallbackRecord(
                    result.excluded, result.met, self.min_cosine, result.steps,
                    max_drop_pp=self.max_drop_pp if self.check_lfw else None,
                    checked_on=f"{FALLBACK_FOLDS_LABEL} ({lfw.pairs} pairs)" if self.check_lfw else None)

            log("accuracy-aware fallback for the ONNX Runtime model")
            ort_record = fallback("s8", stage / ORT_INT8)
            # x86 CPUs without VNNI saturate int8 weights in matrix products (mfr.runtime.machine.int8_saturates):
            # the model with uint8 weights there, its float layers chosen by its own fallback
            log("accuracy-aware fallback for the ONNX Runtime model with uint8 weights (x86 CPUs without VNNI)")
            u8_record = fallback("u8", stage / ORT_INT8_U8)

            log(f"layer fallback for the TensorRT Q/DQ model (held-out cosine >= {TRT_MIN_COSINE})")
            trt_result = greedy_fallback(order, self.fallback_budget, closeness(write_trt_int8, stage / TRT_INT8),
                                         lambda excluded, cosine: (cosine >= TRT_MIN_COSINE, None))
            write_trt_int8(fp32_path, ranges, stage / TRT_INT8, trt_result.excluded)
            mixed = to_fp16(fp32_path, [heldout.inputs], source=stage / TRT_INT8).model
            onnx.save(mixed, str(stage / TRT_INT8_FP16))
            mixed_cosine = float((run_model(mixed, heldout.inputs) * reference).sum(axis=1).mean())
            log(f"TensorRT Q/DQ model with FP16 float parts: held-out cosine {mixed_cosine:.5f}")
            write_calibration_cache(ranges, stage / CACHE)
            record = CalibrationRecord(
                method=self.method, percentile=self.percentile if self.method == "percentile" else None,
                images=len(calib.paths), masked=calib.masked, heldout_images=len(heldout.paths),
                source=calib.source, seed=self.seed, seconds_ranges=round(calibration_seconds, 1),
                seconds_total=round(time.perf_counter() - started, 1),
                ranges={name: list(r) for name, r in ranges.items()},
                sensitivity={name: round(v, 7) for name, v in list(sensitivity.items())[:16]},
                onnxruntime=ort_record,
                tensorrt_qdq=FallbackRecord(trt_result.excluded, trt_result.met, TRT_MIN_COSINE, trt_result.steps),
                tensorrt_qdq_fp16_cosine=round(mixed_cosine, 6),
                onnxruntime_u8_weights=u8_record,
            )
            manifest.stages = replace(manifest.stages, calibration=record)
            manifest.sha256.update({name: sha256_file(stage / file) for name, file in artefacts.items()})
            manifest.save(stage)
        return record
