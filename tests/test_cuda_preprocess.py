"""The CUDA preprocessing kernel: compiled by NVRTC for every target architecture (no GPU needed), its
per-pixel arithmetic run on the host against the CPU reference path, and on a GPU (marked ``gpu``) the
real kernel against the same reference.

The reference is OpenCV's warpAffine and cvtColor. The kernel reproduces the locked OpenCV release
(constraints/ci.txt) bit for bit; OpenCV 5.1 computes the source coordinates in double and interpolates
vertically first, so with another release the host build is held to one grey level per value and the
difference is reported (tests/locked_releases.py)."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mfr.data.mfr2 import read_mfr2
from mfr.manifest import load_manifest
from mfr.paths import dataset_dir
from mfr.registry import MODELS
from mfr.runtime.cuda_kernels import CI_ARCHITECTURES
from mfr.runtime.cuda_preprocess import (
    CudaPreprocessor,
    MfrFrame,
    channel_plan,
    crops_as_frame,
    face_matrices,
    frame_geometry,
    frame_struct,
)
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import align_faces, normalize
from mfr.spec import PreprocessSpec
from tests.host_gpu import (
    BoundInputEngine,
    DeviceBoundEngine,
    HostKernelPreprocessor,
    compile_host_kernel,
    run_host_kernel,
)
from tests.locked_releases import library_release

ROOT = Path(__file__).resolve().parents[1]
SPEC = MODELS["mobilefacenet"].spec
# the two kinds of spec the kernel serves: 112x112 RGB with ImageNet normalisation, 128x128 BGR 0..255
SPECS = {name: MODELS[name].spec for name in ("mobilefacenet", "face-reid-0095")}
OPENCV = library_release("opencv-python-headless")


def reference(frame_bgr: np.ndarray, landmarks: list[np.ndarray], spec: PreprocessSpec = SPEC) -> np.ndarray:
    """The CPU path: OpenCV warpAffine per face, then normalize."""
    return normalize(align_faces(frame_bgr, landmarks, spec), spec)


def to_nv12(bgr: np.ndarray) -> np.ndarray:
    """BGR -> NV12 (Y plane, then interleaved U,V at half resolution), via OpenCV's I420."""
    height, width = bgr.shape[:2]
    flat = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    luma, chroma = height * width, height * width // 4
    u, v = flat[luma:luma + chroma], flat[luma + chroma:]
    uv = np.stack([u, v], axis=1).reshape(height // 2, width)
    return np.concatenate([flat[:luma].reshape(height, width), uv])


# --- NVRTC: compiles without a GPU -----------------------------------------------------------------------

@pytest.mark.parametrize("architecture", CI_ARCHITECTURES)
def test_kernel_compiles_to_ptx_with_nvrtc(architecture, tmp_path):
    assert set(CI_ARCHITECTURES) == {"compute_75", "compute_87", "compute_90"}  # Turing, Jetson Orin, Hopper
    from mfr.runtime.cuda_kernels import KERNEL, cached_binary

    ptx = cached_binary(architecture, cache_dir=tmp_path)
    assert f".target sm_{architecture[-2:]}".encode() in ptx
    assert f".entry {KERNEL}(".encode() in ptx
    cached = list((tmp_path / "cuda-kernels").glob(f"*-{architecture}.ptx"))
    assert len(cached) == 1 and cached[0].read_bytes() == ptx  # the second call would read this file


def test_the_kernel_cache_is_keyed_by_the_nvrtc_version(tmp_path):
    """A cubin from one NVRTC is not reused by another: the version cuda-python reports is in the key."""
    from cuda.bindings import nvrtc

    from mfr.runtime.cuda_kernels import cached_binary

    error, major, minor = nvrtc.nvrtcVersion()
    assert int(error) == 0
    cached_binary("compute_75", cache_dir=tmp_path)
    [path] = (tmp_path / "cuda-kernels").iterdir()
    assert f"-nvrtc{major}.{minor}-compute_75." in path.name


NO_NVRTC = """
import site
site.getsitepackages = lambda *args: []  # the NVRTC wheel becomes invisible to cuda-python's library search
site.getusersitepackages = lambda *args: "/nonexistent"
from mfr.errors import EngineError
from mfr.runtime.cuda_kernels import compile_source
try:
    compile_source('extern "C" __global__ void k() {}', "compute_75")
except EngineError as exc:
    print("EngineError:", exc)
"""


def test_a_machine_without_nvrtc_gets_a_clear_error_not_cuda_pythons_runtime_error():
    """cuda-python raises a RuntimeError subclass when it cannot find libnvrtc; the callers fall back to the
    CPU path on EngineError, so the kernel compiler must turn it into one (run here with the NVRTC wheel
    hidden from cuda-python's search, in a separate interpreter)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", NO_NVRTC], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("EngineError: NVRTC is not usable here") and "libnvrtc" in done.stdout
    assert "mfr[cuda12]" in done.stdout


def test_a_broken_kernel_reports_nvrtc_log():
    from mfr.errors import EngineError
    from mfr.runtime.cuda_kernels import compile_source

    message = r"NVRTC could not compile it for compute_75:\n.*undefined_name.*is undefined"
    with pytest.raises(EngineError, match=message):
        compile_source('extern "C" __global__ void k() { undefined_name = 1; }', "compute_75", "broken.cu")


# --- the kernel's arithmetic on the host -----------------------------------------------------------------

@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory) -> ctypes.CDLL:
    return compile_host_kernel(tmp_path_factory.mktemp("kernel"))


def run_host(lib: ctypes.CDLL, frame: MfrFrame, landmarks: list[np.ndarray], frame_format: str,
             spec: PreprocessSpec = SPEC, mirror: bool = False) -> np.ndarray:
    plan = channel_plan(spec, frame_format)
    matrices = face_matrices(landmarks, spec)
    height, width = spec.input_size or (0, 0)
    out = np.full((len(landmarks) * (2 if mirror else 1), 3, height, width), np.nan, np.float32)
    pointer = ctypes.c_void_p
    lib.mfr_warp_normalize_host(ctypes.byref(frame), matrices.ctypes.data_as(pointer), len(landmarks), int(mirror),
                                height, width, plan.source.ctypes.data_as(pointer), plan.gain.ctypes.data_as(pointer),
                                plan.offset.ctypes.data_as(pointer), out.ctypes.data_as(pointer))
    return out


def padded(image: np.ndarray, extra: int) -> np.ndarray:
    """The same pixels in rows of ``width * 3 + extra`` bytes (a pitched frame, as decoders deliver)."""
    height, width = image.shape[:2]
    buffer = np.zeros((height, width * 3 + extra), np.uint8)
    buffer[:, :width * 3] = image.reshape(height, -1)
    return buffer


@pytest.fixture(scope="module")
def frames_with_faces(retinaface_package) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    """Real frames with detector landmarks: the demo photos and a few MFR2 photos (masked faces)."""
    from mfr.runtime.package_detector import PackageDetector

    detector = PackageDetector(retinaface_package)
    paths = sorted(dataset_dir("demo").rglob("*.jp*g"))[:6] + read_mfr2().images()[:4]
    frames = []
    for path in paths:
        image = read_image_bgr(path)
        faces = detector.detect(image)
        if faces:
            frames.append((path.name, image, [f.landmarks for f in faces]))
    assert len(frames) >= 6
    return frames


class OpenCvComparison:
    """The host build against the installed OpenCV: bit for bit when it is the locked release; otherwise
    within one grey level per value (the difference divided by the channel's gain), counted for the report."""

    def __init__(self, spec: PreprocessSpec = SPEC) -> None:
        self.spec = spec
        self.differing = self.compared = 0

    def check(self, got: np.ndarray, expected: np.ndarray, frame_format: str, what: object,
              locked_tolerance: float = 0.0) -> None:
        difference = np.abs(got - expected)
        if OPENCV.is_locked:
            assert difference.max() <= locked_tolerance, (
                f"{what}: differs from {OPENCV}, whose arithmetic the kernel reproduces, by {difference.max()}")
            return
        levels = difference / np.abs(channel_plan(self.spec, frame_format).gain)[None, :, None, None]
        assert levels.max() <= 1.001, f"{what}: {levels.max():.3f} grey levels from {OPENCV}"
        self.differing += int((levels > 0).sum())
        self.compared += levels.size

    def report(self) -> None:
        if not OPENCV.is_locked:
            OPENCV.report(f"the kernel is within one grey level of it ({self.differing} of {self.compared:,} values "
                          "differ by one level), not bit for bit")


@pytest.mark.parametrize("model", SPECS)
def test_kernel_arithmetic_equals_the_cpu_path_on_real_frames(host_kernel, frames_with_faces, model):
    """BGR and RGB frames, odd sizes, pitched rows, 1..N faces: bit-identical to warpAffine + normalize (the
    locked OpenCV; within one grey level of another release), for each kind of spec."""
    spec = SPECS[model]
    comparison = OpenCvComparison(spec)
    for extra in (0, 13):
        for name, image, landmarks in frames_with_faces:
            image = image[: image.shape[0] | 1, : image.shape[1] | 1]  # odd sizes where possible
            expected = reference(image, landmarks, spec)
            for frame_format, pixels in (("BGR", image), ("RGB", np.ascontiguousarray(image[..., ::-1]))):
                buffer = padded(pixels, extra)
                frame = frame_struct(buffer.ctypes.data, image.shape[1], image.shape[0], buffer.shape[1], frame_format)
                got = run_host(host_kernel, frame, landmarks, frame_format, spec)
                comparison.check(got, expected, frame_format, (name, frame_format, extra))
    comparison.report()


@pytest.mark.parametrize("model", SPECS)
def test_kernel_arithmetic_equals_opencv_nv12_conversion(host_kernel, frames_with_faces, model):
    spec = SPECS[model]
    comparison = OpenCvComparison(spec)
    for name, image, landmarks in frames_with_faces:
        even = np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])
        nv12 = to_nv12(even)
        height, width = even.shape[:2]
        expected = reference(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12), landmarks, spec)
        frame = frame_struct(nv12.ctypes.data, width, height, width, "NV12", nv12.ctypes.data + width * height, width)
        got = run_host(host_kernel, frame, landmarks, "NV12", spec)
        comparison.check(got, expected, "NV12", name)
    comparison.report()


