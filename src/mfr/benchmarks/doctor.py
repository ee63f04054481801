"""``mfr doctor``: what this machine has, and proof that each engine path works on it.

One command for a GPU server or a Jetson: the versions of everything the pipeline uses and what is
missing (with the install line); then FP32/FP16/INT8 engines of the recognition model and FP32/FP16
engines of the detector, built with every backend this machine has (each build already compares its
engine with ONNX Runtime on real faces or photos, ``mfr.export.engine_package``), each timed; and the
CUDA preprocessing kernel against the CPU path on real LFW photos. What cannot run here is listed as
"not checked" with the reason, never skipped silently; a check that runs and fails makes the command
exit non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.errors import MfrError
from mfr.export.engine_builders import ENGINE_BUILDERS
from mfr.export.engine_package import EngineBuilder
from mfr.manifest import load_manifest
from mfr.runtime.engine_load import open_engine
from mfr.runtime.machine import fingerprint, gpu_info, package_version

OK, FAILED, NOT_CHECKED = "ok", "failed", "not checked"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK | FAILED | NOT_CHECKED
    detail: str  # figures, the error, or why it could not run
    seconds: float | None = None  # the build or the check itself
    latency_ms: float | None = None  # one batch-1 call, median


@dataclass
class DoctorReport:
    versions: dict[str, str | None]
    missing: list[str]
    checks: list[Check]
    machine: dict[str, Any] = field(default_factory=fingerprint)

    @property
    def failed(self) -> bool:
        return any(check.status == FAILED for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nvrtc_version() -> str | None:
    try:
        from mfr.runtime.cuda_kernels import nvrtc_version as version

        return version()
    except MfrError:
        return None


def versions(machine: dict[str, Any]) -> dict[str, str | None]:
    """The versions of what the pipeline uses: those ``fingerprint`` records, plus OpenCV, NVRTC, torch."""
    import cv2

    recorded = ("python", "mfr", "numpy", "onnxruntime", "tensorrt", "cuda_python")
    return {**{name: machine[name] for name in recorded},
            "onnxruntime_providers": ", ".join(machine["onnxruntime_providers"]), "opencv": cv2.__version__,
            "nvrtc": nvrtc_version(), "torch": package_version("torch")}


def missing_pieces(found: dict[str, str | None], has_gpu: bool) -> list[str]:
    """What a GPU deployment lacks here, each with the line that installs it."""
    hints = []
    if found["cuda_python"] is None:
        hints.append("cuda-python: pip install 'mfr[cuda12]' or 'mfr[cuda13]' (the CUDA major of your driver and "
                     "TensorRT; on JetPack 6: pip install 'cuda-python==12.6.*')")
    elif not has_gpu:
        hints.append("an NVIDIA GPU answering through cuda-python (driver, or no GPU on this machine)")
    if found["tensorrt"] is None:
        hints.append("TensorRT: pip install 'mfr[trt-cu12]' or 'mfr[trt-cu13]' (JetPack: it comes with JetPack, "
                     "python3-libnvinfer)")
    if found["nvrtc"] is None:
        hints.append("NVRTC, for the CUDA preprocessing: pip install 'mfr[cuda12]' or 'mfr[cuda13]' (JetPack: "
                     "part of its CUDA toolkit)")
    return hints


def median_latency_ms(directory: Path, calls: int = 20) -> float:
    """Median of ``calls`` batch-1 calls of the engine, after two untimed ones."""
    with open_engine(directory) as engine:
        size = engine.input.fixed_hw() or (480, 640)  # a detector: a VGA frame
        batch = np.random.default_rng(0).standard_normal((1, int(engine.input.shape[1]), *size), dtype=np.float32)
        times = []
        for index in range(calls + 2):
            started = time.perf_counter()
            engine.infer(batch)
            if index >= 2:
                times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 3)


def engine_check(package: Path, backend: str, precision: str, out: Path) -> Check:
    """Build one engine (which verifies it on real data), then time it."""
    name = f"{load_manifest(package).model} {precision} {backend}"
    started = time.perf_counter()
    try:
        manifest = EngineBuilder(package=package, out=out, precision=precision, backend=backend,
                                 force=True)(log=lambda _: None)
    except MfrError as exc:
        return Check(name, FAILED, str(exc), round(time.perf_counter() - started, 1))
    seconds = round(time.perf_counter() - started, 1)
    parity = manifest.stages.engine_parity
    detail = "built" if parity is None else parity.checked + (
        "" if parity.min_cosine is None else f": min cosine {parity.min_cosine:.5f}") + (
        "" if parity is None or parity.fp32_mean_cosine is None else
        f"; vs the FP32 model on this CPU: mean cosine {parity.fp32_mean_cosine:.5f}")
    return Check(name, OK, detail, seconds, median_latency_ms(out))


def engine_plan(package: Path | None, kind: str) -> list[tuple[str, str, str | None]]:
    """(backend, precision, reason it cannot run or None) for every engine worth building from ``package``:
    every registered builder at each precision it builds (a detector: not INT8)."""
    if package is None:
        return []
    manifest = load_manifest(package)
    plan: list[tuple[str, str, str | None]] = []
    for backend, entry in ENGINE_BUILDERS.items():
        for precision in entry.precisions:
            if kind == "detection" and precision == "int8":
                continue  # not a combination mfr builds
            reason = entry.unavailable()
            if reason is None:
                key, _ = entry.source_keys(EngineBuilder(package=package, out=package, precision=precision,
                                                         backend=backend))
                if key not in manifest.files:
                    reason = (f"{package} is not calibrated (mfr-export calibrate)" if precision == "int8" else
                              f"{package} lacks the {key} file a {precision} {backend} engine is built from")
            plan.append((backend, precision, reason))
    return plan


def kernel_check(spec: Any, has_gpu: bool, nvrtc: str | None) -> Check:
    """The CUDA preprocessing vs the CPU path on real LFW photos (their faces at the aligned position)."""
    name = "CUDA preprocessing kernel vs CPU"
    if not has_gpu or nvrtc is None:
        return Check(name, NOT_CHECKED, "no NVIDIA GPU here" if not has_gpu else "no NVRTC here")
    from mfr.data.lfw import sample_images
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.cuda_preprocess import CudaPreprocessor
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import align_faces, normalize

    started = time.perf_counter()
    try:
        preprocessor = CudaPreprocessor(spec, max_faces=8)
        worst = 0.0
        for path in sample_images(4):
            frame = read_image_bgr(path)
            landmarks = [aligned_crop_landmarks(*frame.shape[:2])] * 4
            gpu = preprocessor.to_host(frame, landmarks)
            cpu = normalize(align_faces(frame, landmarks, spec), spec)
            worst = max(worst, float(np.abs(gpu.astype(np.float32) - cpu).max()))
    except MfrError as exc:
        return Check(name, FAILED, str(exc), round(time.perf_counter() - started, 2))
    status = OK if worst <= 0.02 else FAILED  # one grey level (1/128 after normalisation), with rounding margin
    return Check(name, status, f"max abs difference {worst:.5f} on 4 LFW photos x 4 faces (bar 0.02)",
                 round(time.perf_counter() - started, 2))


def run_doctor(package: Path | None, detector_package: Path | None, work: Path,
               log: Callable[[str], None] = print) -> DoctorReport:
    machine = fingerprint()
    found = versions(machine)
    gpu = gpu_info()
    checks: list[Check] = []
    for source, kind in ((package, "recognition"), (detector_package, "detection")):
        if source is None:
            checks.append(Check(f"{kind} engines", NOT_CHECKED, f"no {kind} package given (--package / "
                                                                f"--detector-package, from mfr-export onnx)"))
        for backend, precision, reason in engine_plan(source, kind):
            assert source is not None
            if reason is not None:
                checks.append(Check(f"{load_manifest(source).model} {precision} {backend}", NOT_CHECKED, reason))
                continue
            log(f"building {precision} {backend} from {source}")
            checks.append(engine_check(source, backend, precision, work / f"{kind}-{backend}-{precision}"))
    spec = load_manifest(package).spec if package is not None else None
    if spec is None:
        checks.append(Check("CUDA preprocessing kernel vs CPU", NOT_CHECKED, "no recognition package given"))
    else:
        checks.append(kernel_check(spec, gpu is not None, found["nvrtc"]))
    return DoctorReport(found, missing_pieces(found, gpu is not None), checks, machine)


def markdown_table(report: DoctorReport) -> str:
    lines = ["| component | version |", "|---|---|"]
    lines += [f"| {name} | {value or 'absent'} |" for name, value in report.versions.items()]
    gpu = report.machine.get("gpu")
    gpu_line = f"{gpu['name']} (compute capability {gpu['compute_capability']})" if gpu else "none"
    lines += [f"| GPU | {gpu_line} |", f"| CPU | {report.machine['cpu']} ({report.machine['instruction_set']}) |"]
    lines += ["", "| check | result | detail | seconds | batch-1 ms |", "|---|---|---|---:|---:|"]
    for check in report.checks:
        seconds = "" if check.seconds is None else f"{check.seconds:.1f}"
        latency = "" if check.latency_ms is None else f"{check.latency_ms:.2f}"
        lines.append(f"| {check.name} | {check.status} | {check.detail} | {seconds} | {latency} |")
    if report.missing:
        lines += ["", "Missing for the GPU path:"] + [f"- {hint}" for hint in report.missing]
    return "\n".join(lines)
