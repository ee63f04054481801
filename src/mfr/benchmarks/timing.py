"""Timing several jobs fairly against each other: interleaved in blocks, warm-up calls untimed.

The jobs take turns in blocks (A, B, A, B, ...) so a machine that slows down slows all of them alike;
each block starts after ``pause_s`` and ``warmup`` untimed calls, so what one job leaves behind (ONNX
Runtime's spinning worker threads, cold caches) does not land in the next job's figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any


def interleaved_times(jobs: Mapping[str, Callable[[], Any]], rounds: int, block: int, warmup: int,
                      pause_s: float = 0.0) -> dict[str, list[float]]:
    """``rounds`` timed seconds per job."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for first in range(0, rounds, block):
        for name, job in jobs.items():
            time.sleep(pause_s)
            for index in range(warmup + min(block, rounds - first)):
                started = time.perf_counter()
                job()
                if index >= warmup:
                    times[name].append(time.perf_counter() - started)
    return times
