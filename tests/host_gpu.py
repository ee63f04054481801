"""The embedder's GPU path with its two device parts replaced by what runs here: the CUDA kernel's very
arithmetic compiled for the host (tests/cuda_host), writing into host memory, and the TensorRT engine's
bound-input interface (``input_pointer``, ``infer_bound_input``) over a real ONNX Runtime engine.

Everything between them is the runtime's own code: ``FaceEmbedder``'s chunking by the engine's batch, the
mirror images in the same batch, the flip-sum and the normalisation. What this cannot show (the driver
calls, the device memory, TensorRT itself) runs only in the tests marked ``gpu`` and ``tensorrt``.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np

from mfr.runtime.cuda_preprocess import channel_plan, crops_as_frame, face_matrices, frame_geometry, frame_struct
from mfr.runtime.engine import Engine
from mfr.spec import PreprocessSpec

ROOT = Path(__file__).resolve().parents[1]


def compile_host_kernel(directory: Path) -> ctypes.CDLL:
    """tests/cuda_host/warp_normalize_host.cpp built with the host's C++ compiler (no fused multiply-adds
    beyond those the kernel spells out)."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("a C++ compiler (g++) is needed to run the kernel's arithmetic on the host")
    library = directory / "warp_normalize_host.so"
    subprocess.run([compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library),
                    str(ROOT / "tests" / "cuda_host" / "warp_normalize_host.cpp")], check=True)
    lib = ctypes.CDLL(str(library))
    lib.mfr_warp_normalize_host.restype = None
    return lib


def run_host_kernel(lib: ctypes.CDLL, frame: np.ndarray, width: int, height: int, pitch: int, frame_format: str,
                    matrices: np.ndarray, spec: PreprocessSpec, out_ptr: int, mirror: bool,
                    uv_offset: int = 0, out_size: tuple[int, int] | None = None) -> int:
    """One "launch": every item into ``out_ptr`` (float32 N x 3 x H x W, H x W the spec's input size or
    ``out_size``); returns the number of items."""
    plan = channel_plan(spec, frame_format)
    out_height, out_width = out_size or spec.input_size or (0, 0)
    data = frame.ctypes.data
    struct = frame_struct(data, width, height, pitch, frame_format, data + uv_offset if uv_offset else 0,
                          width if uv_offset else 0)
    pointer = ctypes.c_void_p
    matrices = np.ascontiguousarray(matrices, np.float32)
    lib.mfr_warp_normalize_host(ctypes.byref(struct), matrices.ctypes.data_as(pointer), len(matrices),
                                int(mirror), out_height, out_width, plan.source.ctypes.data_as(pointer),
                                plan.gain.ctypes.data_as(pointer), plan.offset.ctypes.data_as(pointer),
                                pointer(out_ptr))
    return len(matrices) * (2 if mirror else 1)


class HostKernelPreprocessor:
    """``CudaPreprocessor``'s interface (``__call__`` for a frame and landmarks, ``crops`` for aligned
    crops) on the host build of the kernel."""

    def __init__(self, lib: ctypes.CDLL, spec: PreprocessSpec, frame_format: str = "BGR") -> None:
        self.lib, self.spec, self.frame_format = lib, spec, frame_format

    def __call__(self, frame: np.ndarray, landmarks, out_ptr: int, mirror: bool = False) -> int:
        width, height = frame_geometry(frame, self.frame_format)
        frame = np.ascontiguousarray(frame)
        return run_host_kernel(self.lib, frame, width, height, width * 3, self.frame_format,
                               face_matrices(landmarks, self.spec), self.spec, out_ptr, mirror)

    def crops(self, crops: np.ndarray, out_ptr: int, mirror: bool = False) -> int:
        tall, matrices = crops_as_frame(crops)
        return run_host_kernel(self.lib, tall, tall.shape[1], tall.shape[0], tall.shape[1] * 3, "BGR", matrices,
                               self.spec, out_ptr, mirror)


class BoundInputEngine:
    """A TensorRT engine's bound-input calls over a real engine: the input binding is a host buffer of the
    profile's maximum batch, ``infer_bound_input(count)`` runs the engine on its first ``count`` items."""

    def __init__(self, engine: Engine, max_batch: int) -> None:
        self.engine = engine
        self.manifest, self.source, self.output_names = engine.manifest, engine.source, engine.output_names
        self.profile = replace(engine.profile, min=1, opt=min(engine.profile.opt, max_batch), max=max_batch)
        self.backend = "host-kernel"
        height, width = engine.manifest.spec.input_size or (0, 0)
        self.binding = np.full((max_batch, 3, height, width), np.nan, np.float32)
        self.input_pointer = self.binding.ctypes.data
        self.items_run: list[int] = []

    def infer_bound_input(self, count: int) -> dict[str, np.ndarray]:
        assert 1 <= count <= self.profile.max
        self.items_run.append(count)
        return {self.output_names[0]: self.engine.raw_embeddings(self.binding[:count].copy())}

    def raw_embeddings(self, inputs: np.ndarray) -> np.ndarray:
        return self.engine.raw_embeddings(inputs)


class DeviceBoundEngine(BoundInputEngine):
    """The same over device memory, for the tests marked ``gpu``: the binding is a ``cudaMalloc`` buffer that
    the real CUDA kernel writes, and ``infer_bound_input`` downloads it on the kernel's stream before the
    ONNX Runtime engine runs (where TensorRT would read it in place). Only TensorRT is replaced."""

    def __init__(self, engine: Engine, max_batch: int, stream: object) -> None:
        from mfr.runtime.cuda_memory import DeviceBuffer

        super().__init__(engine, max_batch)
        self.backend, self.stream = "cuda-kernel", stream
        self.device = DeviceBuffer(self.binding.nbytes)
        self.input_pointer = self.device.ptr

    def infer_bound_input(self, count: int) -> dict[str, np.ndarray]:
        from mfr.runtime.cuda_memory import synchronize

        self.device.download(self.binding[:count], self.stream)
        synchronize(self.stream)
        return super().infer_bound_input(count)

    def close(self) -> None:
        self.device.free()
