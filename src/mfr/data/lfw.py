"""LFW View 2: 13,233 aligned 112x112 faces and the standard 6,000-pair ``pairs.txt`` in 10 folds.

The folds are person-disjoint, which the pipeline relies on: calibration uses people in no pair and
checks its fallback on folds 1-5, training uses the people of folds 1-5 and those in no pair, and
folds 6-10 judge.
"""

from __future__ import annotations

from pathlib import Path

from mfr.data.pairs import Pair, PairDataset, parse_pair_lines, read_lines
from mfr.errors import DataError
from mfr.paths import dataset_dir

LFW_DIRNAME = "lfw-112x112"


def lfw_root(root: Path | None = None) -> Path:
    return Path(root) if root is not None else dataset_dir(LFW_DIRNAME)


def read_lfw(root: Path | None = None) -> PairDataset:
    """All pairs of ``pairs.txt`` with their fold (0-based), checking that every image exists."""
    root = lfw_root(root)
    pairs_file = root / "pairs.txt"
    lines = read_lines(pairs_file)
    try:
        folds, per_fold = int(lines[0][1][0]), int(lines[0][1][1])
    except (IndexError, ValueError):
        raise DataError(f"{pairs_file}: first line must be '<folds> <pairs per class>'") from None
    body = lines[1:]
    if len(body) != folds * 2 * per_fold:
        raise DataError(f"{pairs_file}: header promises {folds * 2 * per_fold} pairs, file has {len(body)}")
    triples = parse_pair_lines(body, root, ".jpg", pairs_file)
    pairs = [Pair(left, right, same, i // (2 * per_fold)) for i, (left, right, same) in enumerate(triples)]
    return PairDataset("lfw", root, pairs, aligned=True)


def read_pairs(root: Path | None = None) -> list[Pair]:
    return read_lfw(root).pairs


def sample_images(count: int, root: Path | None = None) -> list[Path]:
    """``count`` LFW images spread over many people (one per person, in name order), deterministically."""
    root = lfw_root(root)
    people = sorted(p for p in root.iterdir() if p.is_dir())
    step = max(1, len(people) // count)
    images = [first for person in people[::step] for first in sorted(person.glob("*.jpg"))[:1]][:count]
    if len(images) < count:
        raise DataError(f"{root}: need {count} face images, found {len(images)}")
    return images


def lfw_images_outside_pairs(root: Path | None = None) -> list[Path]:
    """LFW images of every person who appears in no pair of ``pairs.txt`` (1,549 images of 1,468 people), in
    a fixed order: calibration and identification thresholds are measured on them, never on judged pairs."""
    dataset = read_lfw(root)
    in_pairs = {path.parent.name for path in dataset.images()}
    people = sorted(p for p in dataset.root.iterdir() if p.is_dir() and p.name not in in_pairs)
    return [image for person in people for image in sorted(person.glob("*.jpg"))]


def lfw_images_of_folds(folds: tuple[int, ...], per_person: int | None = None,
                        root: Path | None = None) -> list[Path]:
    """LFW images of every person who appears in a pair of ``folds`` (0-based), at most ``per_person`` each
    (the first in name order), in a fixed order. The folds are person-disjoint, so folds 6-10 are people a
    model trained on the demo split never saw; the cap keeps a few people with hundreds of photos from
    owning most of the different-person pairs."""
    dataset = read_lfw(root)
    if not folds or any(not 0 <= fold < 10 for fold in folds):
        raise DataError(f"LFW folds must be among 1-10, got {', '.join(str(f + 1) for f in folds) or 'none'}")
    people = sorted({path.parent.name for pair in dataset.pairs if pair.fold in folds
                     for path in (pair.left, pair.right)})
    return [image for person in people for image in sorted((dataset.root / person).glob("*.jpg"))[:per_person]]
