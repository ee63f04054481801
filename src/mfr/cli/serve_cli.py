"""``mfr serve``: many cameras, one inference server (NVIDIA Triton Inference Server, Python backend).

Wiring only: the repository, the server process and the model class live in ``mfr.serving``.
Exit codes: 0 after SIGTERM/SIGINT (in-flight requests finished, the server stopped); 1 when a model
cannot be served or the server cannot start or stops on its own (its log's last lines are shown).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import HiddenAliases, log

SERVE_HELP = """Serve model packages or engine directories to many clients through Triton Inference Server.

Each --package becomes a Triton model (named after the manifest's model, or NAME=DIR) run by Triton's
Python backend with mfr's own engine (ONNX Runtime or TensorRT, opened exactly as a camera would).
Triton's dynamic batcher joins concurrent requests into batches of up to --max-batch, waiting at most
--max-queue-delay-us for them. Clients: `mfr watch --engine triton://HOST:PORT/MODEL`, `mfr eval
--package triton://...` (HTTP; triton+grpc://HOST:GRPC_PORT/MODEL for gRPC). Triton's endpoints:
/v2/health/live and /v2/health/ready, Prometheus metrics on the metrics port. Runs until SIGTERM or
Ctrl-C, then finishes in-flight requests and stops.

It listens on 127.0.0.1 unless told otherwise; another --host needs a key ($MFR_SERVE_KEY or
--key-file), and then every API but health refuses a request without the key's header (Triton's
restricted APIs, HTTP and gRPC); clients send it from $MFR_TRITON_KEY. The key travels in clear text:
beyond a trusted network put the server behind TLS (a reverse proxy). It is on tritonserver's command
line, which other users of this machine can list.

The server is `tritonserver` from PATH (a full install), --tritonserver, or the CPU build in the
nvidia-pytriton wheel (`pip install --no-deps nvidia-pytriton`).
"""


def batching_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How Triton batches and runs each model: --max-batch, --max-queue-delay-us, --instances."""
    for option in reversed([
        click.option("--max-batch", type=click.IntRange(1, 4096), default=32, show_default=True,
                     help="Triton's max_batch_size: the largest batch it forms from concurrent requests (at most "
                          "an engine's profile)."),
        click.option("--max-queue-delay-us", type=click.IntRange(0), default=2000, show_default=True,
                     help="Longest a request waits for others to join its batch, in microseconds."),
        click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="Copies of each model running side by side (per device)."),
    ]):
        command = option(command)
    return command


def check_max_batch(model: Any, max_batch: int) -> None:
    """An engine directory's profile bounds the batches Triton may form for it."""
    largest = model.manifest.engine.profile.max if model.manifest.engine else None
    if largest is not None and max_batch > largest:
        raise click.BadParameter(f"{model.directory} takes batches of at most {largest}", param_hint="--max-batch")


def served_models(specs: tuple[str, ...], precision: str | None) -> list[Any]:
    from mfr.serving.repository import ServedModel, check_unique_names

    models = []
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        models.append(ServedModel.open(Path(path), name or None, precision))
    check_unique_names(models)
    return models


SERVE_KEY_ENV = "MFR_SERVE_KEY"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve_key(host: str, key_file: Path | None) -> str | None:
    """The key the server demands (from --key-file, else $MFR_SERVE_KEY; None: none); a server listening
    beyond this machine without one is refused, with what to do. The key is never printed."""
    key = key_file.read_text().strip() if key_file is not None else os.environ.get(SERVE_KEY_ENV, "").strip()
    if key_file is not None and not key:
        raise click.BadParameter(f"{key_file} is empty", param_hint="--key-file")
    if host not in LOOPBACK and not key:
        raise click.UsageError(f"--host {host} would let anyone who reaches the port use the models: set a key in "
                               f"${SERVE_KEY_ENV} or --key-file (clients send it with $MFR_TRITON_KEY), or listen "
                               "on 127.0.0.1")
    if key and not re.fullmatch(r"[A-Za-z0-9._~+/-]{16,256}", key):
        raise click.BadParameter("a key is 16 to 256 characters of letters, digits and ._~+/-",
                                 param_hint=f"${SERVE_KEY_ENV}/--key-file")
    return key or None


@click.command("serve", help=SERVE_HELP)
@click.option("--model", "--package", "--engine", "specs", cls=HiddenAliases, multiple=True, required=True,
              metavar="[NAME=]DIR",
              help="Model package or engine directory to serve; repeat for several (recognition, detection).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Which model of a package (default fp32); an engine directory serves its own.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the server listens on. Anything but this machine's loopback (127.0.0.1, ::1, localhost) "
                   f"needs a key: ${SERVE_KEY_ENV} or --key-file.")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help=f"A file holding the key clients must send (default: ${SERVE_KEY_ENV}); every API but health then "
                   "refuses a request without it. Clients: triton://HOST:PORT/MODEL with $MFR_TRITON_KEY (or ?key=).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="HTTP port; gRPC and metrics default to the next two.")
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=None)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None)
@batching_options
@click.option("--tritonserver", "binary", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The tritonserver binary [default: from PATH, else the nvidia-pytriton wheel's].")
@click.option("--log-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append the server's log here [default: a temporary file, shown when it fails].")
@click.option("--ready-timeout", type=click.FloatRange(1, 3600), default=120.0, show_default=True,
              help="Seconds the models may take to load.")
@click.option("--exit-timeout", type=click.IntRange(0, 3600), default=10, show_default=True,
              help="On SIGTERM: seconds Triton waits for in-flight requests and open client connections.")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as one JSON line when ready.")
def serve_command(specs: tuple[str, ...], precision: str | None, host: str, port: int, grpc_port: int | None,
                  metrics_port: int | None, max_batch: int, max_queue_delay_us: int, instances: int,
                  binary: Path | None, log_file: Path | None, ready_timeout: float, exit_timeout: int,
                  as_json: bool, key_file: Path | None) -> None:
    from mfr.errors import EngineError
    from mfr.serving.model_config import BatchingOptions
    from mfr.serving.serve import endpoints, serve_models
    from mfr.serving.server import ServerPorts, TritonInstall

    key = serve_key(host, key_file)
    models = served_models(specs, precision)
    for model in models:
        check_max_batch(model, max_batch)
    options = BatchingOptions(max_batch, max_queue_delay_us, instances, "cpu")
    ports = ServerPorts.from_http(port, grpc_port, metrics_port)
    install = TritonInstall.locate(binary)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log(f"starting {install.binary} with {len(models)} model(s)")
    with serve_models(models, options, ports, host, install, ready_timeout, log_file, exit_timeout, key=key) as server:
        urls = {m.name: endpoints(m.name, host, ports) for m in models}
        if as_json:
            click.echo(json.dumps({name: asdict(e) for name, e in urls.items()}))
        for name, e in urls.items():
            log(f"serving {name}: {e.http}  {e.grpc}  metrics {e.metrics}")
        log("ready; SIGTERM or Ctrl-C stops the server")
        while not stop.wait(0.5):
            if server.process is not None and server.process.poll() is not None:
                raise EngineError(f"tritonserver stopped on its own (exit code {server.process.returncode}):\n"
                                  f"{server.log_tail()}")
        log(f"stopping: finishing in-flight requests (up to {exit_timeout} s)")
        code = server.stop()
    # Triton exits 1 when clients still held connections at its exit timeout (cameras keep theirs open)
    log(f"server stopped (tritonserver exit code {code}" + (", clients still connected at the exit timeout)"
                                                             if code == 1 else ")"))
