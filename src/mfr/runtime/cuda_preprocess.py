"""GPU preprocessing: one kernel launch from a camera frame to the engine's input (torch-free).

``runtime/cuda/warp_normalize.cu`` warps every face of a frame into the spec's crop (bilinear, black
border, exactly as OpenCV's warpAffine), reorders colours and normalises, writing N x 3 x H x W
float32/float16 to a device pointer: the TensorRT engine's input binding; with ``mirror`` it writes each
crop's mirror image too (2N items: the flip-sum of the embedding contract in one engine call). The host
side here:

- ``face_matrices``: crop->frame affine matrices from the 5 landmarks, by the same
  ``estimate_similarities`` the CPU path uses (then inverted as OpenCV does inside warpAffine), every face
  of the call at once;
- ``channel_plan``: which frame channel feeds each model channel, and the spec's gain/offset;
- ``crops_as_frame``: crops already aligned on the CPU, laid out so the same kernel normalises them exactly;
- ``scale_matrix``: a whole frame resized for a detector, by the same kernel (``CudaPreprocessor.resized``);
- ``CudaPreprocessor``: pinned host buffers, asynchronous uploads on the engine's stream, device
  buffers reused across calls (grown only for a larger frame), no synchronisation in ``__call__``.

Executed only where a GPU exists (tests marked ``gpu``); without one, CI compiles the kernel with NVRTC
and runs its per-pixel arithmetic, compiled for the host, against OpenCV.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfr.errors import EngineError
from mfr.runtime.align import estimate_similarities, invert_affine_many
from mfr.runtime.cuda_memory import DeviceBuffer, PinnedBuffer, checked, create_stream, synchronize
from mfr.spec import PreprocessSpec

FORMATS = {"BGR": 0, "RGB": 1, "NV12": 2}
FRAME_CHANNELS = {"BGR": "BGR", "RGB": "RGB", "NV12": "BGR"}  # NV12 is converted to B, G, R like OpenCV
BLOCK = (16, 16, 1)


class MfrFrame(ctypes.Structure):
    """Mirror of ``struct MfrFrame`` in warp_normalize.cu (passed by value to the kernel)."""

    _fields_ = [("data", ctypes.c_void_p), ("uv", ctypes.c_void_p), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("pitch", ctypes.c_int), ("uv_pitch", ctypes.c_int),
                ("format", ctypes.c_int)]


class MfrChannels(ctypes.Structure):
    _fields_ = [("source", ctypes.c_int * 3), ("gain", ctypes.c_float * 3), ("offset", ctypes.c_float * 3)]


@dataclass(frozen=True)
class ChannelPlan:
    source: np.ndarray  # (3,) int32: model channel c takes frame channel source[c]
    gain: np.ndarray  # (3,) float32
    offset: np.ndarray  # (3,) float32

    def as_struct(self) -> MfrChannels:
        return MfrChannels((ctypes.c_int * 3)(*self.source.tolist()), (ctypes.c_float * 3)(*self.gain.tolist()),
                           (ctypes.c_float * 3)(*self.offset.tolist()))


def channel_plan(spec: PreprocessSpec, frame_format: str) -> ChannelPlan:
    """The same gain and offset as ``normalize`` (float32, computed the same way), per model channel."""
    if frame_format not in FORMATS:
        raise EngineError(f"unknown frame format {frame_format!r}; choose from {', '.join(FORMATS)}")
    frame = FRAME_CHANNELS[frame_format]
    source = np.array([frame.index(c) for c in spec.color_order], np.int32)
    std = np.asarray(spec.std, np.float32)
    gain = np.float32(spec.scale) / std
    offset = -np.asarray(spec.mean, np.float32) / std
    return ChannelPlan(source, gain.astype(np.float32), offset.astype(np.float32))


def face_matrices(landmarks: Sequence[np.ndarray] | np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """(N, 6) float32 crop->frame matrices: the inverse of what ``warp_face`` hands to OpenCV, inverted as
    OpenCV's own routine does and rounded to float32 as OpenCV's warpAffine does."""
    return invert_affine_many(estimate_similarities(landmarks, spec)).astype(np.float32)


def engine_preprocessor(engine: Any, max_items: int, frame_format: str = "BGR",
                        log: Callable[[str], None] = lambda _: None) -> CudaPreprocessor | None:
    """The CUDA preprocessing that writes into ``engine``'s input when the engine runs on a GPU (TensorRT),
    for up to ``max_items`` items a call, in the engine's stream and input dtype; else None: the CPU path (the
    reason logged when a GPU engine cannot have it)."""
    if engine.backend != "tensorrt":
        return None
    try:
        return CudaPreprocessor(engine.manifest.spec, max_items, frame_format, stream=getattr(engine, "stream", None),
                                half_output=getattr(engine, "input_dtype", np.float32) == np.float16)
    except EngineError as exc:
        log(f"GPU preprocessing unavailable ({exc}); using the CPU path")
        return None


def scale_matrix(factor: float) -> np.ndarray:
    """(1, 6) float32 output->frame matrix of a whole frame scaled by ``factor`` with pixel centres aligned, as
    ``cv2.resize`` maps them (source = (x + 0.5) / factor - 0.5): on the kernel's bilinear warp, a 2x
    reduction averages each 2x2 block, as ``INTER_AREA`` does (the detectors' CPU path for 1280x720 at 640)."""
    inverse = 1.0 / factor
    shift = 0.5 * inverse - 0.5
    return np.array([[inverse, 0.0, shift, 0.0, inverse, shift]], np.float32)


def crops_as_frame(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops (N, H, W, 3) as one (N * H, W, 3) frame, and the crop->frame matrices that cut them out
    again: pure translations by whole rows, which sample whole pixels (interpolation weights 0), so the
    kernel's "warp" copies each crop exactly."""
    count, height, width = crops.shape[:3]
    matrices = np.zeros((count, 6), np.float32)
    matrices[:, 0] = matrices[:, 4] = 1.0
    matrices[:, 5] = np.arange(count, dtype=np.float32) * height
    return np.ascontiguousarray(crops).reshape(count * height, width, 3), matrices


def frame_struct(data_ptr: int, width: int, height: int, pitch: int, frame_format: str, uv_ptr: int = 0,
                 uv_pitch: int = 0) -> MfrFrame:
    return MfrFrame(data_ptr, uv_ptr or None, width, height, pitch, uv_pitch, FORMATS[frame_format])


def frame_geometry(frame: np.ndarray, frame_format: str) -> tuple[int, int]:
    """(width, height) of a host frame: H x W x 3 for BGR/RGB, (H * 3 / 2) x W for NV12."""
    if frame.dtype != np.uint8:
        raise EngineError(f"frames must be uint8, got {frame.dtype}")
    if frame_format == "NV12":
        if frame.ndim != 2 or frame.shape[0] % 3 or frame.shape[1] % 2:
            raise EngineError(f"an NV12 frame is a (H * 3 / 2, W) uint8 array with even H and W, got {frame.shape}")
        return frame.shape[1], frame.shape[0] * 2 // 3
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise EngineError(f"a {frame_format} frame is an (H, W, 3) uint8 array, got {frame.shape}")
    return frame.shape[1], frame.shape[0]


class CudaPreprocessor:
    """``__call__(frame, landmarks, out_ptr)``: all faces of a host frame into a device buffer, asynchronously.

    Sized once for ``max_faces``; the frame buffers grow when a larger frame arrives. Everything runs
    on ``stream`` (the engine's), so the engine's ``execute_async_v3`` on the same stream sees the input
    without a synchronisation here. The pinned staging buffers are reused, so the next call must come
    after the stream has passed this call's uploads: the engine's ``infer_bound_input`` synchronises when it
    downloads its outputs, which is how ``FaceEmbedder.embed_frame_faces`` uses it.
    """

    def __init__(self, spec: PreprocessSpec, max_faces: int, frame_format: str = "BGR", stream: Any = None,
                 half_output: bool = False) -> None:
        from mfr.runtime.cuda_kernels import driver_module, load_function

        self.spec, self.max_faces, self.frame_format, self.half_output = spec, max_faces, frame_format, half_output
        self.plan = channel_plan(spec, frame_format)
        self.crop_plan = channel_plan(spec, "BGR")  # aligned crops are BGR, whatever the frames are
        self.driver = driver_module()
        self.function = load_function()  # first: it makes the primary context current for the calls below
        self.stream = stream if stream is not None else create_stream()
        self._matrices_host = PinnedBuffer((max_faces, 6), np.float32)
        self._matrices_device = DeviceBuffer(max_faces * 6 * 4)
        self._frame_host: PinnedBuffer | None = None
        self._frame_device: DeviceBuffer | None = None

    def output_bytes(self, items: int) -> int:
        height, width = self.spec.input_size or (0, 0)
        return items * 3 * height * width * (2 if self.half_output else 4)

    def __call__(self, frame: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray, out_ptr: int,
                 mirror: bool = False) -> int:
        """Enqueue the upload and the kernel for every face of ``frame``; returns the number of items written
        to ``out_ptr``: the faces, followed with ``mirror`` by their mirror images (twice as many)."""
        if len(landmarks) == 0:
            return 0
        width, height = frame_geometry(frame, self.frame_format)
        return self._run(frame, width, height, self.frame_format, self.plan, face_matrices(landmarks, self.spec),
                         out_ptr, mirror)

    def resized(self, frame: np.ndarray, factor: float, out_height: int, out_width: int, out_ptr: int) -> int:
        """A whole frame scaled by ``factor`` into an ``out_height`` x ``out_width`` input (a detector's:
        ``scale_matrix``; beyond the scaled frame, the padding, black), normalised; returns 1 (the item)."""
        width, height = frame_geometry(frame, self.frame_format)
        return self._run(frame, width, height, self.frame_format, self.plan, scale_matrix(factor), out_ptr, False,
                         (out_height, out_width))

    def crops(self, crops: np.ndarray, out_ptr: int, mirror: bool = False) -> int:
        """Aligned uint8 BGR crops (N, H, W, 3) into ``out_ptr``, normalised (and with ``mirror`` followed by
        their mirror images), like ``__call__``. The crops go up as one tall frame and each is "warped" by a
        pure translation, which samples whole pixels: the result is the CPU path's ``normalize`` exactly. This
        is how faces aligned once on the CPU (the camera loop's quality gate needs the crop) are not aligned
        again on the GPU."""
        if len(crops) == 0:
            return 0
        if crops.shape[1:3] != tuple(self.spec.input_size or ()):
            raise EngineError(f"crops of {crops.shape[1]}x{crops.shape[2]} do not fit the spec's input "
                              f"{self.spec.input_size}")
        tall, matrices = crops_as_frame(crops)
        return self._run(tall, tall.shape[1], tall.shape[0], "BGR", self.crop_plan, matrices, out_ptr, mirror)

    def _run(self, frame: np.ndarray, width: int, height: int, frame_format: str, plan: ChannelPlan,
             matrices: np.ndarray, out_ptr: int, mirror: bool, out_size: tuple[int, int] | None = None) -> int:
        faces = len(matrices)
        items = faces * (2 if mirror else 1)
        if items > self.max_faces:
            raise EngineError(f"{items} crops exceed this preprocessor's maximum of {self.max_faces}")
        if self._frame_host is None or self._frame_device is None or self._frame_host.array.nbytes < frame.nbytes:
            for old in (self._frame_host, self._frame_device):
                if old is not None:
                    old.free()
            self._frame_host = PinnedBuffer((frame.nbytes,), np.uint8)
            self._frame_device = DeviceBuffer(frame.nbytes)
        np.copyto(self._frame_host.array[:frame.nbytes], np.ascontiguousarray(frame).reshape(-1))
        self._frame_device.upload_from(self._frame_host.ptr, frame.nbytes, self.stream)
        self._matrices_host.array[:faces] = matrices
        self._matrices_device.upload_from(self._matrices_host.ptr, faces * 24, self.stream)
        base = self._frame_device.ptr
        if frame_format == "NV12":
            frame_arg = frame_struct(base, width, height, width, "NV12", base + width * height, width)
        else:
            frame_arg = frame_struct(base, width, height, width * 3, frame_format)
        out_height, out_width = out_size or self.spec.input_size or (0, 0)
        if not out_height or not out_width:
            raise EngineError("a crop needs the spec's fixed input size; a whole frame, its output size")
        self.launch(frame_arg, faces, mirror, plan, out_height, out_width, out_ptr)
        return items

    def launch(self, frame_arg: MfrFrame, faces: int, mirror: bool, plan: ChannelPlan, out_height: int,
               out_width: int, out_ptr: int) -> None:
        args = [frame_arg, ctypes.c_void_p(self._matrices_device.ptr), ctypes.c_int(faces), ctypes.c_int(int(mirror)),
                ctypes.c_int(out_height), ctypes.c_int(out_width), plan.as_struct(), ctypes.c_void_p(out_ptr),
                ctypes.c_int(int(self.half_output))]
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        grid = (-(-out_width // BLOCK[0]), -(-out_height // BLOCK[1]), faces * (2 if mirror else 1))
        checked(self.driver.cuLaunchKernel(self.function, *grid, *BLOCK, 0, self.stream, ctypes.addressof(pointers), 0),
                "cuLaunchKernel")

    def to_host(self, frame: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray,
                mirror: bool = False) -> np.ndarray:
        """Run once and copy the result back (tests and benchmarks; deployments write to the engine)."""
        items = len(landmarks) * (2 if mirror else 1)
        out = DeviceBuffer(self.output_bytes(items))
        try:
            self(frame, landmarks, out.ptr, mirror)
            height, width = self.spec.input_size or (0, 0)
            result = np.empty((items, 3, height, width), np.float16 if self.half_output else np.float32)
            out.download(result, self.stream)
            synchronize(self.stream)
            return result
        finally:
            out.free()

    def synchronize(self) -> None:
        synchronize(self.stream)
