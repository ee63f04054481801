"""The ``tritonserver`` process: found, started on a model repository, checked ready, stopped gracefully.

Where the server comes from (``TritonInstall.locate``): an explicit path, ``tritonserver`` on ``PATH``
(a full install, e.g. ``/opt/tritonserver/bin``), or the binary that the ``nvidia-pytriton`` wheel ships
with Triton's Python backend (CPU-only here; mfr uses only that binary and backend, not pytriton's
Python API). Its Python backend embeds a Python of this interpreter's version: the backend folder given
to the server holds links to the install's backend library and the stub built for this Python
(``python_backend_stubs/3.X`` in the wheel), and the server's library path starts with this Python's
``libpython``, so that the stub runs this interpreter's installation.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType

from mfr.errors import EngineError
from mfr.runtime.engine_triton import KEY_HEADER

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class TritonInstall:
    """A ``tritonserver`` binary and the Python backend beside it."""

    binary: Path
    python_backend: Path  # folder with libtriton_python.so
    stub: Path  # the backend stub for this Python
    libraries: Path | None = None  # extra shared libraries (the wheel's nvidia_pytriton.libs)

    @classmethod
    def locate(cls, binary: Path | None = None) -> TritonInstall:
        if binary is None:
            found = shutil.which("tritonserver")
            binary = Path(found) if found else _wheel_binary()
        if binary is None:
            raise EngineError("no tritonserver found: install Triton (tritonserver on PATH), or its CPU build "
                              "with the Python backend: pip install --no-deps nvidia-pytriton; or pass "
                              "--tritonserver PATH")
        binary = Path(binary).resolve()
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise EngineError(f"{binary}: not an executable tritonserver")
        home = binary.parent.parent
        backend = home / "backends" / "python"
        stub = home / "python_backend_stubs" / PYTHON_VERSION / STUB
        if not stub.is_file():
            stub = backend / STUB
        missing = [str(p) for p in (backend / BACKEND_FILES[0], stub) if not p.is_file()]
        if missing:
            raise EngineError(f"{binary}: Triton's Python backend is incomplete (missing {', '.join(missing)})")
        libraries = home.parent.parent / "nvidia_pytriton.libs"
        return cls(binary, backend, stub, libraries if libraries.is_dir() else None)

    def backend_directory(self, root: Path) -> Path:
        """A ``--backend-directory`` for the server: ``python/`` with links to this install's backend and the
        stub for this Python."""
        python = Path(root) / "python"
        python.mkdir(parents=True, exist_ok=True)
        for name in BACKEND_FILES:
            if (self.python_backend / name).is_file():
                (python / name).symlink_to(self.python_backend / name)
        (python / STUB).symlink_to(self.stub)
        return Path(root)


def _wheel_binary() -> Path | None:
    spec = find_spec("pytriton")  # locates the wheel without importing pytriton's Python API
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(list(spec.submodule_search_locations)[0]) / "tritonserver" / "bin" / "tritonserver"
    return binary if binary.is_file() else None


def python_library_dir() -> Path:
    """The folder of this Python's ``libpython`` (the backend stub links it), with a clear error without one."""
    name = sysconfig.get_config_var("INSTSONAME") or f"libpython{PYTHON_VERSION}.so.1.0"
    folder = Path(sysconfig.get_config_var("LIBDIR") or sys.base_prefix + "/lib")
    if not (folder / name).exists() and ctypes.util.find_library(f"python{PYTHON_VERSION}") is None:
        raise EngineError(f"Triton's Python backend embeds {name}, which this Python ({sys.executable}) does not "
                          f"have: use a Python built with --enable-shared (or install libpython{PYTHON_VERSION})")
    return folder


@dataclass(frozen=True)
class ServerPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def from_http(cls, http: int, grpc: int | None = None, metrics: int | None = None) -> ServerPorts:
        return cls(http, grpc if grpc is not None else http + 1, metrics if metrics is not None else http + 2)


# every Triton API but health: a server given a key serves nothing else to a client without it
RESTRICTED_APIS = ("metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics",
                   "trace", "logging")


class TritonServer:
    """One ``tritonserver`` process on a model repository; a context manager that stops it on exit."""

    def __init__(self, install: TritonInstall, repository: Path, work_dir: Path, ports: ServerPorts,
                 host: str = "127.0.0.1", exit_timeout_s: int = 30, log_path: Path | None = None,
                 verbose: bool = False, key: str | None = None) -> None:
        self.install, self.repository, self.ports, self.host = install, Path(repository), ports, host
        self.key = key
        self.exit_timeout_s = exit_timeout_s
        self.work_dir = Path(work_dir)
        self.log_path = log_path or self.work_dir / "tritonserver.log"
        self.verbose = verbose
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        backends = self.install.backend_directory(self.work_dir / "backends")
        host = self.host
        return [str(self.install.binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                f"--http-address={host}", f"--http-port={self.ports.http}", f"--grpc-address={host}",
                f"--grpc-port={self.ports.grpc}", f"--metrics-address={host}", f"--metrics-port={self.ports.metrics}",
                "--allow-metrics=true", "--allow-gpu-metrics=false", "--strict-readiness=true",
                f"--exit-timeout-secs={self.exit_timeout_s}", f"--log-verbose={1 if self.verbose else 0}",
                *self.restricted()]

    def restricted(self) -> list[str]:
        """Triton's restricted-API settings: with a key, every API but health (readiness checks stay open)
        answers only requests carrying the ``KEY_HEADER`` header with the key, on HTTP and gRPC alike."""
        if not self.key:
            return []
        setting = f"{','.join(RESTRICTED_APIS)}:{KEY_HEADER}={self.key}"
        return [f"--http-restricted-api={setting}", f"--grpc-restricted-protocol={setting}"]

    def environment(self) -> dict[str, str]:
        folders = [str(python_library_dir())]
        if self.install.libraries is not None:
            folders.append(str(self.install.libraries))
        if os.environ.get("LD_LIBRARY_PATH"):
            folders.append(os.environ["LD_LIBRARY_PATH"])
        return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(folders)}

    @property
    def local_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else ("::1" if self.host == "::" else self.host)

    def start(self, ready_timeout_s: float = 120.0) -> TritonServer:
        """Start the server and wait until it reports every model ready (``/v2/health/ready``)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it until it stops
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        env=self.environment(), start_new_session=True)
        log.close()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"tritonserver exited with code {self.process.returncode} while starting:\n"
                                  f"{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise EngineError(f"tritonserver was not ready within {ready_timeout_s:.0f} s:\n{self.log_tail()}")

    def ready(self) -> bool:
        url = f"http://{self.local_host}:{self.ports.http}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - a loopback URL we built
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (Triton finishes in-flight requests, up to its exit timeout), then SIGKILL if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s if timeout_s is not None else self.exit_timeout_s + 10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
