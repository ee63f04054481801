"""Verification pairs: the common shape of LFW-style ``pairs.txt`` files.

Lines are ``name i j`` (same person) or ``name1 i name2 j`` (different people); image ``i`` of
``name`` is ``root/name/name_000i.<ext>``. Every named image must exist: the error lists the first few
missing ones and the count, rather than silently dropping pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mfr.errors import DataError

_SHOWN = 5


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool
    fold: int


@dataclass(frozen=True)
class PairDataset:
    name: str
    root: Path
    pairs: list[Pair]
    aligned: bool  # True: images are already aligned crops (landmarks = the template)

    def images(self) -> list[Path]:
        """Every image used by a pair, once, in a stable order."""
        return sorted({path for pair in self.pairs for path in (pair.left, pair.right)})


def image_path(root: Path, name: str, index: int, ext: str) -> Path:
    return root / name / f"{name}_{index:04d}{ext}"


def parse_pair_lines(lines: list[tuple[int, list[str]]], root: Path, ext: str,
                     source: Path) -> list[tuple[Path, Path, bool]]:
    """(line number, fields) -> (left, right, same) triples, checking that every image exists."""
    parsed = []
    for number, fields in lines:
        try:
            if len(fields) == 3:
                parsed.append((image_path(root, fields[0], int(fields[1]), ext),
                               image_path(root, fields[0], int(fields[2]), ext), True))
            elif len(fields) == 4:
                parsed.append((image_path(root, fields[0], int(fields[1]), ext),
                               image_path(root, fields[2], int(fields[3]), ext), False))
            else:
                raise ValueError
        except ValueError:
            raise DataError(f"{source}:{number}: expected 'name i j' or 'name1 i name2 j'") from None
    if not parsed:
        raise DataError(f"{source}: no pairs")
    missing = sorted({str(p) for left, right, _ in parsed for p in (left, right) if not p.is_file()})
    if missing:
        raise DataError(f"{source} names {len(missing)} missing images, e.g. {', '.join(missing[:_SHOWN])}")
    return parsed


def read_lines(path: Path) -> list[tuple[int, list[str]]]:
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
