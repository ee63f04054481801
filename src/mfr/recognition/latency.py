"""Per-stage latency of the watch loop: samples in milliseconds, summarised as percentiles.

Stages (``STAGES``): capture (waiting for and demuxing a frame), decode, detect, track, align (crops and
normalisation of the faces embedded), embed (the engine), mask (mask state), match (gallery search and
decision), capture_to_event (from the frame's capture to its event written) and capture_to_done (from
the capture to the frame fully processed, every frame: what a camera's latency budget is about). Each keeps its newest
``keep`` samples, so a run of days has bounded memory and the percentiles describe recent behaviour.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

STAGES = ("capture", "decode", "detect", "track", "align", "embed", "mask", "match", "capture_to_event",
          "capture_to_done")


class StageClock:
    def __init__(self, keep: int = 100_000) -> None:
        self.samples: dict[str, deque[float]] = {stage: deque(maxlen=keep) for stage in STAGES}
        self.counts: dict[str, int] = dict.fromkeys(STAGES, 0)

    def add(self, stage: str, milliseconds: float) -> None:
        self.samples[stage].append(milliseconds)
        self.counts[stage] += 1

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, 1000 * (time.perf_counter() - start))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage with samples: count, mean, p50, p95, p99 (ms)."""
        out = {}
        for stage, values in self.samples.items():
            if values:
                data = np.fromiter(values, float)
                p50, p95, p99 = np.percentile(data, [50, 95, 99])
                out[stage] = {"count": self.counts[stage], "mean_ms": round(float(data.mean()), 3),
                              "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
                              "p99_ms": round(float(p99), 3)}
        return out
