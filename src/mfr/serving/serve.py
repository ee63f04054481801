"""``mfr serve``'s job: a Python-backend repository of the given models in a temporary folder, a Triton
server on it, and, on leaving, the server stopped gracefully and the folder removed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mfr.serving.model_config import BatchingOptions
from mfr.serving.repository import ServedModel, write_python_repository
from mfr.serving.server import ServerPorts, TritonInstall, TritonServer


@dataclass(frozen=True)
class Endpoints:
    """Where clients reach one served model."""

    http: str  # triton://HOST:PORT/MODEL
    grpc: str  # triton+grpc://HOST:PORT/MODEL
    metrics: str  # http://HOST:PORT/metrics (Prometheus)


def endpoints(model: str, host: str, ports: ServerPorts) -> Endpoints:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return Endpoints(f"triton://{shown}:{ports.http}/{model}", f"triton+grpc://{shown}:{ports.grpc}/{model}",
                     f"http://{shown}:{ports.metrics}/metrics")


@contextmanager
def serve_models(models: list[ServedModel], options: BatchingOptions, ports: ServerPorts, host: str = "127.0.0.1",
                 install: TritonInstall | None = None, ready_timeout_s: float = 120.0,
                 log_path: Path | None = None, exit_timeout_s: int = 30,
                 verbose: bool = False, key: str | None = None) -> Iterator[TritonServer]:
    """A ready Triton server for ``models``; stopped (SIGTERM, in-flight requests finished) on leaving;
    with ``key``, refusing every request without it (``TritonServer.restricted``)."""
    install = install or TritonInstall.locate()
    work_dir = Path(tempfile.mkdtemp(prefix="mfr-serve-"))
    try:
        repository = write_python_repository(models, work_dir / "models", options)
        server = TritonServer(install, repository, work_dir, ports, host, exit_timeout_s, log_path, verbose, key)
        with server:
            yield server.start(ready_timeout_s)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
