"""Throughput and latency with many concurrent clients (cameras): local engines against a served model.

Each client is its own process, as each camera's ``mfr watch`` is: it opens the model the way a camera
would (``open_model``: a local engine of its own, or a connection to the server), warms up, waits for
the others, then calls ``infer`` with a batch of ``batch`` faces for the same ``seconds`` of wall time.
Throughput is every face answered in that window over its length; latency percentiles are over every
call of every client. For a served model the server's own statistics, read before and after, say which
batch sizes its dynamic batcher formed from the clients' requests.

Models are measured one after the other for each number of clients, alternating which goes first, so a
machine that slows down affects both alike; the report states the client count, window and machine.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.benchmarks.latency import engine_input
from mfr.errors import EngineError
from mfr.runtime.engine_load import open_model
from mfr.runtime.engine_triton import is_triton_url
from mfr.runtime.machine import cpu_label, fingerprint

WARMUP_CALLS = 3


@dataclass(frozen=True)
class ConcurrencyResult:
    engine: str  # label: the location as given
    description: str
    clients: int
    batch: int  # faces per call of each client
    seconds: float  # the measured window
    calls: int
    faces_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # served models: the server's executions per batch size while the clients ran (settling and window)
    server_batches: dict[int, int] | None = None

    def mean_server_batch(self) -> float | None:
        if not self.server_batches:
            return None
        runs = sum(self.server_batches.values())
        return sum(size * count for size, count in self.server_batches.items()) / runs


@dataclass
class ConcurrencyReport:
    results: list[ConcurrencyResult]
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for entry, result in zip(data["results"], self.results, strict=True):
            entry["mean_server_batch"] = result.mean_server_batch()
        return data


def _client(location: str, batch: int, ready: Any, go: Any, window: Any, answers: Any) -> None:
    """One client process: open, warm up, report ready, wait, call until the window closes."""
    try:
        with open_model(location) as engine:
            inputs = engine_input(engine, batch, np.random.default_rng())
            for _ in range(WARMUP_CALLS):
                engine.infer(inputs)
            ready.put(None)
            go.wait()
            start, stop = window[0], window[1]
            latencies = []
            while (now := time.monotonic()) < stop:
                engine.infer(inputs)
                if now >= start:
                    latencies.append(time.monotonic() - now)
            answers.put(("ok", latencies))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails with it
        ready.put(None)
        answers.put(("error", f"{type(exc).__name__}: {exc}"))


def _batch_counts(location: str) -> dict[int, int] | None:
    if not is_triton_url(location):
        return None
    with open_model(location) as engine:
        return dict(engine.executed_batches())  # type: ignore[attr-defined]


def _run(location: str, clients: int, batch: int, seconds: float, settle_s: float, timeout_s: float) -> tuple[
        list[float], dict[int, int] | None]:
    context = multiprocessing.get_context("spawn")
    ready, answers, go = context.Queue(), context.Queue(), context.Event()
    window = context.Array("d", 2)
    processes = [context.Process(target=_client, args=(location, batch, ready, go, window, answers), daemon=True)
                 for _ in range(clients)]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=timeout_s)
        before = _batch_counts(location)
        window[0] = time.monotonic() + settle_s
        window[1] = window[0] + seconds
        go.set()
        results = [answers.get(timeout=timeout_s + seconds) for _ in processes]
        after = _batch_counts(location)
    except queue_module.Empty:
        raise EngineError(f"{location}: a benchmark client did not answer within {timeout_s:.0f} s") from None
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [detail for status, detail in results if status == "error"]
    if errors:
        raise EngineError(f"{location}: a benchmark client failed: {errors[0]}")
    latencies = [t for _, detail in results for t in detail]
    formed = None
    if before is not None and after is not None:
        formed = {size: after.get(size, 0) - before.get(size, 0) for size in sorted(after)
                  if after.get(size, 0) > before.get(size, 0)}
    return latencies, formed


def measure_concurrency(locations: dict[str, Path | str], clients: list[int], batch: int = 1,
                        seconds: float = 10.0, settle_s: float = 0.5, timeout_s: float = 120.0) -> ConcurrencyReport:
    """Every model location at every client count (see the module's docstring)."""
    descriptions = {}
    for label, location in locations.items():
        with open_model(location) as engine:
            descriptions[label] = engine.describe()
    results = []
    for turn, count in enumerate(clients):
        order = list(locations.items())
        if turn % 2:
            order.reverse()
        measured = {}
        for label, location in order:
            latencies, formed = _run(str(location), count, batch, seconds, settle_s, timeout_s)
            ms = 1000 * np.asarray(latencies)
            p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (np.nan,) * 3
            measured[label] = ConcurrencyResult(
                engine=label, description=descriptions[label], clients=count, batch=batch, seconds=seconds,
                calls=len(latencies), faces_per_s=round(len(latencies) * batch / seconds, 1),
                p50_ms=round(float(p50), 3), p95_ms=round(float(p95), 3), p99_ms=round(float(p99), 3),
                server_batches=formed)
        results += [measured[label] for label in locations]
    return ConcurrencyReport(results)


def markdown_table(report: ConcurrencyReport) -> str:
    lines = ["| engine | model | clients | faces/call | faces/s | p50 ms | p95 ms | p99 ms | server batches |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.results:
        formed = "-"
        if r.server_batches:
            mean = r.mean_server_batch()
            formed = f"mean {mean:.1f}, largest {max(r.server_batches)}, runs {sum(r.server_batches.values())}"
        lines.append(f"| {r.engine} | {r.description} | {r.clients} | {r.batch} | {r.faces_per_s:.0f} | "
                     f"{r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {formed} |")
    machine = report.machine
    where = machine["gpu"]["name"] if machine.get("gpu") else cpu_label(machine)
    window = report.results[0].seconds if report.results else 0
    lines += ["", f"each client a process with its own engine or server connection, {window:g} s window per row; "
                  f"{where}; ONNX Runtime {machine['onnxruntime']}"]
    return "\n".join(lines)
