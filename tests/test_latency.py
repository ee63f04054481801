"""``measure_latency`` against engines whose call time is known in advance.

A real model's speed is not known before it is measured, so these engines sleep a fixed time per face:
the harness must report at least that latency, throughput no higher than it allows, ratios in the
right direction, and the number of calls a batch above the profile needs. The bounds are one-sided
where the machine can only make things slower.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mfr.benchmarks.latency import measure_latency
from mfr.manifest import BatchProfile
from mfr.registry import MODELS
from mfr.runtime.engine import Engine


class PacedEngine(Engine):
    """An engine that takes ``seconds_per_face`` per input and returns zeros."""

    backend = "paced"

    def __init__(self, seconds_per_face: float, max_batch: int) -> None:
        from mfr.manifest import Manifest, TensorInfo

        manifest = Manifest(model="paced", kind="recognition", spec=MODELS["mobilefacenet"].spec, files={},
                            inputs=[TensorInfo("input", ["batch", 3, 112, 112], "float32")],
                            outputs=[TensorInfo("embedding", ["batch", 128], "float32")], sha256={}, versions={})
        super().__init__(Path("paced"), manifest, Path("paced.onnx"), BatchProfile(1, max_batch, max_batch))
        self.seconds_per_face = seconds_per_face

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(self.seconds_per_face * len(inputs))
        return {"embedding": np.zeros((len(inputs), 128), np.float32)}


def test_latency_and_throughput_follow_the_known_call_time():
    slow, fast = PacedEngine(0.004, max_batch=3), PacedEngine(0.002, max_batch=8)
    report = measure_latency({"slow": slow, "fast": fast}, [1, 4], rounds=4, warmup=1, block=2, pause_s=0)
    by = {(r.engine, r.batch): r for r in report.results}
    for (name, batch), result in by.items():
        per_face = {"slow": 0.004, "fast": 0.002}[name]
        assert result.p50_ms >= 1000 * per_face * batch  # a sleep never returns early
        assert result.faces_per_s <= 1 / per_face
        assert result.faces_per_s >= 0.3 / per_face  # the harness adds little to a call
    assert by[("slow", 4)].calls_per_batch == 2 and by[("fast", 4)].calls_per_batch == 1
    ratio = report.ratios()["fast"]["4"]
    assert 1.3 < ratio < 3.0  # half the time per face: about twice the throughput of the first engine
    assert set(report.ratios()) == {"fast"}


@pytest.mark.parametrize("rounds, block", [(5, 2), (3, 10)])
def test_every_engine_gets_the_requested_number_of_timed_calls(rounds, block):
    engine = PacedEngine(0.0, max_batch=4)
    calls = []
    original = engine._infer_once
    engine._infer_once = lambda inputs: calls.append(len(inputs)) or original(inputs)  # type: ignore[method-assign]
    report = measure_latency({"e": engine}, [2], rounds=rounds, warmup=1, block=block, pause_s=0)
    assert report.results[0].rounds == rounds
    blocks = -(-rounds // block)
    assert len(calls) == rounds + blocks  # one untimed warm-up call per block


@pytest.mark.parametrize("flags, expected", [
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni", "AVX-512 VNNI"),
    ("flags\t\t: fpu sse2 avx2 avx_vnni", "AVX-VNNI"),
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw", "AVX-512 without VNNI"),
    ("flags\t\t: fpu sse2 fma avx2", "AVX2 without VNNI"),
    ("Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
     "Arm dot product"),
])
def test_the_int8_instruction_set_is_read_from_the_cpu_flags(flags, expected):
    from mfr.runtime.machine import instruction_set

    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\n{flags}\n\nprocessor\t: 1\n{flags}\n"
    assert instruction_set(cpuinfo) == expected
    assert instruction_set("processor\t: 0\n").startswith("unknown")


def test_the_pipeline_reports_a_real_middle_round_not_the_best_or_an_average():
    from mfr.benchmarks.pipeline import median_round

    rounds = [{"frames_per_second": fps, "latency": {"embed": fps}} for fps in (90.0, 60.0, 102.0, 75.0)]
    chosen = median_round(rounds)
    assert chosen["frames_per_second"] == 75.0  # lower middle of 60, 75, 90, 102: not the best round
    assert chosen["latency"] == {"embed": 75.0}  # the same round's stages, not a mix
    assert median_round(rounds[:3])["frames_per_second"] == 90.0
