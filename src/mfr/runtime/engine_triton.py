"""Triton Inference Server backend of the engine interface: a model served by ``mfr serve`` (or any Triton
server holding a repository from ``mfr-export triton``) used exactly like a local engine.

``triton://HOST[:PORT]/MODEL[/VERSION]`` speaks HTTP (default port 8000), ``triton+grpc://`` gRPC (8001).
Query parameters: ``timeout`` (seconds per call, default 10), ``retries`` (attempts after a connection
failure, default 3), ``package`` (a local package whose manifest describes the model, for servers
whose model configuration does not carry one) and ``key`` (the key of a server started with one, sent in
the ``KEY_HEADER`` header of every call; default ``$MFR_TRITON_KEY``). A key is never part of what an
address prints (logs, errors, events).

The manifest, and with it the preprocessing spec, travels with the model: mfr writes it into the model
configuration's ``parameters`` (``mfr_manifest``), where a client reads it at open. A call that cannot
reach the server is retried with backoff on a fresh connection (a restarted server is reconnected to),
then fails with ``EngineUnavailable`` naming the address; what the server refuses (wrong shape, unknown
model) fails at once with Triton's own message. Connections are per thread: the HTTP client is not
thread-safe, and separate connections let the server batch concurrent calls.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from mfr.errors import EngineError, EngineUnavailable, ManifestError
from mfr.manifest import BatchProfile, Manifest, load_manifest
from mfr.runtime.engine import Engine

SCHEMES = {"triton": "http", "triton+http": "http", "triton+grpc": "grpc"}
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
KEY_HEADER = "mfr-key"  # the header a server started with a key (mfr serve, $MFR_SERVE_KEY) expects
KEY_ENV = "MFR_TRITON_KEY"


def redacted(url: str) -> str:
    """``url`` with the value of its ``key`` parameter hidden (for messages: a key is never echoed)."""
    return re.sub(r"([?&]key=)[^&]*", r"\1***", url)
# Model-configuration parameters mfr writes (mfr.serving.model_config) and reads here.
MANIFEST_PARAMETER = "mfr_manifest"
PRECISION_PARAMETER = "mfr_precision"
# The sha256 of the ONNX file the served model comes from (which of a package's INT8 models the server took)
SOURCE_PARAMETER = "mfr_source_sha256"
TRITON_DTYPES = {"float32": "FP32", "float16": "FP16", "int8": "INT8", "uint8": "UINT8", "int32": "INT32",
                 "int64": "INT64"}


def is_triton_url(location: object) -> bool:
    """Whether a model location names a Triton server rather than a local directory."""
    return isinstance(location, str) and location.split("://", 1)[0] in SCHEMES and "://" in location


@dataclass(frozen=True)
class TritonAddress:
    """Where a served model is and how to call it, parsed from a ``triton://`` URL."""

    protocol: str  # "http" | "grpc"
    host: str
    port: int
    model: str
    version: str = ""  # "" = the server's version policy
    timeout_s: float = 10.0
    retries: int = 3
    package: Path | None = None
    key: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> TritonAddress:
        parts = urlsplit(url)
        protocol = SCHEMES.get(parts.scheme)
        path = [p for p in parts.path.split("/") if p]
        if protocol is None or not parts.hostname or not 1 <= len(path) <= 2:
            raise EngineError(f"{redacted(url)}: not a Triton model address; expected "
                              f"triton://HOST[:PORT]/MODEL[/VERSION] (HTTP) or triton+grpc://HOST[:PORT]/MODEL[/VERSION]")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"timeout", "retries", "package", "key"})
        if unknown:
            raise EngineError(f"{redacted(url)}: unknown parameter(s) {unknown}; known: timeout, retries, package, "
                              f"key")
        try:
            address = cls(protocol, parts.hostname, parts.port or DEFAULT_PORTS[protocol], path[0],
                          path[1] if len(path) == 2 else "", float(query.get("timeout", 10.0)),
                          int(query.get("retries", 3)), Path(query["package"]) if "package" in query else None,
                          query.get("key") or os.environ.get(KEY_ENV) or None)
        except ValueError as exc:
            raise EngineError(f"{redacted(url)}: {exc}") from None
        if address.timeout_s <= 0 or address.retries < 0:
            raise EngineError(f"{redacted(url)}: timeout must be > 0 and retries >= 0")
        return address

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        scheme = "triton" if self.protocol == "http" else "triton+grpc"
        return f"{scheme}://{self.endpoint}/{self.model}" + (f"/{self.version}" if self.version else "")


