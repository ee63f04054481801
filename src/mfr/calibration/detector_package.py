"""``mfr-export calibrate`` for a face detector package: the recogniser's pipeline (one set of ranges; ONNX
Runtime Q/DQ models with int8 and uint8 weights; the TensorRT Q/DQ model; the TensorRT calibration cache;
written atomically), with the accuracy-aware fallback steered by what a detector is for.

The fallback's measure, on held-out frames the ranges never saw: the faces the FP32 model finds (score >=
``MEASURE_SCORE``) that the INT8 model misses at IoU 0.5 (recall drop, pp), and the landmark error of the
faces it finds against FP32's landmarks (NME, % of the inter-ocular distance). Layers are ranked and tried
by how far the raw outputs (scores, box and landmark deltas) move from FP32 (mean cosine), which moves
smoothly with every layer where a recall on a few hundred faces moves in steps. Every INT8 model is
evaluated exactly (``exact_session_options``): the same choices on every CPU.

Why a detector package is first brought to opset 13: per-channel weight scales need QuantizeLinear's
``axis``, which older opsets lack (YuNet ships at opset 11). The conversion is numerically the same model;
the calibrated package's FP32 model is the converted file, its hash recorded.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter

from mfr.atomic import check_output_dir, sha256_file, staged_output_dir
from mfr.calibration.detection_agreement import Agreement
from mfr.calibration.detector_frames import FrameSet, folder_frames, generated_frames, on_canvas, split
from mfr.calibration.fallback import greedy_fallback
from mfr.calibration.ort_qdq import write_ort_int8
from mfr.calibration.package import ARTEFACTS, CACHE, ORT_INT8, ORT_INT8_U8, TRT_INT8
from mfr.calibration.ranges import collect_stats, compute_ranges
from mfr.calibration.sensitivity import layer_sensitivity, run_outputs
from mfr.calibration.trt_qdq import write_trt_int8
from mfr.errors import ManifestError
from mfr.manifest import CalibrationRecord, FallbackRecord, listed_file, load_manifest
from mfr.progress import Progress, no_progress
from mfr.runtime.detection import Face, select_faces
from mfr.runtime.detector_heads import DetectorHead, head_for
from mfr.runtime.package_detector import padding_colour
from mfr.runtime.preprocess import normalize
from mfr.trt_calibration_cache import write_calibration_cache

MIN_QDQ_OPSET = 13
MEASURE_SCORE = 0.5  # the faces the measure compares (both models), and their NMS
MEASURE_NMS = 0.4
DETECTOR_ARTEFACTS = {key: name for key, name in ARTEFACTS.items() if key != "onnx_int8_trt_fp16"}


class DetectionMeasure:
    """The FP32 model's faces on the held-out frames, and how an INT8 model's outputs compare with them."""

    def __init__(self, model: onnx.ModelProto, inputs: np.ndarray, head: DetectorHead, size: tuple[int, int]):
        self.inputs, self.head, self.size = inputs, head, size
        self.reference = run_outputs(model, inputs)
        self.reference_faces = self.faces(self.reference)

    def faces(self, outputs: dict[str, np.ndarray]) -> list[list[Face]]:
        height, width = self.size
        frames = []
        for i in range(len(self.inputs)):
            boxes, scores, landmarks = self.head.decode({k: v[i] for k, v in outputs.items()}, height, width)
            frames.append(select_faces(boxes, scores, landmarks, MEASURE_SCORE, MEASURE_NMS, 1.0))
        return frames

    def cosine(self, outputs: dict[str, np.ndarray]) -> float:
        """Mean over frames and outputs of the cosine between the flattened raw outputs and FP32's."""
        values = []
        for name, reference in self.reference.items():
            a = reference.reshape(len(reference), -1).astype(np.float64)
            b = outputs[name].reshape(len(reference), -1).astype(np.float64)
            values.append((a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12))
        return float(np.mean(values))

    def agreement(self, outputs: dict[str, np.ndarray]) -> Agreement:
        agreement = Agreement()
        for reference, found in zip(self.reference_faces, self.faces(outputs), strict=True):
            agreement.add(reference, found)
        return agreement

    def distance(self, model: onnx.ModelProto) -> float:
        return 1.0 - self.cosine(run_outputs(model, self.inputs))


