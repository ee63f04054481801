"""Sheets of faces for a person to look at: what a generative model was shown and what it drew.

A reconstruction is judged by eye before any number: a loss that falls can still mean blurred grey
faces. Rows of tiles (e.g. covered input | reconstruction | original), each row labelled.
"""

from __future__ import annotations

import cv2
import numpy as np

from mfr.training.batches import BatchPlan

LABEL_WIDTH = 150
SHEET_FACES = 8


def labelled_rows(rows: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """One image from labelled rows of equal-sized uint8 BGR tiles (label, (N, H, W, 3))."""
    lines = []
    for label, tiles in rows:
        height = tiles.shape[1]
        caption = np.full((height, LABEL_WIDTH, 3), 255, np.uint8)
        for number, text in enumerate(label.split("\n")):
            cv2.putText(caption, text, (6, 22 + 20 * number), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                        cv2.LINE_AA)
        lines.append(np.hstack([caption, *tiles]))
    return np.vstack(lines)


def sheet_plan(faces: int, seed: int) -> BatchPlan:
    """The same ``SHEET_FACES`` training faces after every epoch (drawn once from ``seed``), so sheets of
    successive epochs show the same people."""
    picks = np.random.default_rng([seed, 7]).choice(faces, min(SHEET_FACES, faces), replace=False)
    return BatchPlan(epoch=0, step=0, indices=np.sort(picks))
