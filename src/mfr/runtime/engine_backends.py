"""The engine backends an engine directory can name (its manifest's ``engine.backend``): one registry line
per backend.

An entry says how the runtime opens such an engine, what a machine must have to run it (each way it
differs, as ``engine_check`` words it) and the command that makes it again for this machine. Building
is the export stage's (``mfr.export.engine_builders``, which the device side never imports): a backend
that ``mfr-export build-engine`` can build has an entry there too, under the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mfr.manifest import EngineRecord, Manifest
from mfr.plugins import Registry
from mfr.runtime.engine import Engine
from mfr.runtime.engine_check import (
    MachineState,
    build_engine_command,
    import_ir_command,
    onnxruntime_mismatches,
    openvino_mismatches,
    tensorrt_mismatches,
)


@dataclass(frozen=True)
class BackendEntry:
    # (directory, manifest, engine file, record, CPU threads: 0 for the backend's default)
    open: Callable[[Path, Manifest, Path, EngineRecord, int], Engine]
    mismatches: Callable[[EngineRecord, MachineState], list[str]]
    remake_command: Callable[[EngineRecord, Path], str] = build_engine_command
    built_here: bool = True  # mfr-export build-engine builds it (so --rebuild-on-mismatch can)


def _open_tensorrt(directory: Path, manifest: Manifest, path: Path, record: EngineRecord, threads: int) -> Engine:
    from mfr.runtime.engine_trt import TensorRTEngine

    return TensorRTEngine(directory, manifest, path, record.profile,
                          version_compatible=record.options.version_compatible, dla_core=record.options.dla_core)


def _open_onnxruntime(directory: Path, manifest: Manifest, path: Path, record: EngineRecord,
                      threads: int) -> Engine:
    from mfr.runtime.engine_ort import OnnxRuntimeEngine

    return OnnxRuntimeEngine(directory, manifest, path, record.profile, providers=record.providers, threads=threads)


def _open_openvino(directory: Path, manifest: Manifest, path: Path, record: EngineRecord, threads: int) -> Engine:
    from mfr.runtime.engine_openvino import OpenVinoEngine

    return OpenVinoEngine(directory, manifest, path, record.profile, threads=threads)


ENGINE_BACKENDS: Registry[BackendEntry] = Registry("engine backend")
ENGINE_BACKENDS.register("tensorrt", BackendEntry(_open_tensorrt, tensorrt_mismatches))
ENGINE_BACKENDS.register("onnxruntime", BackendEntry(_open_onnxruntime, onnxruntime_mismatches))
ENGINE_BACKENDS.register("openvino", BackendEntry(_open_openvino, openvino_mismatches, import_ir_command,
                                                  built_here=False))


def mismatches(record: EngineRecord, machine: MachineState) -> list[str]:
    """Each way this machine differs from what the engine needs, as 'engine ... ; this machine ...'."""
    entry = ENGINE_BACKENDS.get(record.backend)
    if entry is None:
        return [f"unknown backend {record.backend!r} (this mfr knows {', '.join(ENGINE_BACKENDS)})"]
    return entry.mismatches(record, machine)


def rebuild_command(record: EngineRecord, engine_dir: Path) -> str:
    """The command that makes this engine again for this machine, with every recorded option."""
    return ENGINE_BACKENDS.entry(record.backend).remake_command(record, engine_dir)
