"""INT8 face detectors: a detector package calibrated through mfr-export calibrate, judged by
mfr eval --dataset detection; the detectors' shared preprocessing against numpy's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mfr.calibration.detection_agreement import Agreement, landmark_nme, match
from mfr.cli.export_cli import cli as export_cli
from mfr.cli.main import cli
from mfr.manifest import load_manifest
from mfr.paths import bundled_weights, dataset_dir
from mfr.runtime.detection import Face
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.package_detector import PackageDetector, detector_blob
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec


@pytest.fixture(scope="module")
def calibrated_yunet(small_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """YuNet's shipped package copied out and calibrated on a tiny folder: frames of the small clip and MFR2
    photos (never the demo photos it is judged on)."""
    root = tmp_path_factory.mktemp("yunet-int8")
    frames = root / "frames"
    frames.mkdir()
    capture = cv2.VideoCapture(str(small_clip / "clip.mp4"))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % 10 == 0:
            cv2.imwrite(str(frames / f"clip-{index:04d}.png"), image)
        index += 1
    for path in sorted(dataset_dir("mfr2").rglob("*.png"))[:6]:
        shutil.copy(path, frames / path.name)
    package = root / "yunet"
    copied = CliRunner().invoke(export_cli, ["onnx", "--model", "yunet", "--out", str(package)])
    assert copied.exit_code == 0, copied.output
    out = root / "yunet-int8"
    result = CliRunner().invoke(export_cli, [
        "calibrate", "--model", str(package), "--out", str(out), "--calib-dir", str(frames), "--num-images", "12",
        "--heldout-frames", "6", "--fallback-budget", "0", "--report", str(root / "calibration.json")])
    assert result.exit_code == 0, result.output
    return out


def test_the_shipped_yunet_package_is_the_file_it_names():
    from mfr.atomic import sha256_file
    from mfr.export.onnx_export import graph_io

    folder = bundled_weights("yunet")
    manifest = load_manifest(folder)
    model = folder / manifest.files["onnx"]
    assert manifest.kind == "detection" and manifest.decoder == {"type": "yunet", "strides": [8, 16, 32]}
    assert sha256_file(model) == manifest.sha256["onnx"]
    inputs, outputs = graph_io(model)
    assert inputs == manifest.inputs and outputs == manifest.outputs


def test_a_calibrated_detector_package_lists_its_int8_models_and_their_measure(calibrated_yunet: Path):
    from mfr.atomic import sha256_file

    manifest = load_manifest(calibrated_yunet)
    for key in ("onnx", "onnx_int8", "onnx_int8_u8", "onnx_int8_trt", "trt_calibration_cache"):
        assert sha256_file(calibrated_yunet / manifest.files[key]) == manifest.sha256[key], key
    assert manifest.opset == 13  # per-channel Q/DQ needs opset 13; the shipped model is opset 11
    record = manifest.stages.calibration
    assert record is not None and record.images == 12 and record.heldout_images == 6
    for part in (record.onnxruntime, record.onnxruntime_u8_weights, record.tensorrt_qdq):
        assert part is not None and part.steps and part.max_nme_pct == 0.5
        step = part.steps[-1]
        assert step.recall_drop_pp is not None and 0 <= step.recall_drop_pp <= 100
        assert step.landmark_nme_pct is not None and step.lfw_drop_pp is None
    report = json.loads((calibrated_yunet.parent / "calibration.json").read_text())
    assert report["model"] == "yunet" and report["onnxruntime"]["checked_on"].endswith("FP32 faces)")


def test_the_int8_detector_finds_the_faces_the_fp32_one_finds_on_the_demo_photos(calibrated_yunet: Path):
    fp32 = PackageDetector(calibrated_yunet, "fp32", score_threshold=0.6, nms_threshold=0.3)
    int8 = PackageDetector(calibrated_yunet, "int8", score_threshold=0.5, nms_threshold=0.3)
    assert int8.precision == "int8" and int8.engine.model_file.name.startswith("model.int8")
    agreement = Agreement()
    for path in sorted((dataset_dir("demo") / "examples").rglob("*.jp*g")):
        image = read_image_bgr(path)
        agreement.add(fp32.detect(image), int8.detect(image))
    assert agreement.reference_faces >= 5
    assert agreement.recall == 1.0, agreement.to_dict()
    assert agreement.nme is not None and agreement.nme < 0.15  # landmarks near FP32's, a fraction of the eyes' gap


def test_eval_detection_judges_both_precisions_against_truth_and_fp32(calibrated_yunet: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MFR_CACHE_DIR", str(tmp_path / "cache"))
    report_path = tmp_path / "detection.json"
    result = CliRunner().invoke(cli, ["eval", "--model", str(calibrated_yunet), "--dataset", "detection",
                                      "--precision", "both", "--clip-seeds", "0", "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())["reports"][0]
    fp32, int8 = report["results"]
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8")
    assert fp32["clips"]["reference_faces"] > 100 and fp32["clips"]["recall"] > 0.8
    assert not fp32["versus_fp32"] and set(int8["versus_fp32"]) == {"mfr2", "demo", "clips"}
    assert set(fp32["noise_floor"]) == {"mfr2", "demo"} and fp32["noise_floor"]["demo"]["recall"] > 0.9
    assert int8["versus_fp32"]["mfr2"]["reference_faces"] > 200
    refused = CliRunner().invoke(cli, ["eval", "--model", str(calibrated_yunet), "--dataset", "lfw",
                                       "--clip-seeds", "1"])
    assert refused.exit_code == 2 and "--clip-seeds applies to --dataset detection" in refused.output


def test_calibrate_refuses_options_of_the_other_kind_of_package(calibrated_yunet: Path, tmp_path: Path):
    result = CliRunner().invoke(export_cli, ["calibrate", "--model", str(calibrated_yunet), "--out",
                                             str(tmp_path / "x"), "--masked-share", "0.2"])
    assert result.exit_code == 2 and "--masked-share applies to packages of kind recognition" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("order", ["BGR", "RGB"])
def test_the_detectors_blob_is_numpys_normalisation(order: str):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    plain = PreprocessSpec(None, order, 1.0, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))  # type: ignore[arg-type]
    np.testing.assert_array_equal(detector_blob(image, plain), normalize(image, plain))
    for scale, mean, std in ((1 / 255, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), (1 / 255, (0.5, 0.4, 0.3), (1 / 255,) * 3)):
        other = PreprocessSpec(None, order, scale, mean, std)  # type: ignore[arg-type]
        np.testing.assert_array_equal(detector_blob(image, other), normalize(image, other))


def test_matching_is_one_to_one_by_iou_and_nme_is_relative_to_the_eyes():
    def face(box: list[float], shift: float = 0.0) -> Face:
        points = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float) + shift
        return Face(np.array(box, float), 0.9, points)

    reference = [face([0, 0, 100, 100]), face([200, 0, 300, 100])]
    found = [face([4, 0, 104, 100], shift=2.0), face([0, 0, 100, 100], shift=4.0), face([500, 0, 600, 100])]
    pairs = match(np.array([f.box for f in reference]), np.array([f.box for f in found]))
    assert pairs == [(0, 1)]  # the better overlap wins; the face at x=200 is missed
    assert landmark_nme(reference[0].landmarks, found[1].landmarks) == pytest.approx(4 * np.sqrt(2) / 40)
    agreement = Agreement()
    agreement.add(reference, found)
    assert (agreement.recall, agreement.extra) == (0.5, 2)


def test_build_engine_makes_an_int8_detector_engine_that_detects_as_its_package(calibrated_yunet: Path,
                                                                                 tmp_path: Path):
    engine_dir = tmp_path / "engine"
    built = CliRunner().invoke(export_cli, ["build-engine", "--package", str(calibrated_yunet), "--precision", "int8",
                                            "--out", str(engine_dir)])
    assert built.exit_code == 0, built.output
    engine = PackageDetector(engine_dir, score_threshold=0.6, nms_threshold=0.3)
    package = PackageDetector(calibrated_yunet, "int8", score_threshold=0.6, nms_threshold=0.3)
    assert engine.precision == "int8" and engine.engine.manifest.engine is not None
    for path in sorted((dataset_dir("demo") / "examples").rglob("*.jp*g"))[:4]:
        image = read_image_bgr(path)
        ours, theirs = engine.detect(image), package.detect(image)
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose([f.box for f in ours], [f.box for f in theirs], atol=1.0)


def test_a_detector_package_of_another_family_is_refused_by_name(calibrated_yunet: Path):
    from mfr.errors import MfrError
    from mfr.runtime.detectors import DETECTORS

    with pytest.raises(MfrError, match="holds a yunet detector; --detector retinaface runs retinaface packages"):
        DETECTORS["retinaface"].make("retinaface", calibrated_yunet)