def test_mirror_items_are_the_crops_flipped_left_to_right_exactly(host_kernel, frames_with_faces):
    """With ``mirror`` the kernel writes the N crops, then their N mirror images: item N + i is item i with
    its columns reversed, bit for bit (what the CPU path's ``batch[..., ::-1]`` gives)."""
    for _, image, landmarks in frames_with_faces:
        frame = frame_struct(image.ctypes.data, image.shape[1], image.shape[0], image.shape[1] * 3, "BGR")
        items = run_host(host_kernel, frame, landmarks, "BGR", mirror=True)
        faces = len(landmarks)
        np.testing.assert_array_equal(items[:faces], run_host(host_kernel, frame, landmarks, "BGR"))
        np.testing.assert_array_equal(items[faces:], items[:faces][..., ::-1])


@pytest.mark.parametrize("model", SPECS)
def test_crops_laid_out_as_a_frame_are_normalised_exactly(host_kernel, frames_with_faces, model):
    """Crops aligned on the CPU go through the same kernel as one tall frame cut by whole-row translations:
    the result is ``normalize`` of the crops bit for bit (no interpolation happens), mirror images included."""
    spec = SPECS[model]
    crops = np.concatenate([align_faces(image, landmarks, spec) for _, image, landmarks in frames_with_faces])
    tall, matrices = crops_as_frame(crops)
    height, width = spec.input_size or (0, 0)
    out = np.full((2 * len(crops), 3, height, width), np.nan, np.float32)
    written = run_host_kernel(host_kernel, tall, tall.shape[1], tall.shape[0], tall.shape[1] * 3, "BGR", matrices, spec,
                              out.ctypes.data, mirror=True)
    assert written == 2 * len(crops)
    expected = normalize(crops, spec)
    np.testing.assert_array_equal(out[:len(crops)], expected)
    np.testing.assert_array_equal(out[len(crops):], expected[..., ::-1])


