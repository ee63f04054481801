"""Training faces: an aligned ImageFolder (one folder per person), or the default LFW demo split.

The demo split trains on the LFW people of View 2 folds 1-5 plus every person in no pair, and leaves
the people of folds 6-10 for judging (LFW's folds are person-disjoint, and MFR2 shares no person with
LFW). So ``mfr eval --dataset lfw-masked --folds 6,7,8,9,10`` and ``--dataset mfr2`` measure people the
student never saw. Images are decoded once and kept in memory as uint8 (13 MB per 1,000 faces at 112x112).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfr.data.lfw import read_lfw
from mfr.errors import DataError
from mfr.progress import Progress, no_progress
from mfr.runtime.align import ALIGNED_CROP_SIZE, is_aligned_crop
from mfr.runtime.image_io import IMAGE_SUFFIXES, read_image_bgr
from mfr.runtime.preprocess import crop_from_aligned
from mfr.spec import PreprocessSpec

TRAIN_FOLDS = (0, 1, 2, 3, 4)  # 0-based: LFW folds 1-5
HELD_OUT_FOLDS = (5, 6, 7, 8, 9)  # 0-based: LFW folds 6-10, for judging


@dataclass(frozen=True)
class TrainingSet:
    source: str
    people: list[str]
    paths: list[Path]
    labels: np.ndarray  # (N,) index into people

    def __len__(self) -> int:
        return len(self.paths)

    def summary(self) -> dict[str, Any]:
        """The "data" part of a run's train_log.json: where the faces came from, how many, and the names of
        the people trained on, which a package exported from the run records so that thresholds are never
        measured on them (``mfr thresholds``)."""
        return {"source": self.source, "faces": len(self), "people": len(self.people),
                "people_names": list(self.people)}

    def keys(self) -> list[str]:
        """One key per face, ``person/file``, that seeds the masks and augmentations drawn for it: the same
        wherever the folder lives (keyed by the full path, a run on a copy of the data elsewhere, as in each
        test session's temporary folder, drew other masks and trained another model)."""
        return [f"{path.parent.name}/{path.name}" for path in self.paths]

    def load_images(self, spec: PreprocessSpec, progress: Progress = no_progress) -> np.ndarray:
        """All faces as uint8 BGR (N, H, W, 3) crops of ``spec``: each file must be an aligned 112x112 crop
        (ArcFace template), warped to the model's template where that differs."""
        height, width = spec.input_size or (0, 0)
        images = np.empty((len(self.paths), height, width, 3), np.uint8)
        self.load_images_into(images, spec, progress)
        return images

    def load_images_into(self, images: np.ndarray, spec: PreprocessSpec, progress: Progress = no_progress) -> None:
        """Decode every face into ``images`` (an array or a memory map of shape (N, H, W, 3))."""
        for index, path in enumerate(progress(self.paths, len(self.paths), "reading training faces")):
            image = read_image_bgr(path)
            if not is_aligned_crop(image):
                height, width = ALIGNED_CROP_SIZE
                raise DataError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels, but training needs faces "
                                f"aligned to {width}x{height} crops (ArcFace 5-point template)")
            images[index] = crop_from_aligned(image, spec)


def from_people(source: str, root: Path, people: list[str]) -> TrainingSet:
    paths: list[Path] = []
    labels: list[int] = []
    kept: list[str] = []
    for person in people:
        images = sorted(p for p in (root / person).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            paths += images
            labels += [len(kept)] * len(images)
            kept.append(person)
    return TrainingSet(source, kept, paths, np.asarray(labels, np.int64))


def read_image_folder(root: Path) -> TrainingSet:
    """``root/<person>/<image>`` with aligned crops; at least 2 people and 2 images."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"training data {root} is not a directory")
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    data = from_people(str(root), root, people)
    if len(data.people) < 2 or len(data) < 2:
        raise DataError(f"{root}: found {len(data)} images of {len(data.people)} people; expected one folder per "
                        f"person holding aligned face images ({', '.join(IMAGE_SUFFIXES)}), at least 2 people")
    return data


def lfw_demo_split(root: Path | None = None) -> TrainingSet:
    """LFW people of folds 1-5 and people in no pair (see the module docstring)."""
    dataset = read_lfw(root)
    held_out = {path.parent.name for pair in dataset.pairs if pair.fold in HELD_OUT_FOLDS
                for path in (pair.left, pair.right)}
    people = sorted(p.name for p in dataset.root.iterdir() if p.is_dir() and p.name not in held_out)
    return from_people(f"LFW people of folds 1-5 and in no pair ({dataset.root})", dataset.root, people)
