"""LFW View 2: 13,233 aligned 112x112 faces and the standard 6,000-pair ``pairs.txt`` in 10 folds.

The folds are person-disjoint, which later issues rely on (calibration and training use people who
appear in no evaluation pair).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mfr.errors import DataError
from mfr.paths import dataset_dir

LFW_DIRNAME = "lfw-112x112"


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool
    fold: int


def lfw_root(root: Path | None = None) -> Path:
    return Path(root) if root is not None else dataset_dir(LFW_DIRNAME)


def image_path(root: Path, name: str, index: int) -> Path:
    return root / name / f"{name}_{index:04d}.jpg"


def read_pairs(root: Path | None = None) -> list[Pair]:
    """All pairs of ``pairs.txt`` with their fold (0-based), checking that every image exists."""
    root = lfw_root(root)
    pairs_file = root / "pairs.txt"
    if not pairs_file.is_file():
        raise DataError(f"{pairs_file} not found")
    lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise DataError(f"{pairs_file}: first line must be '<folds> <pairs per class>'") from None
    expected = folds * 2 * per_fold
    if len(lines) - 1 != expected:
        raise DataError(f"{pairs_file}: header promises {expected} pairs, file has {len(lines) - 1}")
    pairs: list[Pair] = []
    for number, fields in enumerate(lines[1:]):
        fold = number // (2 * per_fold)
        try:
            if len(fields) == 3:
                pair = Pair(image_path(root, fields[0], int(fields[1])), image_path(root, fields[0], int(fields[2])),
                            True, fold)
            elif len(fields) == 4:
                pair = Pair(image_path(root, fields[0], int(fields[1])), image_path(root, fields[2], int(fields[3])),
                            False, fold)
            else:
                raise ValueError
        except ValueError:
            raise DataError(f"{pairs_file}:{number + 2}: expected 'name i j' or 'name1 i name2 j'") from None
        pairs.append(pair)
    missing = sorted({str(p) for pair in pairs for p in (pair.left, pair.right) if not p.is_file()})
    if missing:
        raise DataError(f"{pairs_file} names {len(missing)} missing images, e.g. {', '.join(missing[:3])}")
    return pairs


def sample_images(count: int, root: Path | None = None) -> list[Path]:
    """``count`` LFW images spread over many people (one per person, in name order), deterministically."""
    root = lfw_root(root)
    people = sorted(p for p in root.iterdir() if p.is_dir())
    step = max(1, len(people) // count)
    images = [first for person in people[::step] for first in sorted(person.glob("*.jpg"))[:1]][:count]
    if len(images) < count:
        raise DataError(f"{root}: need {count} face images, found {len(images)}")
    return images
