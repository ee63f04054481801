"""MFR2: 269 real photos of 53 people (160x160 loose crops, most with masks) and 848 pairs.

The crops are not aligned: evaluation detects the face and re-aligns it to the model's template.
``pairs.txt`` has no header and no folds; we cut it into 10 consecutive folds for k-fold accuracy.
"""

from __future__ import annotations

from pathlib import Path

from mfr.data.pairs import Pair, PairDataset, parse_pair_lines, read_lines
from mfr.errors import DataError
from mfr.paths import dataset_dir

MFR2_DIRNAME = "mfr2"
FOLDS = 10


def read_mfr2(root: Path | None = None) -> PairDataset:
    root = Path(root) if root is not None else dataset_dir(MFR2_DIRNAME)
    pairs_file = root / "pairs.txt"
    triples = parse_pair_lines(read_lines(pairs_file), root, ".png", pairs_file)
    count = len(triples)
    pairs = [Pair(left, right, same, i * FOLDS // count) for i, (left, right, same) in enumerate(triples)]
    return PairDataset("mfr2", root, pairs, aligned=False)


def read_mask_labels(root: Path | None = None) -> dict[Path, str]:
    """Image path -> mask type ('no-mask', 'surgical_blue', ...) from ``mfr2_labels.txt``."""
    root = Path(root) if root is not None else dataset_dir(MFR2_DIRNAME)
    labels_file = root / "mfr2_labels.txt"
    labels = {}
    for number, raw in read_lines(labels_file):
        fields = [f.strip(",") for f in raw]
        if len(fields) != 3 or not fields[1].isdigit():
            raise DataError(f"{labels_file}:{number}: expected 'name, index, mask type'")
        labels[root / fields[0] / f"{fields[0]}_{int(fields[1]):04d}.png"] = fields[2]
    return labels
