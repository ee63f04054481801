"""Preprocessing speed: the CPU path (OpenCV warpAffine per face + normalize) against the CUDA kernel,
interleaved in blocks per batch size like ``mfr bench latency``.

A GPU call uploads the frame and the matrices and runs the kernel into a device buffer, then
synchronises (so the time is the whole job, not just the enqueue); a CPU call produces the same
float32 batch in host memory. Effective bandwidth = (frame bytes uploaded + output bytes written) /
time; on a GPU also as a share of the device's peak memory bandwidth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mfr.benchmarks.timing import interleaved_times
from mfr.runtime.machine import cpu_label, fingerprint
from mfr.runtime.preprocess import align_faces, normalize
from mfr.spec import PreprocessSpec


@dataclass(frozen=True)
class PreprocessResult:
    path: str  # "cpu" | "gpu"
    batch: int
    p50_ms: float
    faces_per_s: float
    bandwidth_gb_s: float
    peak_share: float | None  # of the GPU's peak memory bandwidth


@dataclass
class PreprocessReport:
    frame: str
    frame_shape: list[int]
    results: list[PreprocessResult]
    rounds: int
    gpu_missing: str | None = None
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessReport:
        """The report ``to_dict`` wrote."""
        return cls(data["frame"], data["frame_shape"], [PreprocessResult(**r) for r in data["results"]],
                   data["rounds"], data["gpu_missing"], data["machine"])


def gpu_peak_bandwidth_gb_s(device: int = 0) -> float | None:
    """Peak DRAM bandwidth: memory clock x bus width x 2 (DDR), from device attributes.

    Read with ``cudaDeviceGetAttribute``: the ``memoryClockRate`` field of ``cudaDeviceProp`` is gone from
    cuda-bindings 13 (CUDA 13 removed it), the attributes exist in 12 and 13. None without a GPU."""
    from mfr.runtime.machine import cuda_runtime

    cudart = cuda_runtime()
    if cudart is None:
        return None
    attribute = cudart.cudaDeviceAttr
    try:
        error, clock_khz = cudart.cudaDeviceGetAttribute(attribute.cudaDevAttrMemoryClockRate, device)
        error_width, bus_bits = cudart.cudaDeviceGetAttribute(attribute.cudaDevAttrGlobalMemoryBusWidth, device)
    except RuntimeError:  # cuda-python without a driver library
        return None
    if int(error) != 0 or int(error_width) != 0 or not clock_khz:
        return None
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9


def measure_preprocess(frame: np.ndarray, landmarks: list[np.ndarray], spec: PreprocessSpec, batches: list[int],
                       gpu: Any | None, rounds: int = 30, block: int = 10, warmup: int = 2) -> list[PreprocessResult]:
    height, width = spec.input_size or (0, 0)
    peak = gpu_peak_bandwidth_gb_s() if gpu is not None else None
    results = []
    for batch in batches:
        faces = [landmarks[i % len(landmarks)] for i in range(batch)]

        def run_cpu(f: list[np.ndarray] = faces) -> Any:
            return normalize(align_faces(frame, f, spec), spec)

        jobs: dict[str, Callable[[], Any]] = {"cpu": run_cpu}
        if gpu is not None:
            from mfr.runtime.cuda_memory import DeviceBuffer

            out = DeviceBuffer(gpu.output_bytes(batch))

            def run_gpu(f: list[np.ndarray] = faces, target: Any = out) -> None:
                gpu(frame, f, target.ptr)
                gpu.synchronize()

            jobs["gpu"] = run_gpu
        times = interleaved_times(jobs, rounds, block, warmup)
        moved = frame.nbytes + batch * 3 * height * width * 4
        for name in jobs:
            p50 = float(np.median(times[name]))
            bandwidth = moved / p50 / 1e9
            results.append(PreprocessResult(name, batch, round(1000 * p50, 4), round(batch / p50, 1),
                                            round(bandwidth, 3),
                                            None if name == "cpu" or peak is None else round(bandwidth / peak, 4)))
    return results


def markdown_table(report: PreprocessReport) -> str:
    lines = ["| path | batch | p50 ms | faces/s | effective GB/s | share of GPU peak | GPU / CPU |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    cpu = {r.batch: r for r in report.results if r.path == "cpu"}
    for r in report.results:
        ratio = f"{r.faces_per_s / cpu[r.batch].faces_per_s:.1f}x" if r.path == "gpu" else ""
        share = "" if r.peak_share is None else f"{100 * r.peak_share:.1f} %"
        lines.append(f"| {r.path} | {r.batch} | {r.p50_ms:.3f} | {r.faces_per_s:.0f} | {r.bandwidth_gb_s:.2f} | "
                     f"{share} | {ratio} |")
    gpu = report.machine.get("gpu")
    lines += ["", f"frame {report.frame} {report.frame_shape}; {report.rounds} timed calls per path and batch; "
                  f"CPU {cpu_label(report.machine)}"
                  + (f"; GPU {gpu['name']}" if gpu else f"; no GPU measured ({report.gpu_missing})")]
    return "\n".join(lines)
