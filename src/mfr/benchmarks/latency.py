"""Latency and throughput of engines, measured interleaved so their ratios are fair.

For each batch size the engines take turns in blocks (A, B, A, B, ...), so a machine that slows down
(heat, another process) slows all of them alike. Turns are blocks of calls, not single calls, and
each block starts with a short pause and untimed warm-up calls: ONNX Runtime's worker threads spin
for a while after a call, and on a small CPU the spinning threads of the engine that just ran slowed
the next engine by up to 1.6x when the calls alternated one by one (measured on the 2-core CI
machine: MobileFaceNet FP32 vs INT8 at batch 32 came out 2.2x one by one, 2.6x in blocks and 2.6x
with each engine alone). A call is one ``infer`` from host memory to host memory (upload, run,
download): what an application sees. Each engine gets a random batch of its input shape; the data does not
change the work of these models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from mfr.benchmarks.timing import interleaved_times
from mfr.runtime.engine import Engine
from mfr.runtime.machine import cpu_label, fingerprint


@dataclass(frozen=True)
class LatencyResult:
    engine: str  # label: the directory as given
    description: str
    batch: int
    rounds: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    faces_per_s: float  # batch / median latency
    calls_per_batch: int  # > 1 when the batch exceeds the engine's profile and is split
    percentiles_ms: list[float] = field(default_factory=list)  # the 0th, 5th, ..., 100th: the latency CDF


@dataclass
class LatencyReport:
    results: list[LatencyResult]
    warmup: int  # untimed calls at the start of each block
    rounds: int  # timed calls per engine and batch size
    block: int  # timed calls per turn
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = self.ratios()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyReport:
        """The report ``to_dict`` wrote (the ratios are recomputed from the results)."""
        return cls([LatencyResult(**r) for r in data["results"]], data["warmup"], data["rounds"], data["block"],
                   data["machine"])

    def ratios(self) -> dict[str, dict[str, float]]:
        """Throughput of each engine relative to the first one, per batch size."""
        out: dict[str, dict[str, float]] = {}
        base = {r.batch: r for r in self.results if r.engine == self.results[0].engine}
        for r in self.results:
            if r.engine != self.results[0].engine and r.batch in base:
                out.setdefault(r.engine, {})[str(r.batch)] = round(r.faces_per_s / base[r.batch].faces_per_s, 3)
        return out


def engine_input(engine: Engine, batch: int, rng: np.random.Generator) -> np.ndarray:
    size = engine.input.fixed_hw() or (640, 640)  # detectors: a VGA-sized frame
    return rng.standard_normal((batch, int(engine.input.shape[1]), *size), dtype=np.float32)


def measure_latency(engines: dict[str, Engine], batches: list[int], rounds: int = 50, warmup: int = 2,
                    block: int = 10, pause_s: float = 0.05, seed: int = 0) -> LatencyReport:
    """p50/p95/p99 latency and throughput of every engine at every batch size, interleaved in blocks."""
    rng = np.random.default_rng(seed)
    results = []
    for batch in batches:
        jobs = {label: partial(engine.infer, engine_input(engine, batch, rng)) for label, engine in engines.items()}
        times = interleaved_times(jobs, rounds, block, warmup, pause_s)  # the pause lets spinning threads park
        for label, engine in engines.items():
            ms = 1000 * np.asarray(times[label])
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            results.append(LatencyResult(
                engine=label, description=engine.describe(), batch=batch, rounds=rounds,
                p50_ms=round(float(p50), 3), p95_ms=round(float(p95), 3), p99_ms=round(float(p99), 3),
                mean_ms=round(float(ms.mean()), 3), faces_per_s=round(batch / (float(p50) / 1000), 1),
                calls_per_batch=-(-batch // engine.profile.max),
                percentiles_ms=[round(float(v), 3) for v in np.percentile(ms, np.arange(0, 101, 5))],
            ))
    return LatencyReport(results, warmup, rounds, block)


def markdown_table(report: LatencyReport) -> str:
    ratios = report.ratios()
    first = report.results[0].engine
    lines = [f"| engine | model | batch | p50 ms | p95 ms | p99 ms | faces/s | vs {first} |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report.results:
        ratio = "1.00x" if r.engine == first else f"{ratios[r.engine][str(r.batch)]:.2f}x"
        split = f" ({r.calls_per_batch} calls)" if r.calls_per_batch > 1 else ""
        lines.append(f"| {r.engine} | {r.description} | {r.batch}{split} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | "
                     f"{r.p99_ms:.2f} | {r.faces_per_s:.0f} | {ratio} |")
    machine = report.machine
    where = machine["gpu"]["name"] if machine.get("gpu") else cpu_label(machine)
    lines += ["", f"{report.rounds} timed calls per engine and batch size, interleaved in blocks of {report.block} "
                  f"(each after {report.warmup} untimed calls); {where}; "
                  f"ONNX Runtime {machine['onnxruntime']}, TensorRT {machine['tensorrt'] or 'absent'}"]
    return "\n".join(lines)
