"""The TensorRT path, run for real where TensorRT and a GPU exist (skipped elsewhere, with the reason).

CI has no TensorRT (its wheels come only from NVIDIA's index) and no GPU; there the same code is checked
statically by tests/test_tensorrt_static.py and the mypy run of tests/test_packaging.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.export_cli import cli as export_cli
from mfr.cli.main import cli as mfr_cli
from mfr.export.real_inputs import sample_faces
from mfr.manifest import load_manifest
from mfr.runtime.engine_load import open_engine, open_model
from mfr.runtime.machine import gpu_info, tensorrt_version

pytestmark = pytest.mark.tensorrt


def build(package: Path, out: Path, *args: str) -> Path:
    result = CliRunner().invoke(export_cli, ["build-engine", "--package", str(package), "--out", str(out),
                                             "--backend", "tensorrt", "--max-batch", "16", *args])
    assert result.exit_code == 0, result.output
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def faces(mobilefacenet_package) -> np.ndarray:
    return sample_faces(40, load_manifest(mobilefacenet_package).spec)


@pytest.mark.parametrize("precision, low", [("fp32", 0.9999), ("fp16", 0.999)])
def test_tensorrt_engine_matches_onnxruntime(mobilefacenet_package, tmp_path, faces, precision, low):
    from mfr.export.engine_builders import typed_fp16
    cache = tmp_path / "timing.cache"
    engine_dir = build(mobilefacenet_package, tmp_path / precision, "--precision", precision,
                       "--timing-cache", str(cache))
    record = load_manifest(engine_dir).engine
    gpu = gpu_info()
    assert record is not None and gpu is not None and cache.stat().st_size > 0
    assert (record.backend, record.backend_version, record.device, record.compute_capability) == (
        "tensorrt", tensorrt_version(), gpu.name, gpu.compute_capability)
    # TensorRT 11 builds FP16 from the FP16 model (strongly typed), earlier ones from the FP32 model + flag
    fp16_model = precision == "fp16" and typed_fp16(tensorrt_version())
    assert record.source_file == ("model.fp16.onnx" if fp16_model else "model.onnx")
    with open_engine(engine_dir) as engine, open_model(mobilefacenet_package) as reference:
        # 40 faces: 3 calls of <= 16
        assert cosine(engine.raw_embeddings(faces), reference.raw_embeddings(faces)).min() >= low


def test_tensorrt_int8_from_the_qdq_model(calibrated, tmp_path, faces):
    engine_dir = build(calibrated[0], tmp_path / "int8", "--precision", "int8")
    assert load_manifest(engine_dir).engine.source_file == "model.int8.trt.onnx"  # type: ignore[union-attr]
    with open_engine(engine_dir) as engine, open_model(calibrated[0]) as fp32:
        assert cosine(engine.raw_embeddings(faces), fp32.raw_embeddings(faces)).mean() >= 0.99


def test_eval_and_bench_run_a_tensorrt_engine(mobilefacenet_package, tmp_path):
    engine_dir = build(mobilefacenet_package, tmp_path / "fp32")
    out = tmp_path / "lfw.json"
    result = CliRunner().invoke(mfr_cli, ["eval", "--model", str(engine_dir), "--dataset", "lfw", "--folds", "2",
                                          "--bootstrap", "0", "--no-cache", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["accuracy"] >= 0.97
    result = CliRunner().invoke(mfr_cli, ["bench", "latency", "--model", str(engine_dir), "--batch", "1,32",
                                          "--rounds", "5"])
    assert result.exit_code == 0 and "tensorrt" in result.output, result.output


def test_tensorrt_implicit_int8_replays_the_calibration_cache(calibrated, tmp_path, faces):
    """TensorRT 8.x/10.x (JetPack 5/6): the FP32 model + calibration.cache; TensorRT must accept the cache
    (a rejected cache fails the build), and the engine stays close to FP32."""
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8")
    engine_dir = build(calibrated[0], tmp_path / "implicit", "--precision", "int8", "--int8-source",
                       "calibration-cache")
    assert load_manifest(engine_dir).engine.options.int8_source == "calibration-cache"  # type: ignore[union-attr]
    with open_engine(engine_dir) as engine, open_model(calibrated[0]) as fp32:
        assert cosine(engine.raw_embeddings(faces), fp32.raw_embeddings(faces)).mean() >= 0.99


def test_a_tensorrt_engine_closes_twice_and_rejects_a_shape_outside_its_profile(mobilefacenet_package, tmp_path,
                                                                                 faces):
    from mfr.errors import EngineError

    engine_dir = build(mobilefacenet_package, tmp_path / "fp32")
    engine = open_engine(engine_dir)
    with pytest.raises(EngineError):  # 17 > --max-batch 16: refused before TensorRT sees it
        engine.infer_bound_input(17)  # type: ignore[attr-defined]
    engine.close()
    engine.close()


@pytest.mark.gpu
def test_embed_frame_faces_aligns_on_the_gpu_into_a_tensorrt_engine(mobilefacenet_package, tmp_path):
    """The GPU branches of ``FaceEmbedder``: the CUDA kernel warps the faces (and, with ``flip``, their mirror
    images) straight into the engine's input, or normalises crops aligned on the CPU (what mfr watch does);
    the embeddings match those of the package on ONNX Runtime (the CPU path) on real LFW photos."""
    from mfr.data.lfw import sample_images
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.embedder import FaceEmbedder
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import align_faces

    engine_dir = build(mobilefacenet_package, tmp_path / "fp32")
    embedder = FaceEmbedder.open(engine_dir)
    reference = FaceEmbedder.open(mobilefacenet_package)
    assert embedder.gpu is not None, "the CUDA preprocessing did not start on this GPU"
    for path in sample_images(4):
        frame = read_image_bgr(path)
        landmarks = np.stack([aligned_crop_landmarks(*frame.shape[:2])] * 3)  # three faces in one call
        crops = align_faces(frame, landmarks, embedder.manifest.spec)
        for flip in (False, True):
            cpu = reference.embed_crops(crops, flip=flip)
            assert (embedder.embed_frame_faces(frame, landmarks, flip=flip) * cpu).sum(1).min() >= 0.999
            assert (embedder.embed_crops(crops, flip=flip) * cpu).sum(1).min() >= 0.999


def test_tensorrt_int8_with_fp16_float_layers(calibrated, tmp_path, faces):
    """--int8-float fp16: the Q/DQ model with FP16 scales and float parts, strongly typed (TensorRT >= 10)."""
    if tuple(int(p) for p in (tensorrt_version() or "0").split(".")[:1]) < (10,):
        pytest.skip("strongly typed INT8 + FP16 needs TensorRT >= 10")
    engine_dir = build(calibrated[0], tmp_path / "int8fp16", "--precision", "int8", "--int8-float", "fp16")
    assert load_manifest(engine_dir).engine.source_file == "model.int8.trt.fp16.onnx"  # type: ignore[union-attr]
    with open_engine(engine_dir) as engine, open_model(calibrated[0]) as fp32:
        assert cosine(engine.raw_embeddings(faces), fp32.raw_embeddings(faces)).mean() >= 0.99
