"""How long the exact gallery search takes at a given gallery size: ``mfr bench search``.

Random unit templates and probes of the model's embedding size (the cost of a matrix product does not
depend on the values), one person per template, probes searched in batches as the camera app would.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch
from mfr.runtime.machine import cpu_label, fingerprint


@dataclass(frozen=True)
class SearchResult:
    templates: int
    batch: int
    p50_ms: float  # one batch of probes
    per_probe_us: float


@dataclass
class SearchReport:
    dim: int
    results: list[SearchResult]
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unit(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure_search(sizes: list[int], batch: int = 8, dim: int = 128, rounds: int = 20, seed: int = 0) -> SearchReport:
    rng = np.random.default_rng(seed)
    results = []
    for size in sizes:
        matrix = TemplateMatrix(_unit(rng, size, dim), np.arange(size, dtype=np.int64), np.zeros(size, bool))
        search = ExactSearch(matrix)
        probes, masked = _unit(rng, batch, dim), np.zeros(batch, bool)
        search.top_people(probes, masked)  # warm-up
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            search.top_people(probes, masked)
            times.append(time.perf_counter() - started)
        p50 = float(np.median(times)) * 1000
        results.append(SearchResult(size, batch, round(p50, 3), round(1000 * p50 / batch, 1)))
    return SearchReport(dim, results)


def markdown_table(report: SearchReport) -> str:
    lines = ["| templates | probes per call | p50 ms per call | µs per probe |", "|---:|---:|---:|---:|"]
    lines += [f"| {r.templates:,} | {r.batch} | {r.p50_ms:.2f} | {r.per_probe_us:.0f} |" for r in report.results]
    lines += ["", f"exact search, {report.dim}-d templates; {cpu_label(report.machine)}"]
    return "\n".join(lines)
