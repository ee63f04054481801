"""How far one detector's faces are from reference faces: recall at an IoU, faces found that the reference
lacks, and landmark error normalised by the inter-ocular distance (NME).

The reference is the FP32 detector (calibration's fallback, ``mfr eval --dataset detection`` on photos)
or the boxes a generated clip was drawn with (``mfr eval --dataset detection`` on clips, boxes only).
Matching is one-to-one, highest IoU first (greedy, as the usual detection benchmarks do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.recognition.tracker import iou_matrix
from mfr.runtime.detection import Face

MATCH_IOU = 0.5


def match(reference: np.ndarray, found: np.ndarray, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """(reference index, found index) pairs, one-to-one, highest IoU first, each at least ``min_iou``."""
    iou = iou_matrix(reference, found)
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    used_r, used_f = set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        r, f = divmod(int(flat), iou.shape[1])
        if iou[r, f] < min_iou:
            break
        if r not in used_r and f not in used_f:
            pairs.append((r, f))
            used_r.add(r)
            used_f.add(f)
    return pairs


def landmark_nme(reference: np.ndarray, found: np.ndarray) -> float:
    """Mean distance of five landmarks over the reference's inter-ocular distance (its eyes: points 0, 1)."""
    ocular = float(np.linalg.norm(reference[0] - reference[1]))
    return float(np.linalg.norm(found - reference, axis=1).mean() / max(ocular, 1e-6))


@dataclass
class Agreement:
    """Counts over many frames; ``add`` one frame at a time."""

    frames: int = 0
    reference_faces: int = 0
    matched: int = 0
    extra: int = 0  # faces found that match no reference face (false positives against truth)
    nme_sum: float = 0.0
    nme_count: int = 0

    def add(self, reference: list[Face], found: list[Face], with_landmarks: bool = True,
            ignore: list[np.ndarray] | None = None) -> None:
        """One frame: ``reference`` faces (truth or FP32), the ``found`` ones; found faces matching an
        ``ignore`` box (a face the truth does not count: mostly hidden) are neither hits nor extras."""
        pairs = match(np.array([f.box for f in reference]), np.array([f.box for f in found]))
        self.frames += 1
        self.reference_faces += len(reference)
        self.matched += len(pairs)
        unmatched = [found[j] for j in set(range(len(found))) - {j for _, j in pairs}]
        if ignore:
            unmatched = [f for f in unmatched if not (iou_matrix(f.box[None], np.array(ignore)) >= MATCH_IOU).any()]
        self.extra += len(unmatched)
        if with_landmarks:
            for r, j in pairs:
                self.nme_sum += landmark_nme(reference[r].landmarks, found[j].landmarks)
                self.nme_count += 1

    @property
    def recall(self) -> float:
        return self.matched / self.reference_faces if self.reference_faces else 1.0

    @property
    def extra_per_frame(self) -> float:
        return self.extra / self.frames if self.frames else 0.0

    @property
    def nme(self) -> float | None:
        """Mean landmark NME of the matched faces (a fraction of the inter-ocular distance); None without any."""
        return self.nme_sum / self.nme_count if self.nme_count else None

    def to_dict(self) -> dict[str, float | int | None]:
        nme = self.nme
        return {"frames": self.frames, "reference_faces": self.reference_faces, "matched": self.matched,
                "recall": round(self.recall, 5), "extra": self.extra,
                "extra_per_frame": round(self.extra_per_frame, 4),
                "landmark_nme_pct": None if nme is None else round(100 * nme, 4)}
