"""What this machine offers to run engines on: backend versions, GPU, CPU (torch-free).

The same facts are written into an engine's manifest at build time and compared at load time, and
``mfr bench latency`` stores them beside every figure, so each number says where it was measured.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7"
    memory_gib: float


def tensorrt_version() -> str | None:
    """The importable TensorRT's version, or None.

    A real TensorRT has ``__version__``; ``tensorrt-stubs`` alone (installed for type-checking) leaves a
    ``tensorrt`` folder of .pyi files that Python imports as an empty namespace package: that is absent.
    """
    try:
        import tensorrt as trt
    except ImportError:
        return None
    version = getattr(trt, "__version__", None)
    return None if version is None else str(version)


def cuda_runtime() -> Any | None:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6), or None."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            return None
    return runtime


def gpu_info(device: int = 0) -> GpuInfo | None:
    """The GPU's name and compute capability through cuda-python, or None without GPU/driver/cuda-python."""
    cudart = cuda_runtime()
    if cudart is None:
        return None
    try:
        error, count = cudart.cudaGetDeviceCount()
        if error != cudart.cudaError_t.cudaSuccess or count <= device:
            return None
        error, props = cudart.cudaGetDeviceProperties(device)
    except Exception:  # cuda-python raises when it cannot even load the driver library
        return None
    if error != cudart.cudaError_t.cudaSuccess:
        return None
    name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name, f"{props.major}.{props.minor}", round(props.totalGlobalMem / 2**30, 1))


@cache
def cpu_name() -> str:
    """The CPU model name (/proc/cpuinfo on Linux, else what platform reports)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# CPU features that decide how fast (and, without VNNI, how exactly) ONNX Runtime runs INT8, best first.
INT8_FEATURES = (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx512bw", "AVX-512 without VNNI"),
                 ("avx2", "AVX2 without VNNI"), ("asimddp", "Arm dot product"), ("asimd", "Arm NEON"))


def instruction_set(cpuinfo: str | None = None) -> str:
    """The CPU's best INT8 instruction set, from /proc/cpuinfo's flags (``cpuinfo`` to read another text).

    Every CPU figure is reported with it: ONNX Runtime's u8s8 kernels on x86 without VNNI sum pairs of
    products in saturating 16-bit lanes, so INT8 accuracy and speed differ between such CPUs."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return f"unknown ({platform.machine()})"
    flags = {flag for line in cpuinfo.splitlines() if line.startswith(("flags", "Features"))
             for flag in line.split(":", 1)[1].split()}
    return next((name for flag, name in INT8_FEATURES if flag in flags), f"unknown ({platform.machine()})")


SATURATING = ("AVX-512 without VNNI", "AVX2 without VNNI")


def int8_saturates(instruction_set_name: str) -> bool:
    """True on x86 CPUs without VNNI, where ONNX Runtime's u8s8 kernels add pairs of u8 x s8 products in
    saturating 16-bit lanes (VPMADDUBSW): 255 x 127 x 2 overflows. There, INT8 uses uint8 weights in its
    matrix products, whose kernels add in 32 bits (see ``mfr.calibration.ort_qdq``)."""
    return instruction_set_name in SATURATING


def int8_weight_scheme(instruction_set_name: str) -> str:
    """The ONNX Runtime INT8 weight scheme for a CPU: "u8" where int8 weights saturate, else "s8"."""
    return "u8" if int8_saturates(instruction_set_name) else "s8"


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_label(machine: dict[str, Any]) -> str:
    """'<CPU> (<n> cores, <instruction set>)' from a ``fingerprint``, for the line under a figure."""
    return f"{machine['cpu']} ({machine['cpu_count']} cores, {machine['instruction_set']})"


def fingerprint() -> dict[str, Any]:
    """Hardware and software this process runs on, for benchmark reports."""
    import onnxruntime

    gpu = gpu_info()
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "instruction_set": instruction_set(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "tensorrt": tensorrt_version(),
        "cuda_python": package_version("cuda-python") or package_version("cuda-bindings"),
        "gpu": None if gpu is None else asdict(gpu),
        "mfr": package_version("mfr"),
    }