@dataclass(frozen=True)
class DetectorCalibrator:
    package: Path
    out: Path
    num_frames: int = 96
    heldout_frames: int = 48
    method: str = "percentile"
    percentile: float = 99.999
    calib_dir: Path | None = None
    max_side: int = 640  # frames are fitted to the size the detector runs at (mfr watch --detect-size)
    max_recall_drop_pp: float = 0.5
    max_nme_pct: float = 0.5
    fallback_budget: int = 8
    seed: int = 0
    force: bool = False

    def __call__(self, log: Callable[[str], None] = print, progress: Progress = no_progress) -> CalibrationRecord:
        source = load_manifest(self.package)
        if source.kind != "detection":
            raise ManifestError(f"{self.package}: a detector calibration needs a detection package, this is "
                                f"{source.kind}")
        head = head_for(source.decoder, f"{self.package} (manifest)")
        original = listed_file(self.package, source, "onnx", f"{self.package} lists no FP32 ONNX model "
                               f"(files: {source.files})")
        check_output_dir(Path(self.out), self.force)
        started = time.perf_counter()
        frames = self.frames(log)
        # a folder smaller than asked for: a third of it held out, the rest calibrates
        calib, heldout = split(frames, min(self.heldout_frames, max(1, len(frames.frames) // 3)))
        with tempfile.TemporaryDirectory(prefix="mfr-calibrate-") as scratch:
            model = at_least_opset(onnx.load(str(original)), MIN_QDQ_OPSET)
            fp32_path = Path(scratch) / source.files["onnx"]
            onnx.save(model, str(fp32_path))
            fill = padding_colour(source.spec)
            calib_inputs = normalize(on_canvas(calib.frames, head.pad_multiple, fill)[0], source.spec)
            log(f"collecting activation statistics on {len(calib.frames)} frames of {calib.source} (two passes)")
            ranges = compute_ranges(collect_stats(fp32_path, calib_inputs, batch_size=8), self.method,
                                    self.percentile)
            del calib_inputs
            seconds_ranges = time.perf_counter() - started
            canvas, size = on_canvas(heldout.frames, head.pad_multiple, fill)
            measure = DetectionMeasure(model, normalize(canvas, source.spec), head, size)
            log(f"held out: {len(heldout.frames)} frames, {sum(map(len, measure.reference_faces))} FP32 faces")
            search = DetectorFallback(self, fp32_path, ranges, measure, heldout, log)
            with staged_output_dir(Path(self.out), self.force) as stage:
                for key, name in source.files.items():
                    shutil.copy(fp32_path if key == "onnx" else listed_file(self.package, source, key, ""),
                                stage / name)
                manifest = replace(source, opset=max(source.opset or 0, MIN_QDQ_OPSET))
                manifest.files.update(DETECTOR_ARTEFACTS)
                ort_record = search.run("ONNX Runtime, int8 weights", partial(write_ort_int8, weights="s8"),
                                        stage / ORT_INT8, progress)
                u8_record = search.run("ONNX Runtime, uint8 weights (x86 CPUs without VNNI)",
                                       partial(write_ort_int8, weights="u8"), stage / ORT_INT8_U8, progress)
                trt_record = search.run("TensorRT Q/DQ", write_trt_int8, stage / TRT_INT8, progress)
                write_calibration_cache(ranges, stage / CACHE)
                record = CalibrationRecord(
                    method=self.method, percentile=self.percentile if self.method == "percentile" else None,
                    images=len(calib.frames), masked=0, heldout_images=len(heldout.frames), source=calib.source,
                    seed=self.seed, seconds_ranges=round(seconds_ranges, 1),
                    seconds_total=round(time.perf_counter() - started, 1),
                    ranges={name: list(r) for name, r in ranges.items()},
                    sensitivity={name: round(v, 7) for name, v in list(search.sensitivity.items())[:16]},
                    onnxruntime=ort_record, tensorrt_qdq=trt_record, onnxruntime_u8_weights=u8_record)
                manifest.stages = replace(manifest.stages, calibration=record)
                manifest.sha256["onnx"] = sha256_file(stage / source.files["onnx"])
                manifest.sha256.update({key: sha256_file(stage / name) for key, name in DETECTOR_ARTEFACTS.items()})
                manifest.save(stage)
        return record

    def frames(self, log: Callable[[str], None]) -> FrameSet:
        total = self.num_frames + self.heldout_frames
        if self.calib_dir is not None:
            return folder_frames(self.calib_dir, total, self.max_side, self.seed)
        log(f"generating {total} calibration frames (synthetic clips of their own seeds)")
        return generated_frames(total, self.max_side)


class DetectorFallback:
    """The greedy fallback of each INT8 model of one detector calibration (``calibration.fallback``)."""

    def __init__(self, request: DetectorCalibrator, fp32_path: Path, ranges: dict[str, tuple[float, float]],
                 measure: DetectionMeasure, heldout: FrameSet, log: Callable[[str], None]) -> None:
        self.request, self.fp32_path, self.ranges, self.measure = request, fp32_path, ranges, measure
        self.heldout, self.log = heldout, log
        self._sensitivity: dict[str, float] | None = None

    @property
    def sensitivity(self) -> dict[str, float]:
        return self._sensitivity or {}

    def ranked_layers(self, progress: Progress) -> list[str]:
        """Quantizable layers, most sensitive first (measured once, the first time a model misses the bar)."""
        if self._sensitivity is None:
            self.log("ranking layers by sensitivity (each quantized alone)")
            self._sensitivity = layer_sensitivity(onnx.load(str(self.fp32_path)), self.ranges,
                                                  self.measure.distance, progress)
        return list(self._sensitivity)

    def run(self, label: str, writer: Callable[..., None], path: Path, progress: Progress) -> FallbackRecord:
        request, measure = self.request, self.measure
        found: dict[tuple[str, ...], Agreement] = {}

        def closeness(excluded: list[str]) -> float:
            writer(self.fp32_path, self.ranges, path, excluded)
            outputs = run_outputs(onnx.load(str(path)), measure.inputs)
            found[tuple(excluded)] = measure.agreement(outputs)
            return measure.cosine(outputs)

        def drop(excluded: list[str]) -> tuple[float, float]:
            agreement = found[tuple(excluded)]
            nme = 100 * (agreement.nme or 0.0)
            return round(100 * (1 - agreement.recall), 4), round(nme, 4)

        def good_enough(excluded: list[str], cosine: float) -> tuple[bool, float | None]:
            recall_drop, nme = drop(excluded)
            self.log(f"  {label}: {len(excluded)} layers in float: held-out output cosine {cosine:.5f}, FP32 faces "
                     f"missed {recall_drop:.2f} pp, landmark NME {nme:.3f} %")
            return recall_drop <= request.max_recall_drop_pp and nme <= request.max_nme_pct, recall_drop + nme

        first = closeness([])
        order = [] if good_enough([], first)[0] or not request.fallback_budget else self.ranked_layers(progress)
        result = greedy_fallback(order, request.fallback_budget, lambda excluded: first if not excluded else
                                 closeness(excluded), good_enough)
        writer(self.fp32_path, self.ranges, path, result.excluded)
        steps = []
        for step in result.steps:
            recall_drop, nme = drop(step.fp_layers)
            steps.append(replace(step, lfw_drop_pp=None, recall_drop_pp=recall_drop, landmark_nme_pct=nme))
        return FallbackRecord(result.excluded, result.met, 0.0, steps, max_drop_pp=request.max_recall_drop_pp,
                              checked_on=f"{self.heldout.source} ({len(measure.inputs)} frames, "
                                         f"{sum(map(len, measure.reference_faces))} FP32 faces)",
                              max_nme_pct=request.max_nme_pct)


def at_least_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` converted to ``opset`` when its default-domain opset is older; else as it is."""
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    return model if current >= opset else version_converter.convert_version(model, opset)

