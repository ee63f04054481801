"""Identification thresholds on people a model never trained on: the people of chosen LFW folds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.data.lfw import lfw_images_of_folds, lfw_root
from mfr.errors import DataError
from mfr.paths import dataset_dir


def people_of_pairs_file(folds: set[int]) -> set[str]:
    """Read pairs.txt directly: the people named in the pairs of the 1-based ``folds``."""
    lines = (lfw_root() / "pairs.txt").read_text().split("\n")
    count, per_fold = (int(x) for x in lines[0].split())
    people = set()
    for number, line in enumerate(lines[1:1 + count * 2 * per_fold]):
        if number // (2 * per_fold) + 1 in folds:
            fields = line.split()
            people.update({fields[0], fields[2]} if len(fields) == 4 else {fields[0]})
    return people


def test_fold_people_are_those_of_the_pairs_file_and_capped():
    paths = lfw_images_of_folds((5, 6, 7, 8, 9), per_person=2)
    names = [path.parent.name for path in paths]
    assert set(names) == people_of_pairs_file({6, 7, 8, 9, 10})
    assert not set(names) & people_of_pairs_file({1, 2, 3, 4, 5})  # the folds are person-disjoint
    assert max(names.count(name) for name in set(names)) == 2
    assert "George_W_Bush" not in names or names.count("George_W_Bush") <= 2


def test_folds_outside_lfw_are_refused():
    with pytest.raises(DataError, match="1-10"):
        lfw_images_of_folds((10,))


def test_thresholds_on_fold_people_name_them(mobilefacenet_package: Path):
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(mobilefacenet_package), "--folds", "6,7,8,9,10",
                                      "--per-person", "2", "--images", "120", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"].startswith("LFW people of folds 6,7,8,9,10 (at most 2 photos each): 120 images of ")
    assert record["unmasked"]["impostor_pairs"] > 7000  # 120 faces: at most 7,140 pairs, nearly all impostor
    assert record["unmasked"]["threshold"] == sorted(record["unmasked"]["threshold"])


def test_own_people_aligned_crops_or_photos(mobilefacenet_package: Path, retinaface_package: Path, tmp_path: Path):
    """--people DIR: the user's own faces of people who will not be enrolled, aligned crops or photos."""
    crops = tmp_path / "crops"
    fold_6 = lfw_images_of_folds((5,), per_person=2)
    people = [name for name in dict.fromkeys(p.parent.name for p in fold_6)
              if sum(p.parent.name == name for p in fold_6) == 2][:3]  # 3 people of fold 6, 2 crops each
    for path in (p for p in fold_6 if p.parent.name in people):
        (crops / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, crops / path.parent.name / path.name)
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(mobilefacenet_package), "--people", str(crops),
                                      "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"].startswith(f"the people of {crops} (at most 4 photos each): 6 images of 3 people")
    assert (record["images"], record["people"]) == (6, 3)
    assert record["unmasked"]["impostor_pairs"] == 15 - 3  # every pair of 6 faces but the 3 same-person ones
    assert record["seen_people"] is None  # the bundled teacher does not say whom it trained on
    photos = dataset_dir("demo") / "examples" / "knn_examples" / "train"  # unaligned photos: detected and aligned first
    expected = sum(min(4, len(list(person.iterdir()))) for person in photos.iterdir())
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(mobilefacenet_package), "--people", str(photos),
                                      "--detector-package", str(retinaface_package), "--json"])
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["images"], json.loads(result.stdout)["people"]) == (expected, 5)
    lonely = tmp_path / "one"
    shutil.copytree(crops / sorted(p.name for p in crops.iterdir())[0], lonely / "someone")
    result = CliRunner().invoke(cli, ["thresholds", "--model", str(mobilefacenet_package), "--people", str(lonely)])
    assert result.exit_code != 0 and str(lonely) in result.output and "at least 2 people" in result.output
