"""Compile the CUDA preprocessing kernel with NVRTC and load it through the CUDA driver API (cuda-python).

NVRTC compiles without a GPU, so CI builds PTX for every architecture we target (compute_75 Turing,
compute_87 Jetson Orin, compute_90 Hopper). On a device the kernel is compiled once per GPU
architecture to a cubin for that exact ``sm_XY`` and cached on disk under the cache directory, keyed by
the source's sha256, the NVRTC version and the architecture, so later runs skip the compiler (and a new
NVRTC, whose code may differ, compiles afresh).

A machine where cuda-python cannot find the NVRTC library gets an ``EngineError`` saying so (cuda-python
raises a ``RuntimeError`` subclass at the first NVRTC call), which the callers turn into the CPU path.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from mfr.atomic import write_bytes_atomic
from mfr.cache import default_cache_dir
from mfr.errors import EngineError
from mfr.runtime.cuda_memory import checked

KERNEL = "mfr_warp_normalize"
SOURCE = Path(__file__).with_name("cuda") / "warp_normalize.cu"
CI_ARCHITECTURES = ("compute_75", "compute_87", "compute_90")


NVRTC_HINT = ("pip install 'mfr[cuda12]' (CUDA 12) or 'mfr[cuda13]' (CUDA 13), the CUDA major of the TensorRT in "
              "use; on JetPack, NVRTC comes with its CUDA toolkit")


def nvrtc_module() -> Any:
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        raise EngineError(f"compiling the CUDA kernel needs cuda-python and NVRTC: {NVRTC_HINT}") from None
    return nvrtc


def nvrtc_call(function: Any, *args: Any) -> Any:
    """One NVRTC call, with cuda-python's missing-library error (a RuntimeError) as an EngineError."""
    try:
        return function(*args)
    except RuntimeError as exc:
        raise EngineError(f"NVRTC is not usable here ({exc}); {NVRTC_HINT}") from None


def nvrtc_version() -> str:
    """"13.5": the NVRTC cuda-python loads (a compiled kernel is only reused from the same NVRTC)."""
    nvrtc = nvrtc_module()
    major, minor = checked(nvrtc_call(nvrtc.nvrtcVersion), "nvrtcVersion")
    return f"{major}.{minor}"


def driver_module() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError:
        raise EngineError(f"GPU preprocessing needs cuda-python: {NVRTC_HINT}") from None
    return driver


def compile_source(source: str, architecture: str, name: str = "warp_normalize.cu") -> bytes:
    """PTX (``compute_XY``) or a cubin (``sm_XY``) of ``source``; compiler errors carry NVRTC's log."""
    nvrtc = nvrtc_module()
    program = checked(nvrtc_call(nvrtc.nvrtcCreateProgram, source.encode(), name.encode(), 0, [], []),
                      "nvrtcCreateProgram")
    try:
        options = [f"--gpu-architecture={architecture}".encode(), b"--std=c++17", b"-default-device"]
        result = nvrtc.nvrtcCompileProgram(program, len(options), options)
        if int(result[0]) != 0:
            size = checked(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
            log = b" " * size
            checked(nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            raise EngineError(f"{name}: NVRTC could not compile it for {architecture}:\n"
                              f"{log.rstrip(bytes(1)).decode(errors='replace').strip()}")
        cubin = architecture.startswith("sm_")
        size_call, get_call = ((nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN) if cubin
                               else (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX))
        size = checked(size_call(program), "nvrtcGetSize")
        code = b" " * size
        checked(get_call(program, code), "nvrtcGet")
        return code
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def cached_binary(architecture: str, cache_dir: Path | None = None) -> bytes:
    """The kernel for ``architecture``, from the disk cache or compiled (and then cached, atomically)."""
    source = SOURCE.read_text()
    return cached_path(source, architecture, cache_dir).read_bytes()


def cached_path(source: str, architecture: str, cache_dir: Path | None = None) -> Path:
    """The cache file of ``source`` compiled for ``architecture`` by this NVRTC, compiled first if absent."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    directory = Path(cache_dir or default_cache_dir()) / "cuda-kernels"
    suffix = "cubin" if architecture.startswith("sm_") else "ptx"
    path = directory / f"warp_normalize-{digest}-nvrtc{nvrtc_version()}-{architecture}.{suffix}"
    if not path.is_file():
        write_bytes_atomic(path, compile_source(source, architecture))
    return path


@cache
def load_function(device: int = 0) -> Any:
    """The kernel as a CUfunction in the device's primary context (the one the CUDA runtime and TensorRT
    use), compiled for this GPU's architecture. Loaded once per process."""
    driver = driver_module()
    try:
        checked(driver.cuInit(0), "cuInit")
    except EngineError:
        raise
    except Exception as exc:  # cuda-python raises when the driver library is missing
        raise EngineError(f"no usable NVIDIA driver for GPU preprocessing ({exc})") from None
    handle = checked(driver.cuDeviceGet(device), "cuDeviceGet")
    context = checked(driver.cuDevicePrimaryCtxRetain(handle), "cuDevicePrimaryCtxRetain")
    checked(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    attribute = driver.CUdevice_attribute
    major = checked(driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle),
                    "cuDeviceGetAttribute")
    minor = checked(driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle),
                    "cuDeviceGetAttribute")
    module = checked(driver.cuModuleLoadData(cached_binary(f"sm_{major}{minor}")), "cuModuleLoadData")
    return checked(driver.cuModuleGetFunction(module, KERNEL.encode()), "cuModuleGetFunction")
