"""``mfr eval`` on real data subsets, and its handling of bad datasets."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.data.lfw import lfw_root, read_lfw
from mfr.data.mfr2 import read_mfr2
from mfr.errors import DataError
from mfr.runtime.image_io import read_image_bgr, to_bgr8


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_lfw_fold_meets_the_bar_and_writes_json(mobilefacenet_package, tmp_path):
    out = tmp_path / "lfw.json"
    args = ["eval", "--model", mobilefacenet_package, "--dataset", "lfw", "--folds", "1", "--bootstrap", "100",
            "--cache-dir", tmp_path / "cache", "--json", out, "--errors", tmp_path / "errors.csv"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # --errors: exactly the pairs the accuracy counts wrong, each wrong at the threshold it was judged at
    with (tmp_path / "errors.csv").open() as handle:
        errors = list(csv.DictReader(handle))
    assert len(errors) == round(600 * (1 - report["accuracy"])) > 0
    labels = {(p.left.name, p.right.name): p.same for p in read_lfw().pairs if p.fold == 0}
    for row in errors:
        same = row["same"] == "True"
        assert labels[(Path(row["left"]).name, Path(row["right"]).name)] == same and row["fold"] == "1"
        assert (float(row["score"]) >= float(row["threshold"])) != same
    for key in ("accuracy", "accuracy_std", "eer", "tar_at_far", "pairs"):
        assert key in report
    assert report["pairs"] == 600 and report["accuracy"] >= 0.97 and report["eer"] < 0.03
    assert report["impostor_pairs"] == 300 and report["tar_at_far"]["1e-3"] is None  # one fold: FAR >= 1/300
    assert report["eer_ci95"][0] <= report["eer"] <= report["eer_ci95"][1]
    assert "| U-U | 600 |" in result.output
    cached = list((tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    # a second run reads the cache and reproduces the figures exactly
    assert run(*args).exit_code == 0
    assert json.loads(out.read_text())["protocols"] == report["protocols"]


def test_masked_protocols_are_harder_than_unmasked(mobilefacenet_package, tmp_path):
    out = tmp_path / "masked.json"
    result = run("eval", "--model", mobilefacenet_package, "--dataset", "lfw-masked", "--folds", "2",
                 "--no-flip", "--bootstrap", "0", "--no-cache", "--json", out, "--plots", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    protocols = json.loads(out.read_text())["protocols"]
    assert set(protocols) == {"U-U", "M-U", "M-M"}
    assert protocols["M-U"]["eer"] > protocols["U-U"]["eer"] + 0.01
    assert protocols["M-M"]["eer"] > protocols["U-U"]["eer"] + 0.01
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "mobilefacenet_lfw-masked_fp32_det.png", "mobilefacenet_lfw-masked_fp32_roc.png"]


def test_the_judging_mask_renderer_draws_other_masks_that_are_as_hard(mobilefacenet_package, tmp_path):
    """--mask-renderer procedural: the masked faces differ from the templates' (other embeddings, another
    cache entry), the unmasked ones do not, and the masks still cost accuracy."""
    reports = {}
    for renderer in ("templates", "procedural"):
        out = tmp_path / f"{renderer}.json"
        result = run("eval", "--model", mobilefacenet_package, "--dataset", "lfw-masked", "--folds", "2",
                     "--no-flip", "--bootstrap", "0", "--cache-dir", tmp_path / "cache", "--mask-renderer", renderer,
                     "--json", out)
        assert result.exit_code == 0, result.output
        reports[renderer] = json.loads(out.read_text())
    assert reports["procedural"]["masks"] == "procedural (seed 0)"
    templates, procedural = reports["templates"]["protocols"], reports["procedural"]["protocols"]
    assert procedural["U-U"] == templates["U-U"]
    assert procedural["M-U"] != templates["M-U"]
    assert procedural["M-U"]["eer"] > procedural["U-U"]["eer"] + 0.01


def test_mfr2_with_retinaface_is_near_the_reference(mobilefacenet_package, retinaface_package, tmp_path):
    out = tmp_path / "mfr2.json"
    result = run("eval", "--model", mobilefacenet_package, "--dataset", "mfr2", "--detector-package",
                 retinaface_package, "--bootstrap", "200", "--no-cache", "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["pairs"] == 848
    assert report["detection"]["no_face"] == 0 and report["detection"]["images"] == 266
    # reference: about 94 % accuracy and 5.7 % EER (flip-sum, RetinaFace landmarks, 2-core CPU)
    assert report["eer"] <= 0.067 and report["accuracy"] >= 0.925
    # 424 impostor pairs resolve FAR 1e-2 (4 false accepts) but not 1e-3 (less than one)
    assert report["impostor_pairs"] == 424
    assert report["tar_at_far"]["1e-2"] is not None and report["tar_at_far"]["1e-3"] is None
    assert report["fnmr_at_fmr"]["FMR1000"] is None
    assert "| n/r |" in result.output and "impostor pairs: MFR2 424" in result.output


def test_int8_without_calibration_says_what_to_run(mobilefacenet_package):
    result = run("eval", "--model", mobilefacenet_package, "--dataset", "lfw", "--precision", "int8")
    assert result.exit_code == 1 and "has no int8 model" in result.output and "mfr-export calibrate" in result.output


def _mini_lfw(tmp_path: Path, pairs: str) -> Path:
    root = tmp_path / "lfw"
    source = read_lfw().pairs[0]
    for path in (source.left, source.right):
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.parent.name / path.name)
    (root / "pairs.txt").write_text(pairs)
    return root


def test_pairs_naming_missing_images_are_listed(tmp_path):
    pair = read_lfw().pairs[0]  # a same-person pair: both its images are copied
    name, i, j = pair.left.parent.name, int(pair.left.stem[-4:]), int(pair.right.stem[-4:])
    root = _mini_lfw(tmp_path, f"1 2\n{name} {i} {j}\n{name} {i} 99\nNobody 1 {name} {i}\nNobody 2 {name} {j}\n")
    with pytest.raises(DataError) as info:
        read_lfw(root)
    message = str(info.value)
    assert "names 3 missing images" in message and "Nobody_0001.jpg" in message and str(root) in message


def test_unreadable_image_names_the_file(mobilefacenet_package, tmp_path):
    pair = read_lfw().pairs[0]
    name, i, j = pair.left.parent.name, int(pair.left.stem[-4:]), int(pair.right.stem[-4:])
    root = _mini_lfw(tmp_path, f"1 1\n{name} {i} {j}\nZed 1 {name} {i}\n")
    (root / "Zed").mkdir()
    broken = root / "Zed" / "Zed_0001.jpg"
    broken.write_bytes(b"not a jpeg at all")
    result = run("eval", "--model", mobilefacenet_package, "--dataset", "lfw", "--data-dir", root, "--no-cache")
    assert result.exit_code == 1 and str(broken) in result.output
    assert "not a JPEG, PNG, BMP or WebP image" in result.output


def test_empty_dataset_directory_is_an_error(mobilefacenet_package, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("eval", "--model", mobilefacenet_package, "--dataset", "mfr2", "--data-dir", tmp_path / "empty",
                 "--detector", "yunet")
    assert result.exit_code == 1 and "pairs.txt not found" in result.output


def test_gray_rgba_and_16bit_images_are_converted(tmp_path):
    face = read_image_bgr(lfw_root() / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    variants = {
        "gray.png": gray,
        "rgba.png": cv2.cvtColor(face, cv2.COLOR_BGR2BGRA),
        "deep.png": face.astype(np.uint16) * 257,
    }
    for name, image in variants.items():
        cv2.imwrite(str(tmp_path / name), image)
        loaded = read_image_bgr(tmp_path / name)
        assert loaded.shape == (112, 112, 3) and loaded.dtype == np.uint8, name
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "deep.png"), face)
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "rgba.png"), face)
    assert (to_bgr8(gray)[..., 0] == gray).all()


def _mini_mfr2(tmp_path: Path, blank: bool) -> Path:
    """Two real MFR2 people plus, optionally, an image with no face in it."""
    source = read_mfr2()
    root = tmp_path / "mfr2"
    lines = []
    for pair in source.pairs[:6]:
        for path in (pair.left, pair.right):
            (root / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / path.parent.name / path.name)
        left, right = pair.left.stem.rsplit("_", 1), pair.right.stem.rsplit("_", 1)
        lines.append(f"{left[0]} {int(left[1])} {int(right[1])}" if pair.same else
                     f"{left[0]} {int(left[1])} {right[0]} {int(right[1])}")
    if blank:
        (root / "Blank").mkdir()
        cv2.imwrite(str(root / "Blank" / "Blank_0001.png"), np.full((160, 160, 3), 200, np.uint8))
        name, index = lines[0].split()[:2]
        lines.append(f"Blank 1 {name} {index}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def test_no_face_fails_or_falls_back_and_is_reported(mobilefacenet_package, retinaface_package, tmp_path):
    root = _mini_mfr2(tmp_path, blank=True)
    common = ["eval", "--model", mobilefacenet_package, "--dataset", "mfr2", "--data-dir", root,
              "--detector-package", retinaface_package, "--no-cache", "--bootstrap", "0"]
    failed = run(*common)
    assert failed.exit_code == 1 and "Blank_0001.png: no face found" in failed.output
    out = tmp_path / "r.json"
    fallback = run(*common, "--no-face", "center", "--json", out)
    assert fallback.exit_code == 0, fallback.output
    detection = json.loads(out.read_text())["detection"]
    assert detection["no_face"] == 1 and detection["no_face_examples"][0].endswith("Blank_0001.png")
    assert "1 none" in fallback.output


def test_mfr2_mask_labels_cover_every_image():
    from mfr.data.mfr2 import read_mask_labels

    labels = read_mask_labels()
    assert len(labels) == 269
    assert sum(kind == "no-mask" for kind in labels.values()) == 98  # counted in mfr2_labels.txt
    assert set(read_mfr2().images()) <= set(labels)
    assert all(path.is_file() for path in labels)


def test_several_packages_are_compared_side_by_side(mobilefacenet_package, calibrated, tmp_path):
    """Teacher vs student style: one run, same pairs, change relative to the first package."""
    out = tmp_path / "both.json"
    result = run("eval", "--model", mobilefacenet_package, "--model", calibrated[0], "--dataset", "lfw-masked",
                 "--folds", "7", "--bootstrap", "0", "--no-cache", "--json", out)
    assert result.exit_code == 0, result.output
    assert "change relative to" in result.output and "| M-U |" in result.output
    data = json.loads(out.read_text())
    first, second = data["models"]
    assert first["package"] == str(mobilefacenet_package) and second["package"] == str(calibrated[0])
    change = data["change_from_first"][str(calibrated[0])]
    for name in ("U-U", "M-U", "M-M"):
        expected = 100 * (second["protocols"][name]["eer"] - first["protocols"][name]["eer"])
        assert change[name]["eer_pp"] == pytest.approx(expected, abs=1e-3)
    # the calibrated package's FP32 model is the same ONNX model: no change at all
    assert all(c["accuracy_pp"] == 0 and c["eer_pp"] == 0 for c in change.values())
    refused = run("eval", "--model", mobilefacenet_package, "--model", calibrated[0], "--dataset", "lfw",
                  "--precision", "both")
    assert refused.exit_code == 2 and "give one --model" in refused.output