def embedder_on_a_gpu_path(kernel: str, engine, request, max_batch: int = 4):
    """``FaceEmbedder``'s GPU path over ``engine``: the kernel's host build writing host memory ("host"), or the
    real CUDA kernel writing device memory ("cuda", on a GPU). Returns the embedder and its bound engine."""
    from mfr.runtime.embedder import FaceEmbedder

    if kernel == "host":
        bound = BoundInputEngine(engine, max_batch)
        preprocessor = HostKernelPreprocessor(request.getfixturevalue("host_kernel"), SPEC)
    else:
        preprocessor = CudaPreprocessor(SPEC, max_faces=max_batch)
        bound = DeviceBoundEngine(engine, max_batch, preprocessor.stream)
    embedder = FaceEmbedder(bound, gpu_preprocessing=False)  # type: ignore[arg-type]
    embedder.gpu = preprocessor
    return embedder, bound


@pytest.mark.parametrize("kernel", ["host", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("flip", [True, False])
def test_the_gpu_path_gives_the_embedding_the_cpu_path_gives(frames_with_faces, mobilefacenet_package, flip, kernel,
                                                             request):
    """One embedding contract: ``FaceEmbedder`` on its GPU path (the kernel's arithmetic, on the host or on
    the GPU; the engine behind TensorRT's bound-input calls; batches of at most 4 items, so 2 faces and their
    mirror images per call) gives the CPU path's embedding, flip-sum or not, from a frame and from crops."""
    from mfr.runtime.embedder import FaceEmbedder
    from mfr.runtime.engine_load import open_model

    with open_model(mobilefacenet_package) as engine:
        cpu = FaceEmbedder(engine)
        gpu, bound = embedder_on_a_gpu_path(kernel, engine, request)
        for _, image, landmarks in frames_with_faces:
            landmarks = (landmarks * 3)[:5]  # more faces than one engine call holds
            crops = align_faces(image, landmarks, SPEC)
            expected = cpu.embed_crops(crops, flip=flip)
            tolerance = 1e-6 if OPENCV.is_locked else 1e-3  # another OpenCV: one grey level here and there
            np.testing.assert_allclose(gpu.embed_frame_faces(image, landmarks, flip=flip), expected, atol=tolerance)
            np.testing.assert_allclose(gpu.embed_crops(crops, flip=flip), expected, atol=1e-6)
        assert max(bound.items_run) == 4


@pytest.mark.gpu
def test_the_gpu_kernel_computes_what_its_host_build_computes(host_kernel, frames_with_faces):
    """The kernel spells out every rounding (``__fmaf_rn``, ``__fmul_rn``, ``__fadd_rn``), so on a GPU it
    gives its host build's values bit for bit: faces from frames, their mirror images, and crops laid out
    as a tall frame (which equal ``normalize``). What CI checks on the host build then holds on the device."""
    from mfr.runtime.cuda_memory import DeviceBuffer

    pre = CudaPreprocessor(SPEC, max_faces=64)
    for _, image, landmarks in frames_with_faces:
        frame = frame_struct(image.ctypes.data, image.shape[1], image.shape[0], image.shape[1] * 3, "BGR")
        np.testing.assert_array_equal(pre.to_host(image, landmarks, mirror=True),
                                      run_host(host_kernel, frame, landmarks, "BGR", mirror=True))
    crops = np.concatenate([align_faces(image, landmarks, SPEC) for _, image, landmarks in frames_with_faces])[:32]
    out = DeviceBuffer(pre.output_bytes(2 * len(crops)))
    try:
        written = pre.crops(crops, out.ptr, mirror=True)
        got = np.empty((written, 3, *SPEC.input_size), np.float32)  # type: ignore[misc]
        out.download(got, pre.stream)
        pre.synchronize()
    finally:
        out.free()
    np.testing.assert_array_equal(got, np.concatenate([normalize(crops, SPEC), normalize(crops, SPEC)[..., ::-1]]))


def test_faces_outside_the_frame_get_the_black_border(host_kernel):
    image = np.full((120, 160, 3), 200, np.uint8)
    landmarks = [np.array(SPEC.template) + [140, 100]]  # mostly off the bottom-right corner
    frame = frame_struct(image.ctypes.data, 160, 120, 480, "BGR")
    got = run_host(host_kernel, frame, landmarks, "BGR")
    expected = reference(image, landmarks)
    assert np.abs(got - expected).max() <= 1e-6
    black = normalize(np.zeros((1, 112, 112, 3), np.uint8), SPEC)
    assert np.isclose(got, black).mean() > 0.5  # most of the crop is border


def test_bad_frames_are_refused():
    from mfr.errors import EngineError

    with pytest.raises(EngineError, match="NV12 frame is a"):
        frame_geometry(np.zeros((100, 64), np.uint8), "NV12")
    with pytest.raises(EngineError, match="must be uint8"):
        frame_geometry(np.zeros((4, 4, 3), np.float32), "BGR")
    with pytest.raises(EngineError, match="unknown frame format"):
        channel_plan(SPEC, "YUYV")


# --- on a GPU ----------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("frame_format", ["BGR", "NV12"])
def test_gpu_kernel_matches_the_cpu_path(frames_with_faces, frame_format):
    pre = CudaPreprocessor(SPEC, max_faces=64, frame_format=frame_format)
    comparison = OpenCvComparison()
    for name, image, landmarks in frames_with_faces:
        if frame_format == "NV12":
            image = np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])
            frame = to_nv12(image)
            image = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_NV12)
        else:
            frame = image
        for count in (1, len(landmarks), 64):
            faces = [landmarks[i % len(landmarks)] for i in range(count)]
            got = pre.to_host(frame, faces)
            comparison.check(got, reference(image, faces), "BGR", (name, count), locked_tolerance=2e-3)
    comparison.report()