def _retryable(exc: Exception) -> bool:
    """Failures of the connection (server down, restarting, unreachable, silent), not answers from the server
    (a server that wants a key answers gRPC calls without it as UNAVAILABLE, "... is restricted ...")."""
    if isinstance(exc, OSError | http.client.HTTPException):  # HTTP: refused, reset, closed mid-answer, timed out
        return True
    if "restricted" in _message(exc):
        return False
    status = getattr(exc, "status", lambda: None)()
    return status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "502", "503")


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    status = getattr(exc, "status", None)
    text = message() if callable(message) else str(exc)
    return text or (str(status()) if callable(status) and status() else type(exc).__name__)


class _Connection:
    """One client connection of either protocol: the three calls the engine makes."""

    def __init__(self, address: TritonAddress) -> None:
        self.address = address
        if address.protocol == "http":
            import tritonclient.http as client
        else:
            import tritonclient.grpc as client
        self.module: Any = client
        if address.protocol == "http":
            self.client: Any = client.InferenceServerClient(address.endpoint, connection_timeout=address.timeout_s,
                                                            network_timeout=address.timeout_s)
        else:
            self.client = client.InferenceServerClient(address.endpoint)

    def _call_options(self) -> dict[str, Any]:
        """The keyword arguments of every call: its timeout (gRPC) and the server's key, if any."""
        if self.address.protocol == "http":
            return {"headers": {KEY_HEADER: self.address.key}} if self.address.key else {}
        # Triton reads a restricted gRPC protocol's key from metadata named triton-grpc-protocol-<key>
        headers = {"headers": {f"triton-grpc-protocol-{KEY_HEADER}": self.address.key}} if self.address.key else {}
        return {"client_timeout": self.address.timeout_s, **headers}

    def model_config(self) -> dict[str, Any]:
        if self.address.protocol == "http":
            return dict(self.client.get_model_config(self.address.model, self.address.version, **self._call_options()))
        answer = self.client.get_model_config(self.address.model, self.address.version, as_json=True,
                                              **self._call_options())
        return dict(answer["config"])

    def statistics(self) -> dict[str, Any]:
        if self.address.protocol == "http":
            return dict(self.client.get_inference_statistics(self.address.model, self.address.version,
                                                             **self._call_options()))
        return dict(self.client.get_inference_statistics(self.address.model, self.address.version, as_json=True,
                                                         **self._call_options()))

    def infer(self, name: str, batch: np.ndarray, dtype: str, outputs: list[str]) -> dict[str, np.ndarray]:
        tensor = self.module.InferInput(name, list(batch.shape), dtype)
        tensor.set_data_from_numpy(batch)
        wanted = [self.module.InferRequestedOutput(o) for o in outputs]
        result = self.client.infer(self.address.model, [tensor], model_version=self.address.version,
                                   outputs=wanted, **self._call_options())
        return {o: result.as_numpy(o) for o in outputs}

    def close(self) -> None:
        self.client.close()


