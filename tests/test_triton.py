"""Serving through a real Triton Inference Server: ``tritonserver`` from the nvidia-pytriton wheel (CPU, Python
backend) on loopback, real LFW faces, real clients (tritonclient over HTTP and gRPC).

The expectations come from outside the code under test: the local engine's embeddings of the same faces,
Triton's own statistics of the batches it formed, Triton's own refusals of malformed requests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.errors import EngineError, EngineUnavailable
from mfr.runtime import read_image_bgr
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.engine_load import open_model
from mfr.runtime.engine_triton import TritonAddress, is_triton_url, open_triton
from mfr.serving.server import ServerPorts, TritonInstall, TritonServer
from tests.conftest import free_port

tritonclient_http = pytest.importorskip("tritonclient.http")


def _install() -> TritonInstall:
    try:
        return TritonInstall.locate()
    except EngineError as exc:
        pytest.skip(f"no Triton server here: {exc}")


def free_ports() -> ServerPorts:
    return ServerPorts(free_port(), free_port(), free_port())


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    from mfr.data.lfw import sample_images

    return np.stack([read_image_bgr(p) for p in sample_images(24)])


@pytest.fixture(scope="module")
def min4_engine(thresholded_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An engine whose profile refuses batches below 4 (as a TensorRT engine built with --min-batch 4 does)."""
    from mfr.cli.export_cli import cli as export_cli

    out = tmp_path_factory.mktemp("engine") / "min4"
    result = CliRunner().invoke(export_cli, ["build-engine", "--package", str(thresholded_package), "--out", str(out),
                                             "--backend", "onnxruntime", "--min-batch", "4", "--max-batch", "16"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def served(thresholded_package: Path, retinaface_package: Path,
           min4_engine: Path) -> Iterator[tuple[TritonServer, ServerPorts]]:
    """mfr's recognition and detection packages (and an engine with a minimum batch) served by a real
    tritonserver; yields (server, ports)."""
    from mfr.serving.model_config import BatchingOptions
    from mfr.serving.repository import ServedModel
    from mfr.serving.serve import serve_models

    ports = free_ports()
    models = [ServedModel.open(thresholded_package, "faces"), ServedModel.open(retinaface_package, "detector"),
              ServedModel.open(min4_engine, "min4")]
    with serve_models(models, BatchingOptions(max_batch=16, max_queue_delay_us=10_000), ports, "127.0.0.1",
                      _install()) as server:
        yield server, ports


def url(ports: ServerPorts, protocol: str = "http", query: str = "") -> str:
    scheme, port = ("triton", ports.http) if protocol == "http" else ("triton+grpc", ports.grpc)
    return f"{scheme}://127.0.0.1:{port}/faces" + (f"?{query}" if query else "")


def test_addresses_parse_and_bad_ones_are_refused():
    address = TritonAddress.parse("triton+grpc://gpu-1:9001/faces/2?timeout=3&retries=0")
    assert (address.protocol, address.host, address.port, address.model, address.version) == ("grpc", "gpu-1", 9001,
                                                                                               "faces", "2")
    assert (address.timeout_s, address.retries, str(address)) == (3.0, 0, "triton+grpc://gpu-1:9001/faces/2")
    assert TritonAddress.parse("triton://box/faces").port == 8000
    assert is_triton_url("triton://box/faces") and not is_triton_url("out/triton") and not is_triton_url(Path("x"))
    for bad in ("triton://box", "triton://box/a/b/c", "triton://box/faces?color=red", "triton://box/faces?timeout=0"):
        with pytest.raises(EngineError, match="triton"):
            TritonAddress.parse(bad)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_embeddings_equal_the_local_engine(served, thresholded_package, faces, protocol):
    _, ports = served
    local = FaceEmbedder.open(thresholded_package)
    remote = FaceEmbedder.open(url(ports, protocol))
    assert remote.manifest.spec == local.manifest.spec  # the preprocessing spec came with the model
    assert remote.fingerprint() == local.fingerprint()  # a gallery enrolled locally is usable through the server
    assert remote.model_sha256() != local.model_sha256()  # ...but cached evaluations are never shared
    for flip in (False, True):
        cosines = np.sum(remote.embed_crops(faces, flip=flip) * local.embed_crops(faces, flip=flip), axis=1)
        assert cosines.min() >= 0.9999, cosines.min()
    # more faces than the server's max_batch_size (16): split into calls like any engine's profile
    assert remote.engine.profile.max == 16 and len(faces) > 16
    remote.engine.close()


def test_an_engine_with_a_minimum_batch_serves_single_faces(served, min4_engine, faces):
    _, ports = served
    with open_model(min4_engine) as local:
        with pytest.raises(EngineError, match="outside the engine's profile"):  # what the server must avoid
            local.infer(np.zeros((1, 3, 112, 112), np.float32))
        remote = FaceEmbedder.open(f"triton://127.0.0.1:{ports.http}/min4")
        expected = FaceEmbedder(local).embed_crops(np.concatenate([faces[:1]] * 4))[:1]
        assert np.sum(remote.embed_crops(faces[:1]) * expected) >= 0.9999  # one face, padded on the server


def test_a_served_detector_finds_the_faces_the_local_one_finds(served, retinaface_package):
    from mfr.paths import dataset_dir
    from mfr.runtime.package_detector import PackageDetector

    _, ports = served
    local = PackageDetector(retinaface_package)
    remote = PackageDetector(f"triton+grpc://127.0.0.1:{ports.grpc}/detector")
    for photo in sorted(dataset_dir("demo").rglob("*.jpg"))[:3]:
        image = read_image_bgr(photo)
        near, far = local.detect(image), remote.detect(image)  # different image sizes: one shape per request
        assert len(near) == len(far) > 0
        for a, b in zip(near, far, strict=True):
            assert np.abs(a.box - b.box).max() < 0.5 and np.abs(a.landmarks - b.landmarks).max() < 0.5


def test_concurrent_clients_are_batched_by_the_server(served, thresholded_package, faces):
    _, ports = served
    engine = open_triton(url(ports))
    batch = FaceEmbedder(engine)
    before = engine.executed_batches()
    clients, calls = 8, 4
    barrier = threading.Barrier(clients)
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            barrier.wait()
            for _ in range(calls):
                batch.embed_crops(faces[index:index + 1])  # one connection per thread
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    after = engine.executed_batches()
    formed = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * count for size, count in formed.items()) == clients * calls  # every face, once
    assert max(size for size, count in formed.items() if count) > 1, formed  # Triton joined requests
    engine.close()


def test_bad_requests_get_tritons_error_not_a_hang(served, faces):
    from tritonclient.utils import InferenceServerException

    _, ports = served
    client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{ports.http}", network_timeout=20)
    for array, datatype in ((np.zeros((1, 3, 100, 100), np.float32), "FP32"),  # wrong shape
                            (np.zeros((1, 3, 112, 112), np.int32), "INT32"),  # wrong dtype
                            (np.zeros((17, 3, 112, 112), np.float32), "FP32")):  # above max_batch_size
        tensor = tritonclient_http.InferInput("input", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        started = time.monotonic()
        with pytest.raises(InferenceServerException) as refused:
            client.infer("faces", [tensor])
        assert time.monotonic() - started < 10
        assert any(word in str(refused.value) for word in ("shape", "dims", "data-type", "datatype", "batch")), \
            str(refused.value)
    client.close()
    engine = open_model(url(ports))
    with pytest.raises(EngineError, match="shape"):  # refused before sending, like every engine
        engine.infer(np.zeros((1, 3, 100, 100), np.float32))
    with pytest.raises(EngineError, match="unknown model|not found|nobody"):
        open_model(f"triton://127.0.0.1:{ports.http}/nobody")
    engine.close()


def test_a_served_model_is_evaluated_like_a_local_one(served, thresholded_package, tmp_path):
    from mfr.cli.main import cli

    _, ports = served
    results = {}
    for label, package in (("local", str(thresholded_package)), ("served", url(ports, "grpc"))):
        out = tmp_path / f"{label}.json"
        result = CliRunner().invoke(cli, ["eval", "--model", package, "--dataset", "lfw", "--folds", "1",
                                          "--no-cache", "--bootstrap", "0", "--json", str(out)])
        assert result.exit_code == 0, result.output
        results[label] = json.loads(out.read_text())
    local, served_report = results["local"], results["served"]
    assert served_report["package"] == url(ports, "grpc")
    assert served_report["accuracy"] == pytest.approx(local["accuracy"], abs=1 / 600 + 1e-9)
    assert served_report["eer"] == pytest.approx(local["eer"], abs=1 / 300 + 1e-9)


def _serve_command(package: Path, ports: ServerPorts, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "mfr.cli.main", "serve", "--model", f"faces={package}", "--host", host, "--port",
            str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics), "--exit-timeout",
            "3", "--json"]


def _serve_process(package: Path, ports: ServerPorts, log: Path, host: str = "127.0.0.1",
                   env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(_serve_command(package, ports, host), stdout=subprocess.PIPE,  # noqa: SIM115
                               stderr=open(log, "ab"), text=True, env={**os.environ, **(env or {})})
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"mfr serve printed nothing: {log.read_text()}"
    assert json.loads(line)["faces"]["http"] == f"triton://127.0.0.1:{ports.http}/faces"
    return process


def test_mfr_serve_stops_on_sigterm_and_a_client_reconnects_after_a_restart(thresholded_package, faces, tmp_path):
    _install()
    ports, log = free_ports(), tmp_path / "serve.log"
    process = _serve_process(thresholded_package, ports, log)
    try:
        for endpoint in ("v2/health/live", "v2/health/ready"):
            with urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/{endpoint}", timeout=5) as answer:
                assert answer.status == 200
        embedder = FaceEmbedder.open(url(ports, query="retries=1&timeout=5"))
        first = embedder.embed_crops(faces[:4])
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'nv_inference_count{model="faces",version="1"} 4' in metrics  # Triton's Prometheus metrics

        embedder.engine.close()  # a client that hangs up: nothing holds the server at SIGTERM
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "server stopped (tritonserver exit code 0)" in log.read_text()
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:\d+/faces: server not reachable .* 2 attempt"):
            embedder.embed_crops(faces[:4])
        assert time.monotonic() - started < 15  # a clear error, not a hang

        process = _serve_process(thresholded_package, ports, log)  # restarted on the same ports
        again = embedder.embed_crops(faces[:4])  # the same client object reconnects
        assert np.sum(first * again, axis=1).min() >= 0.9999
        # a client still connected (as cameras stay) holds a stopping server for its exit timeout, no longer
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert time.monotonic() - started < 3 + 15
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    leftovers = subprocess.run(["pgrep", "-f", f"http-port={ports.http}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "tritonserver still running after mfr serve stopped"


def test_serve_refuses_what_it_cannot_serve(thresholded_package, tmp_path):
    from mfr.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 1 and "manifest.json" in result.output
    result = CliRunner().invoke(cli, ["serve", "--model", f"a={thresholded_package}", "--model",
                                      f"a={thresholded_package}", "--tritonserver", sys.executable])
    assert result.exit_code == 1 and "NAME=DIR" in result.output, result.output
    assert os.path.isdir(thresholded_package)


def test_a_camera_keeps_watching_through_a_server_restart(small_clip, thresholded_package, tmp_path):
    """``mfr watch --engine triton://...`` on a real-time clip while the server is stopped and started again:
    tracking goes on, naming pauses (one event) and resumes (one event), strangers stay unnamed."""
    from mfr.cli.main import cli

    _install()
    gallery = tmp_path / "g.db"  # enrolled through the local package: the same model fingerprint
    result = CliRunner().invoke(cli, ["gallery", "enroll-dir", str(small_clip / "enrol"), "--gallery", str(gallery),
                                      "--model", str(thresholded_package), "--detector", "yunet"])
    assert result.exit_code == 0, result.output
    ports, log, events = free_ports(), tmp_path / "serve.log", tmp_path / "events.jsonl"
    server = _serve_process(thresholded_package, ports, log)
    watch = subprocess.Popen([sys.executable, "-m", "mfr.cli.main", "watch", "--source", str(small_clip / "clip.mp4"),
                              "--realtime", "--gallery", str(gallery), "--model",
                              url(ports, query="retries=1&timeout=2"), "--detector", "yunet", "--events", str(events),
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        time.sleep(1)
        server = _serve_process(thresholded_package, ports, log)
        _, errors = watch.communicate(timeout=120)
        assert watch.returncode == 0, errors
    finally:
        for process in (watch, server):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    from tests.test_watch import names_by_appearance

    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    states = [e["state"] for e in recorded if e["kind"] == "source_status" and e["state"].startswith("recognition")]
    assert states == ["recognition_paused", "recognition_resumed"], states
    paused = next(i for i, e in enumerate(recorded) if e.get("state") == "recognition_paused")
    resumed = next(i for i, e in enumerate(recorded) if e.get("state") == "recognition_resumed")
    assert "server not reachable" in recorded[paused]["detail"]
    named = [e for e in recorded if e["kind"] == "identified" and e["name"]]
    assert any(recorded.index(e) < paused for e in named) and any(recorded.index(e) > resumed for e in named)
    truth = json.loads((small_clip / "truth.json").read_text())
    strangers = [a["actor"] for a in truth["actors"] if not a["enrolled"]]
    by_appearance = names_by_appearance(recorded, truth)
    assert not [a for a in strangers if by_appearance[a] - {None}]


def test_the_concurrency_benchmark_reports_the_batches_the_server_formed(served, thresholded_package):
    from mfr.benchmarks.concurrency import markdown_table, measure_concurrency

    _, ports = served
    report = measure_concurrency({"local": thresholded_package, "served": url(ports)}, [2], batch=2, seconds=1.0)
    local, remote = report.results
    assert (local.engine, remote.engine, local.clients, remote.clients) == ("local", "served", 2, 2)
    assert local.server_batches is None and local.calls > 0 and remote.calls > 0
    assert remote.server_batches, remote
    # Triton's own count: every call of 2 faces in a batch it ran, at most its max_batch_size, and at least
    # the calls timed in the window (it also ran those made while the clients settled)
    assert all(size % 2 == 0 and size <= 16 for size in remote.server_batches)
    assert sum(size * count for size, count in remote.server_batches.items()) >= 2 * remote.calls
    assert remote.faces_per_s == pytest.approx(2 * remote.calls / 1.0)
    assert "| served |" in markdown_table(report) and "runs" in markdown_table(report)


def test_a_server_beyond_loopback_needs_a_key_and_refuses_clients_without_it(thresholded_package, faces, tmp_path,
                                                                              monkeypatch):
    """mfr serve listens on 127.0.0.1 by default; elsewhere without a key it refuses to start. With a key,
    the real tritonserver refuses every call without it (HTTP and gRPC) and serves a client that sends it;
    the key appears in no message."""
    from mfr.runtime.engine_load import open_engine

    _install()
    open_host = subprocess.run(_serve_command(thresholded_package, free_ports(), "0.0.0.0"), capture_output=True,
                               text=True, timeout=120, env={**os.environ, "MFR_SERVE_KEY": ""}, check=False)
    assert open_host.returncode == 2 and "MFR_SERVE_KEY" in open_host.stderr, open_host.stderr
    key = "k3y-" + "x" * 20
    ports, log = free_ports(), tmp_path / "serve.log"
    server = _serve_process(thresholded_package, ports, log, host="0.0.0.0", env={"MFR_SERVE_KEY": key})
    try:
        monkeypatch.delenv("MFR_TRITON_KEY", raising=False)
        for protocol in ("http", "grpc"):
            with pytest.raises(EngineError) as refused:
                open_engine(url(ports, protocol, query="retries=0"))
            assert key not in str(refused.value)
            with pytest.raises(EngineError) as wrong:
                open_engine(url(ports, protocol, query="retries=0&key=wrong-key-0123456789"))
            assert "wrong-key" not in str(wrong.value)
            local = FaceEmbedder.open(thresholded_package)
            remote = FaceEmbedder.open(url(ports, protocol, query=f"key={key}"))
            assert np.sum(remote.embed_crops(faces[:4]) * local.embed_crops(faces[:4]), axis=1).min() >= 0.9999
        monkeypatch.setenv("MFR_TRITON_KEY", key)
        assert FaceEmbedder.open(url(ports)).embed_crops(faces[:2]).shape[0] == 2
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert key not in log.read_text()
