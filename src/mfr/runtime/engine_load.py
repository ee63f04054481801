"""Open an engine directory (or a plain model package) as an ``Engine``, refusing what does not fit here.

Checks, in order: the manifest reads; the build record matches this machine (``engine_check``; the
error names both sides and the command that rebuilds the engine); the engine file is there and its
sha256 matches (a truncated or replaced file is caught before a backend sees it). The runtime never
builds: rebuilding an engine that does not fit (``--rebuild-on-mismatch``) belongs to
``mfr.export.engine_package``, which the CLI calls before opening.
"""

from __future__ import annotations

from pathlib import Path

from mfr.atomic import sha256_file
from mfr.errors import EngineError, EngineMismatchError
from mfr.manifest import MANIFEST_NAME, BatchProfile, Manifest, listed_file, load_manifest
from mfr.runtime.engine import Engine
from mfr.runtime.engine_backends import ENGINE_BACKENDS, mismatches, rebuild_command
from mfr.runtime.engine_check import MachineState
from mfr.runtime.engine_triton import is_triton_url, open_triton
from mfr.runtime.machine import instruction_set, int8_weight_scheme

# A plain package's ONNX files by precision (a package is run by ONNX Runtime without building).
PACKAGE_FILES = {"fp32": "onnx", "fp16": "onnx_fp16", "int8": "onnx_int8"}
# INT8 on a CPU whose int8-weight kernels saturate (x86 without VNNI): the uint8-weight model.
UINT8_WEIGHTS_FILE = "onnx_int8_u8"


def package_model_key(precision: str, int8_weights: str | None = None) -> str | None:
    """The manifest key of the ONNX model a plain package runs at ``precision``; None for a precision only
    engines run. INT8 takes the model with ``int8_weights`` ("s8" or "u8"), by default the scheme this
    CPU's kernels need: uint8 weights where ONNX Runtime's int8-weight kernels saturate (x86 without VNNI),
    the choice ``mfr-export build-engine`` makes, so that an evaluation, a gallery or a server running the
    package measures the model this CPU deploys, not the one its kernels distort."""
    key = PACKAGE_FILES.get(precision)
    if key == PACKAGE_FILES["int8"] and (int8_weights or int8_weight_scheme(instruction_set())) == "u8":
        return UINT8_WEIGHTS_FILE
    return key


def listed_engine(directory: Path, manifest: Manifest) -> Path:
    """The engine file an engine directory's manifest lists (not yet checked against its hash)."""
    return listed_file(directory, manifest, "engine",
                       f"{directory / MANIFEST_NAME} lists no engine file (files: {manifest.files})")


# Files an engine consists of besides the engine file itself (an OpenVINO IR's weights), checked alike.
ENGINE_PARTS = ("engine", "engine_weights")


def engine_file(directory: Path, manifest: Manifest) -> Path:
    """The engine file, after every part of the engine was checked against its recorded sha256."""
    for key in ENGINE_PARTS:
        if key not in manifest.files:
            continue
        path = listed_file(directory, manifest, key, "")
        expected = manifest.sha256.get(key)
        if expected is not None and sha256_file(path) != expected:
            raise EngineError(f"{path}: sha256 differs from the manifest's ({path.stat().st_size} bytes): the "
                              f"engine file is truncated or was replaced; rebuild it with mfr-export build-engine")
    return listed_engine(directory, manifest)


def check_fits_machine(directory: Path, manifest: Manifest, machine: MachineState | None = None) -> None:
    record = manifest.engine
    assert record is not None
    found = mismatches(record, machine or MachineState.current())
    if found:
        raise EngineMismatchError(
            f"{directory} does not fit this machine:\n  - " + "\n  - ".join(found)
            + f"\nrebuild it here with:\n  {rebuild_command(record, Path(directory))}"
            + "\n(or pass --rebuild-on-mismatch to rebuild it automatically)")


def open_engine(directory: Path | str, machine: MachineState | None = None, threads: int = 0) -> Engine:
    """The engine in ``directory`` (written by ``mfr-export build-engine``), checked against this machine;
    or the model a Triton server serves at a ``triton://`` address. ``threads``: CPU threads of one call
    (0: the backend's default, every core; a GPU engine ignores it)."""
    if is_triton_url(directory):
        return open_triton(str(directory))
    directory = Path(directory)
    manifest = load_manifest(directory)
    if manifest.engine is None:
        raise EngineError(f"{directory} is a model package, not an engine directory; build one with: "
                          f"mfr-export build-engine --package {directory} --out <engine dir>")
    check_fits_machine(directory, manifest, machine)
    path = engine_file(directory, manifest)
    record = manifest.engine
    assert record is not None
    return ENGINE_BACKENDS.entry(record.backend).open(directory, manifest, path, record, threads)


def model_file_for(path: Path, manifest: Manifest, precision: str | None,
                   int8_weights: str | None = None) -> tuple[Path, str]:
    """The file a directory runs at ``precision``, and that precision: an engine directory's engine (its own
    precision; another is refused), or a plain package's ONNX model (fp32 by default; INT8 with the weight
    scheme of ``package_model_key``), with the command that makes a missing one. The engine's hash is
    checked where it is opened (``open_engine``)."""
    if manifest.engine is not None:
        if precision is not None and precision != manifest.engine.precision:
            raise EngineError(f"{path} is a {manifest.engine.precision} engine; --precision {precision} does not "
                              f"apply (build another engine for {precision})")
        return listed_engine(path, manifest), manifest.engine.precision
    precision = precision or "fp32"
    key = package_model_key(precision, int8_weights)
    if key is None:
        raise EngineError(f"a model package runs fp32, fp16 or int8 (ONNX Runtime); for {precision} build an engine: "
                          f"mfr-export build-engine --package {path} --precision {precision} --out <engine dir>")
    how = (f"mfr-export calibrate --model {path} --out <calibrated package>" if precision == "int8" else
           "mfr-export onnx (it writes model.fp16.onnx when the FP16 model passes its check)")
    which = f"{precision} model"
    if key == UINT8_WEIGHTS_FILE:
        which += (f" with uint8 weights ({key})" if int8_weights else f" for this CPU ({instruction_set()}: int8 "
                  f"weights saturate there, INT8 runs the uint8-weight model, {key})")
    return listed_file(path, manifest, key, f"{path} has no {which} (files: {manifest.files}); create "
                       f"one with: {how}"), precision


def open_model(path: Path | str, precision: str | None = None, threads: int = 0) -> Engine:
    """An engine directory as it is, a plain package's ``precision`` model run by ONNX Runtime on the CPU,
    or a model served by Triton (``triton://HOST:PORT/MODEL``, see ``mfr.runtime.engine_triton``).

    This is what ``mfr eval`` accepts: any of them, so an engine's accuracy is measured through exactly
    the code a deployment runs.
    """
    if is_triton_url(path):
        return open_triton(str(path), precision)
    path = Path(path)
    manifest = load_manifest(path)
    model, precision = model_file_for(path, manifest, precision)
    if manifest.engine is not None:
        return open_engine(path, threads=threads)
    from mfr.runtime.engine_ort import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, manifest, model, BatchProfile(), precision=precision, threads=threads)
