"""Device memory and streams through cuda-python, with every CUDA error turned into a clear exception.

cuda-python returns ``(error, value...)`` tuples instead of raising; ``checked`` unpacks them so no
failed call goes unnoticed. Shared by the TensorRT engine and the CUDA preprocessing.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from mfr.errors import EngineError
from mfr.runtime.machine import cuda_runtime


def cudart() -> Any:
    runtime = cuda_runtime()
    if runtime is None:
        raise EngineError("this needs cuda-python: pip install 'mfr[cuda12]' or 'mfr[cuda13]' (the CUDA major of your "
                          "TensorRT and driver)")
    return runtime


def checked(result: Any, call: str) -> Any:
    """The value(s) of a cuda-python call (runtime, driver or NVRTC API), or an EngineError naming the call
    and the error."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:  # cudaSuccess, CUDA_SUCCESS and NVRTC_SUCCESS are all 0
        raise EngineError(f"CUDA error in {call}: {error_text(error)} ({error})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def error_text(error: Any) -> str:
    kind = type(error).__name__
    try:
        if kind == "cudaError_t":
            _, text = cudart().cudaGetErrorString(error)
        elif kind == "CUresult":
            from cuda.bindings import driver

            _, text = driver.cuGetErrorString(error)
        elif kind == "nvrtcResult":
            from cuda.bindings import nvrtc

            _, text = nvrtc.nvrtcGetErrorString(error)
        else:
            return str(error)
    except Exception:  # the message is a courtesy; the error itself is raised by the caller
        return str(error)
    return text.decode() if isinstance(text, bytes) else str(text)


class DeviceBuffer:
    """``nbytes`` of device memory, freed by ``free()``."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(checked(cudart().cudaMalloc(self.nbytes), "cudaMalloc"))

    def upload(self, array: np.ndarray, stream: Any) -> None:
        self.upload_from(array.ctypes.data, array.nbytes, stream)

    def upload_from(self, host_ptr: int, nbytes: int, stream: Any) -> None:
        if nbytes > self.nbytes:
            raise EngineError(f"{nbytes} bytes do not fit a device buffer of {self.nbytes}")
        runtime = cudart()
        checked(runtime.cudaMemcpyAsync(self.ptr, host_ptr, nbytes, runtime.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                        stream), "cudaMemcpyAsync")

    def download(self, array: np.ndarray, stream: Any) -> None:
        runtime = cudart()
        checked(runtime.cudaMemcpyAsync(array.ctypes.data, self.ptr, array.nbytes,
                                        runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")

    def free(self) -> None:
        if self.ptr:
            checked(cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    def __del__(self) -> None:
        release_quietly(self)


class PinnedBuffer:
    """A numpy array in page-locked host memory (what truly asynchronous uploads need), freed by ``free()``."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        count = int(np.prod(shape))
        nbytes = max(count * np.dtype(dtype).itemsize, 1)
        self.ptr = int(checked(cudart().cudaMallocHost(nbytes), "cudaMallocHost"))
        memory = (ctypes.c_byte * nbytes).from_address(self.ptr)
        self.array = np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            checked(cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0

    def __del__(self) -> None:
        release_quietly(self)


def release_quietly(buffer: DeviceBuffer | PinnedBuffer) -> None:
    """Free a buffer that is being garbage-collected: errors there (e.g. at interpreter exit, after the
    driver is gone) cannot be raised to anyone, and the memory goes with the process anyway."""
    try:
        if getattr(buffer, "ptr", 0):
            buffer.free()
    except Exception:  # noqa: S110 - see the docstring
        pass


def create_stream() -> Any:
    return checked(cudart().cudaStreamCreate(), "cudaStreamCreate")


def synchronize(stream: Any) -> None:
    checked(cudart().cudaStreamSynchronize(stream), "cudaStreamSynchronize")


def destroy_stream(stream: Any) -> None:
    checked(cudart().cudaStreamDestroy(stream), "cudaStreamDestroy")
