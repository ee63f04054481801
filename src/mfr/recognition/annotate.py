"""Drawing what the watch loop sees, for ``--record`` (a video file) and ``--show`` (a window)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mfr.errors import DataError
from mfr.private import create_dirs, create_private
from mfr.recognition.watch import TrackView

_NAMED, _UNKNOWN, _UNDECIDED = (60, 200, 60), (40, 40, 230), (200, 200, 200)


def annotate(image: np.ndarray, tracks: Sequence[TrackView], fps: float | None) -> np.ndarray:
    """A copy of ``image`` with a box, track id, name (or unknown / ...) and score per track."""
    out = image.copy()
    for t in tracks:
        colour = _UNDECIDED if not t.decided else _NAMED if t.name else _UNKNOWN
        x1, y1, x2, y2 = (int(round(v)) for v in t.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"#{t.track_id} " + (t.name or "unknown" if t.decided else "...")
        if t.score is not None and np.isfinite(t.score):
            label += f" {t.score:.2f}"
        if t.masked:
            label += " [mask]"
        cv2.putText(out, label, (x1, max(15, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 2, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class Recorder:
    """Annotated frames into an MP4 file (MPEG-4 part 2: pip's OpenCV writes it without extra codecs)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            create_dirs(self.path.parent)
            create_private(self.path)  # faces: 0600 (the writer keeps the mode of the file it truncates)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps,
                                           (image.shape[1], image.shape[0]))
            if not self._writer.isOpened():
                raise DataError(f"{self.path}: cannot write a video here")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
