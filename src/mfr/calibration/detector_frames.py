"""Calibration frames for a face detector: whole frames at the size the detector runs at, preprocessed by
the package's own spec and padded as its decoder wants (``mfr.runtime.package_detector.network_input``).

Default: frames of generated clips (``mfr.data.clips``) with seeds of their own, never those of the clips
that judge a detector (``mfr eval --dataset detection``): a crowd of 150-220 px faces and a few large
faces, at 720p scaled to the detector's 640 px, with real and synthetic masks. ``--calib-dir`` takes the
user's own photos or frames. Every frame is placed on one canvas (the largest fitted size, padded with the
mean colour), so the activation statistics stream over one array.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mfr.data.clips import ClipConfig, clip_frames, make_clip
from mfr.errors import DataError
from mfr.paths import report_path
from mfr.runtime.detection import fit_longest_side, padded_size
from mfr.runtime.image_io import IMAGE_SUFFIXES, read_image_bgr

MIN_FRAMES = 8
# (seed, faces on screen, face height range at 720p): a crowd, and a few large faces (photo-like)
CALIBRATION_CLIPS = ((1001, 5, (150, 220)), (1002, 2, (300, 460)))


@dataclass(frozen=True)
class FrameSet:
    frames: list[np.ndarray]  # uint8 BGR, each fitted to the detector's size (longest side <= max_side)
    source: str


def calibration_clip_config(seed: int, faces: int, face_height: tuple[int, int], seconds: float) -> ClipConfig:
    people = max(2, round(faces * seconds / 3.0))
    return ClipConfig(seed=seed, known_lfw=1, known_mfr2=1, strangers=max(1, people - 2), appearances=1,
                      concurrency=faces, seconds_per_track=3.0, face_height=face_height)


def generated_frames(count: int, max_side: int, seconds: float = 6.0) -> FrameSet:
    """``count`` frames spread over the calibration clips, fitted to ``max_side``."""
    frames: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="mfr-detector-calibration-") as scratch:
        for seed, faces, height in CALIBRATION_CLIPS:
            clip = Path(scratch) / str(seed)
            make_clip(clip, calibration_clip_config(seed, faces, height, seconds))
            frames += spread_frames(clip_frames(clip)[0], -(-count // len(CALIBRATION_CLIPS)), max_side)
    seeds = ", ".join(str(seed) for seed, _, _ in CALIBRATION_CLIPS)
    return FrameSet(frames, f"generated 720p clips (seeds {seeds}), fitted to {max_side} px")


def spread_frames(images: list[np.ndarray], count: int, max_side: int) -> list[np.ndarray]:
    """``count`` of ``images`` spread evenly over them, fitted to ``max_side``."""
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    return [fit_longest_side(images[i], max_side)[0] for i in picks]


def folder_frames(folder: Path, count: int, max_side: int, seed: int = 0) -> FrameSet:
    """``count`` images of ``folder`` (recursively, spread by ``seed``), fitted to ``max_side``."""
    pool = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(pool) < min(count, MIN_FRAMES):
        raise DataError(f"{folder}: {len(pool)} images found, detector calibration needs at least {MIN_FRAMES}")
    order = np.random.default_rng(seed).permutation(len(pool))[:count]
    return FrameSet([fit_longest_side(read_image_bgr(pool[i]), max_side)[0] for i in sorted(order)],
                    f"{report_path(folder)} ({min(count, len(pool))} images), fitted to {max_side} px")


def split(frames: FrameSet, heldout: int) -> tuple[FrameSet, FrameSet]:
    """(calibration frames, ``heldout`` frames spread evenly over the set, never calibrated on)."""
    total = len(frames.frames)
    held = set(np.linspace(1, total - 1, min(heldout, total - 1)).round().astype(int).tolist())
    return (replace(frames, frames=[f for i, f in enumerate(frames.frames) if i not in held]),
            replace(frames, frames=[f for i, f in enumerate(frames.frames) if i in held],
                    source=frames.source + ", held out"))


def on_canvas(frames: list[np.ndarray], pad_multiple: int,
              fill: tuple[float, ...]) -> tuple[np.ndarray, tuple[int, int]]:
    """(N, H, W, 3) uint8: every frame at the top left of one canvas (the largest height and width, rounded
    up to ``pad_multiple``), the rest ``fill``; and the canvas size (height, width)."""
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    height, width = padded_size(height, width, pad_multiple)
    canvas = np.empty((len(frames), height, width, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    for i, frame in enumerate(frames):
        canvas[i, :frame.shape[0], :frame.shape[1]] = frame
    return canvas, (height, width)