def _close_quietly(connection: _Connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped all the same
        pass


def _parameter(config: dict[str, Any], key: str) -> str | None:
    value = config.get("parameters", {}).get(key)
    return None if value is None else str(value.get("string_value", ""))


def _manifest_from(address: TritonAddress, config: dict[str, Any]) -> Manifest:
    """The served model's manifest: from ``?package=DIR`` if given, else from its configuration."""
    if address.package is not None:
        return load_manifest(address.package)
    text = _parameter(config, MANIFEST_PARAMETER)
    if text is None:
        raise ManifestError(f"{address}: the served model's configuration carries no mfr manifest (parameter "
                            f"{MANIFEST_PARAMETER}); serve it with mfr serve or mfr-export triton, or name its "
                            f"package: {address}?package=DIR")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{address}: the manifest in its model configuration is not valid JSON ({exc})") from None
    return Manifest.from_dict(data, source=f"{address} (model configuration)")


class TritonEngine(Engine):
    """An ``Engine`` whose calls go to a Triton server; batches above the server's ``max_batch_size`` are
    split by ``Engine.infer`` like any profile."""

    backend = "triton"

    def __init__(self, address: TritonAddress, manifest: Manifest, profile: BatchProfile, precision: str,
                 served_source_sha256: str | None = None) -> None:
        super().__init__(str(address), manifest, None, profile, precision)
        self.address = address
        self.remote = str(address)
        self.served_source_sha256 = served_source_sha256
        self.wire_dtype = TRITON_DTYPES.get(self.input.dtype)
        if self.wire_dtype is None:
            raise EngineError(f"{address}: input {self.input.name} has dtype {self.input.dtype}, which mfr does "
                              f"not send to Triton")
        self._connections: dict[int, _Connection] = {}  # by thread
        self._lock = threading.Lock()

    def _connection(self) -> _Connection:
        with self._lock:
            connection = self._connections.get(threading.get_ident())
        if connection is None:
            connection = _Connection(self.address)
            with self._lock:
                self._connections[threading.get_ident()] = connection
        return connection

    def _drop_connection(self) -> None:
        with self._lock:
            connection = self._connections.pop(threading.get_ident(), None)
        if connection is not None:
            _close_quietly(connection)

    def call(self, what: str, method: str, *args: Any) -> Any:
        """One call to the server, retried on a fresh connection while the server cannot be reached."""
        return call_with_retries(self.address, what, lambda: getattr(self._connection(), method)(*args),
                                 self._drop_connection)

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.call("inference", "infer", self.input.name, inputs, self.wire_dtype, self.output_names)
        return {name: np.asarray(value, dtype=np.float32) for name, value in outputs.items()}

    def statistics(self) -> dict[str, Any]:
        """Triton's inference statistics of this model (counts, batch sizes executed, queue and compute time)."""
        return dict(self.call("statistics", "statistics"))

    def executed_batches(self) -> dict[int, int]:
        """How many times the server ran this model at each batch size (since it started): the batches its
        dynamic batcher formed. (gRPC's JSON spells 64-bit counts as strings, HTTP as numbers.)"""
        counts: dict[int, int] = {}
        for model in self.statistics().get("model_stats", []):
            for entry in model.get("batch_stats", []):
                size = int(entry["batch_size"])
                counts[size] = counts.get(size, 0) + int(entry.get("compute_infer", {}).get("count", 0))
        return counts

    def close(self) -> None:
        """Close every thread's connection (a later call opens a new one)."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            _close_quietly(connection)

    def describe(self) -> str:
        return f"{self.manifest.model} {self.precision} (Triton, {self.address.protocol} {self.address.endpoint})"


def call_with_retries(address: TritonAddress, what: str, call: Any, reconnect: Any) -> Any:
    """``call()``, retried ``address.retries`` times (backoff 0.25 s doubling, on a new connection) while the
    server cannot be reached; an answer from the server that refuses the request is raised at once."""
    delay, started = 0.25, time.monotonic()
    for attempt in range(address.retries + 1):
        try:
            return call()
        except Exception as exc:  # tritonclient raises its own, gevent's and socket exception types
            if not _retryable(exc):
                hint = f" (the server wants its key: set ${KEY_ENV}, or add ?key=)" if "restricted" in _message(exc) \
                    else ""
                raise EngineError(f"{address}: the server refused the {what} request: {_message(exc)}{hint}") from None
            reconnect()
            if attempt == address.retries:
                raise EngineUnavailable(
                    f"{address}: server not reachable ({_message(exc)}) after {attempt + 1} attempt(s) over "
                    f"{time.monotonic() - started:.1f} s; is it running (mfr serve)?") from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def open_triton(url: str, precision: str | None = None) -> TritonEngine:
    """The model a Triton server serves at ``url``, with the manifest from its configuration."""
    address = TritonAddress.parse(url)
    module = "tritonclient.http" if address.protocol == "http" else "tritonclient.grpc"
    try:
        __import__(module)
    except ImportError:
        raise EngineError(f"{address}: the Triton client is not installed ({module}): pip install 'mfr[triton]'") \
            from None
    connection: list[_Connection] = []

    def config_call() -> dict[str, Any]:
        if not connection:
            connection.append(_Connection(address))
        return connection[0].model_config()

    def reconnect() -> None:
        if connection:
            _close_quietly(connection.pop())

    config = call_with_retries(address, "model configuration", config_call, reconnect)
    reconnect()
    manifest = _manifest_from(address, config)
    served = _parameter(config, PRECISION_PARAMETER) or (manifest.engine.precision if manifest.engine else "fp32")
    if precision is not None and precision != served:
        raise EngineError(f"{address} serves the {served} model; --precision {precision} does not apply (serve the "
                          f"{precision} model under another name)")
    max_batch = int(config.get("max_batch_size", 0))
    if max_batch < 1:
        raise EngineError(f"{address}: the model is served without batching (max_batch_size 0); mfr sends batched "
                          f"NCHW inputs: serve it with max_batch_size >= 1")
    profile = BatchProfile(1, min(BatchProfile().opt, max_batch), max_batch)
    return TritonEngine(address, manifest, profile, served, _parameter(config, SOURCE_PARAMETER) or None)
