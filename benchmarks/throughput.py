"""CPU throughput of a package's FP32 and INT8 models, measured interleaved so their ratio is fair.

A stand-in until ``mfr bench latency`` (issue 6): same batch, same random input, rounds alternating
between the models after a warm-up, median time per round.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mfr.manifest import load_manifest
from mfr.runtime.embedder import model_file


def measure_throughput(package: Path, precisions: tuple[str, ...] = ("fp32", "int8"), batch: int = 64,
                       rounds: int = 10, warmup: int = 2) -> dict[str, dict[str, float]]:
    manifest = load_manifest(package)
    height, width = manifest.spec.input_size or (112, 112)
    data = np.random.default_rng(0).standard_normal((batch, 3, height, width), dtype=np.float32)
    sessions = {p: ort.InferenceSession(str(model_file(package, manifest, p)), providers=["CPUExecutionProvider"])
                for p in precisions}
    feed = {manifest.inputs[0].name: data}
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for index in range(warmup + rounds):
        for precision, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            if index >= warmup:
                times[precision].append(time.perf_counter() - start)
    return {p: {"ms_per_face": 1000 * float(np.median(t)) / batch, "faces_per_s": batch / float(np.median(t)),
                "batch": batch, "rounds": rounds} for p, t in times.items()}