@pytest.mark.gpu
def test_gpu_preprocessing_gives_the_same_embeddings(frames_with_faces, mobilefacenet_package):
    from mfr.runtime.engine_load import open_model

    pre = CudaPreprocessor(SPEC, max_faces=16)
    with open_model(mobilefacenet_package) as engine:
        for _, image, landmarks in frames_with_faces:
            a = engine.raw_embeddings(reference(image, landmarks))
            b = engine.raw_embeddings(pre.to_host(image, landmarks))
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            assert cosine.min() >= 0.9999
    assert load_manifest(mobilefacenet_package).spec == SPEC


# --- the runtime's frame API and the benchmark (CPU path here) -----------------------------------------

def test_embed_frame_faces_uses_the_cpu_path_off_the_gpu(frames_with_faces, mobilefacenet_package):
    from mfr.runtime.embedder import FaceEmbedder

    embedder = FaceEmbedder.open(mobilefacenet_package)
    assert embedder.gpu is None  # ONNX Runtime engine: CPU preprocessing
    _, image, landmarks = frames_with_faces[0]
    expected = embedder.embed_crops(align_faces(image, landmarks, SPEC))
    np.testing.assert_allclose(embedder.embed_frame_faces(image, landmarks), expected, atol=1e-6)
    rgb = FaceEmbedder(embedder.engine, frame_format="RGB")
    rgb_frame = np.ascontiguousarray(image[..., ::-1])
    np.testing.assert_allclose(rgb.embed_frame_faces(rgb_frame, landmarks), expected, atol=1e-6)


