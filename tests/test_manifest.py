"""The manifest's typed hand-off between stages: round trips, accessors, and refusal of other formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mfr.errors import ManifestError
from mfr.manifest import FORMAT_VERSION, MANIFEST_NAME, Manifest, load_manifest


def copy_package(package: Path, tmp_path: Path) -> tuple[Path, dict]:
    target = tmp_path / package.name
    shutil.copytree(package, target)
    return target, json.loads((target / MANIFEST_NAME).read_text())


def write(package: Path, data: dict) -> None:
    (package / MANIFEST_NAME).write_text(json.dumps(data))


def test_a_calibrated_manifest_round_trips_through_its_types(calibrated):
    out, record = calibrated
    manifest = load_manifest(out)
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    calibration = manifest.stages.calibration
    assert calibration is not None and calibration.images == record["images"]
    assert manifest.float_layers("tensorrt_qdq") == record["tensorrt_qdq"]["fp_layers"]
    assert manifest.float_layers("onnxruntime") == record["onnxruntime"]["fp_layers"]
    assert all(step.heldout_cosine > 0.9 for step in calibration.onnxruntime.steps)
    export = manifest.export_weights()
    assert export is not None and export.name == "mobilefacenet.pt"


def test_an_uncalibrated_package_has_no_float_layers(mobilefacenet_package):
    manifest = load_manifest(mobilefacenet_package)
    assert manifest.stages.calibration is None and manifest.float_layers("tensorrt_qdq") == []


def test_a_package_of_an_older_format_is_refused_with_what_to_do(mobilefacenet_package, tmp_path):
    package, data = copy_package(mobilefacenet_package, tmp_path)
    write(package, {**data, "format_version": 1})
    with pytest.raises(ManifestError) as error:
        load_manifest(package)
    message = str(error.value)
    assert str(package / MANIFEST_NAME) in message and "older mfr (manifest format 1)" in message
    assert f"reads format {FORMAT_VERSION}" in message and "mfr-export onnx" in message
    write(package, {**data, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ManifestError, match="written by another mfr"):
        load_manifest(package)


def test_a_stage_record_with_unknown_or_missing_fields_names_the_section(calibrated, tmp_path):
    package, data = copy_package(calibrated[0], tmp_path)
    data["stages"]["calibration"]["tensorrt_qdq"]["fp_layer"] = data["stages"]["calibration"]["tensorrt_qdq"].pop(
        "fp_layers")
    write(package, data)
    with pytest.raises(ManifestError, match=r"stages.calibration.tensorrt_qdq has unknown fields \['fp_layer'\]"):
        load_manifest(package)
    package2, data2 = copy_package(calibrated[0], tmp_path / "b")
    del data2["stages"]["calibration"]["onnxruntime"]["target_met"]
    write(package2, data2)
    with pytest.raises(ManifestError, match=r"stages.calibration.onnxruntime: .*target_met"):
        load_manifest(package2)
