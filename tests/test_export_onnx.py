"""Exported packages: checked ONNX, dynamic axes, parity on real faces, manifest contents, atomic output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mfr.atomic import sha256_file
from mfr.errors import ParityError
from mfr.manifest import load_manifest
from tests.conftest import needs_torch

pytestmark = needs_torch


def test_mobilefacenet_package_has_parity_on_real_faces(mobilefacenet_package):
    manifest = load_manifest(mobilefacenet_package)
    assert manifest.model == "mobilefacenet" and manifest.opset is not None and manifest.opset >= 17
    assert manifest.parity is not None
    assert manifest.parity.samples >= 64 and "LFW" in manifest.parity.data
    assert manifest.parity.min_cosine >= 0.9999
    assert manifest.sha256["onnx"] == sha256_file(mobilefacenet_package / "model.onnx")
    assert manifest.sha256["weights"] == "90a00ba1d8b0b688af3deb731ed53dca582e6106805d1bc3cfdef55f570493f4"
    assert manifest.inputs[0].shape == ["batch", 3, 112, 112]
    assert manifest.outputs[0].name == "embedding" and manifest.outputs[0].shape == ["batch", 128]
    assert {"torch", "onnx", "onnxruntime", "mfr"} <= set(manifest.versions)
    assert manifest.spec.embedding_dim == 128 and manifest.spec.color_order == "RGB"


def test_onnx_batch_axis_is_dynamic(mobilefacenet_package):
    session = ort.InferenceSession(str(mobilefacenet_package / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        out = session.run(None, {"input": rng.standard_normal((batch, 3, 112, 112), dtype=np.float32)})[0]
        assert out.shape == (batch, 128)


def test_detector_package_takes_any_image_size(retinaface_package):
    manifest = load_manifest(retinaface_package)
    assert manifest.parity is not None and manifest.parity.min_cosine >= 0.9999
    assert "demo photos" in manifest.parity.data
    assert [o.name for o in manifest.outputs] == ["bbox_deltas", "scores", "landmark_deltas"]
    assert manifest.inputs[0].shape == ["batch", 3, "height", "width"]
    session = ort.InferenceSession(str(retinaface_package / "model.onnx"), providers=["CPUExecutionProvider"])
    for height, width in ((240, 320), (481, 367)):
        boxes, scores, landmarks = session.run(None, {"input": np.zeros((1, 3, height, width), np.float32)})
        # two anchors per cell on strides 8, 16, 32, with ceil-rounded feature maps
        priors = sum(2 * -(-height // s) * -(-width // s) for s in (8, 16, 32))
        assert boxes.shape == (1, priors, 4) and scores.shape == (1, priors) and landmarks.shape == (1, priors, 10)
        assert 0 <= scores.min() and scores.max() <= 1


@pytest.mark.parametrize("name, dim, mean", [("iresnet18", 512, [0.5, 0.5, 0.5]),
                                            ("g2d", 128, [0.485, 0.456, 0.406]),
                                            ("meer", 128, [0.485, 0.456, 0.406]),
                                            ("meer-plain", 128, [0.485, 0.456, 0.406])])
def test_models_without_shipped_weights_round_trip(tmp_path, name, dim, mean):
    """No iResNet or G2D weights ship: a randomly initialised checkpoint (DataParallel-prefixed) must load
    strictly and export with parity, as a user's own arcface_torch checkpoint or a trained G2D would."""
    import torch

    from mfr.registry import get_model_entry

    torch.manual_seed(0)
    model = get_model_entry(name).build()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the exported graph has them to get right
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    weights = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, weights)
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "mfr.cli.export_cli", "onnx", "--model", name, "--weights", str(weights),
         "--out", str(out), "--json"], capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["outputs"][0]["shape"] == ["batch", dim]
    assert manifest["parity"]["min_cosine"] >= 0.9999
    assert manifest["spec"]["mean"] == pytest.approx(mean)


def test_failed_parity_leaves_nothing_behind(tmp_path):
    from mfr.export.package import OnnxPackageExporter

    out = tmp_path / "pkg"
    with pytest.raises(ParityError, match="nothing was written"):
        # no export can reach a cosine above 1, so this bar always fails after a real export
        OnnxPackageExporter(model="mobilefacenet", out=out, min_cosine=1.5)(log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_an_existing_package(tmp_path, mobilefacenet_package):
    import shutil

    from mfr.export.package import OnnxPackageExporter

    out = tmp_path / "pkg"
    shutil.copytree(mobilefacenet_package, out)
    (out / "stale.txt").write_text("old")
    OnnxPackageExporter(model="mobilefacenet", out=out, force=True)(log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.fp16.onnx", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["pkg"]


@pytest.mark.parametrize("fixture", ["mobilefacenet_package", "retinaface_package"])
def test_the_fp16_model_keeps_fp32_io_and_matches_fp32_on_real_inputs(fixture, request):
    """model.fp16.onnx: float weights in FP16, inputs/outputs FP32 (the runtime's buffers do not change),
    and on real LFW faces (a detector: demo photos) every output within cosine 0.999 of the FP32 model."""
    from mfr.export.real_inputs import detector_photos, sample_faces

    package = request.getfixturevalue(fixture)
    manifest = load_manifest(package)
    record = manifest.stages.fp16
    assert record is not None and record.file == manifest.files["onnx_fp16"] == "model.fp16.onnx"
    model = onnx.load(str(package / "model.fp16.onnx"))
    io_types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}
    weights = [i for i in model.graph.initializer if len(i.dims) >= 2]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    if manifest.kind == "recognition":
        batches = [sample_faces(48, manifest.spec)]
    else:
        batches = detector_photos(3, manifest.spec)[0]
    fp32 = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(package / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    for batch in batches:
        for expected, got in zip(fp32.run(None, {"input": batch}), fp16.run(None, {"input": batch}), strict=True):
            a, b = expected.reshape(len(batch), -1), got.reshape(len(batch), -1)
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            assert got.dtype == np.float32 and cosine.min() >= 0.999