def test_bench_preprocess_reports_the_cpu_path_and_why_no_gpu(retinaface_package, tmp_path):
    from click.testing import CliRunner

    from mfr.cli.main import cli
    from mfr.runtime.machine import gpu_info

    out = tmp_path / "pre.json"
    result = CliRunner().invoke(cli, ["bench", "preprocess", "--batch", "1,4", "--rounds", "2", "--detector-package",
                                      str(retinaface_package), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    paths = {(r["path"], r["batch"]) for r in data["results"]}
    assert {("cpu", 1), ("cpu", 4)} <= paths
    for r in data["results"]:
        assert r["faces_per_s"] == pytest.approx(r["batch"] / r["p50_ms"] * 1000, rel=0.01)
    if gpu_info() is None:
        assert data["gpu_missing"] and not any(p == "gpu" for p, _ in paths)


def test_peak_bandwidth_reads_device_attributes_that_cuda_python_has():
    """cuda-bindings 13 dropped ``cudaDeviceProp.memoryClockRate``; the attributes read instead exist."""
    from mfr.benchmarks.preprocess import gpu_peak_bandwidth_gb_s
    from mfr.runtime.machine import cuda_runtime, gpu_info

    cudart = cuda_runtime()
    assert cudart is not None
    assert {"cudaDevAttrMemoryClockRate", "cudaDevAttrGlobalMemoryBusWidth"} <= set(dir(cudart.cudaDeviceAttr))
    peak = gpu_peak_bandwidth_gb_s()
    if gpu_info() is None:
        assert peak is None
    else:  # every CUDA GPU since Maxwell has more than 20 GB/s; Jetson Orin 102-205, H100 ~3,350
        assert peak is not None and 20 < peak < 20_000


def test_the_kernel_resizes_whole_frames_for_a_detector_as_the_cpu_path_does(host_kernel, small_clip):
    """A detector's frame on the GPU path: the same kernel, a scaling matrix (``scale_matrix``). A 1280x720
    frame halved is the CPU path's INTER_AREA reduction within one grey level; photos scaled by other
    factors (bilinear on the GPU, INTER_AREA on the CPU) give the CPU path's faces."""
    from mfr.paths import bundled_weights
    from mfr.runtime.cuda_preprocess import scale_matrix
    from mfr.runtime.detection import fitted_size
    from mfr.runtime.package_detector import PackageDetector, network_input

    detector = PackageDetector(bundled_weights("yunet"), score_threshold=0.6, nms_threshold=0.3)
    spec, step = detector.manifest.spec, detector.head.pad_multiple
    capture = cv2.VideoCapture(str(small_clip / "clip.mp4"))
    for _ in range(40):
        ok, clip_frame = capture.read()
    capture.release()
    assert ok and clip_frame.shape == (720, 1280, 3)
    photos = sorted((dataset_dir("demo") / "examples").rglob("*.jp*g"))[:4]
    found = 0
    for index, image in enumerate([clip_frame] + [read_image_bgr(p) for p in photos]):
        factor, height, width = fitted_size(image.shape[0], image.shape[1], 640)
        pad_h, pad_w = -(-height // step) * step, -(-width // step) * step
        gpu = np.full((1, 3, pad_h, pad_w), np.nan, np.float32)
        image = np.ascontiguousarray(image)
        run_host_kernel(host_kernel, image, image.shape[1], image.shape[0], image.shape[1] * 3, "BGR",
                        scale_matrix(factor), spec, gpu.ctypes.data, False, out_size=(pad_h, pad_w))
        cpu, cpu_factor, cpu_size = network_input(image, spec, step, 640)
        assert cpu.shape == gpu.shape and cpu_factor == factor and cpu_size == (height, width)
        if index == 0:  # exactly half: INTER_AREA's 2x2 mean, bilinear at the pixel centres' midpoints
            assert np.abs(gpu - cpu).max() <= 1.0
        ours = detector.faces({k: v[0] for k, v in detector.engine.infer(gpu).items()}, height, width, factor)
        theirs = detector.detect(image)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            tolerance = 0.03 * (b.box[2] - b.box[0])
            np.testing.assert_allclose(a.box, b.box, atol=tolerance)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=tolerance)
        found += len(ours)
    assert found >= 5


@pytest.mark.gpu
def test_the_device_kernel_resizes_frames_for_a_detector_as_its_host_build(host_kernel, small_clip):
    """The detector's GPU preprocessing through the driver: the device's output equals the host build's."""
    from mfr.paths import bundled_weights
    from mfr.runtime.cuda_memory import DeviceBuffer, synchronize
    from mfr.runtime.cuda_preprocess import scale_matrix
    from mfr.runtime.detection import fitted_size

    spec = load_manifest(bundled_weights("yunet")).spec
    pre = CudaPreprocessor(spec, max_faces=1)
    capture = cv2.VideoCapture(str(small_clip / "clip.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    for image in (frame, read_image_bgr(sorted((dataset_dir("demo") / "examples").rglob("*.jp*g"))[0])):
        image = np.ascontiguousarray(image)
        factor, height, width = fitted_size(image.shape[0], image.shape[1], 640)
        pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
        host = np.empty((1, 3, pad_h, pad_w), np.float32)
        run_host_kernel(host_kernel, image, image.shape[1], image.shape[0], image.shape[1] * 3, "BGR",
                        scale_matrix(factor), spec, host.ctypes.data, False, out_size=(pad_h, pad_w))
        out = DeviceBuffer(host.nbytes)
        try:
            assert pre.resized(image, factor, pad_h, pad_w, out.ptr) == 1
            device = np.empty_like(host)
            out.download(device, pre.stream)
            synchronize(pre.stream)
        finally:
            out.free()
        np.testing.assert_array_equal(device, host)
