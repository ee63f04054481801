"""The engines ``mfr-export build-engine`` can build (``--backend``): one registry line per backend.

An entry says what the backend needs to build here (``unavailable``: the reason it cannot, or None),
which options of a request it cannot honour (``refuse``), which package file it builds each precision
from (``source_keys``), the engine file's name, and how it builds (``build``). ``--backend auto`` takes
the first registered backend that can build here. The runtime opens what these write through its own
registry under the same name (``mfr.runtime.engine_backends``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime as ort

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.plugins import Registry
from mfr.runtime.engine_check import version_tuple
from mfr.runtime.engine_load import UINT8_WEIGHTS_FILE
from mfr.runtime.engine_ort import onnxruntime_session
from mfr.runtime.machine import cpu_name, gpu_info, tensorrt_version

if TYPE_CHECKING:
    from mfr.export.engine_package import EngineBuilder


@dataclass(frozen=True)
class BuildJob:
    """One build: the source model (and an extra file, e.g. TensorRT's calibration cache), the package's
    manifest, the file to write, the batch profile and a detector's [min, opt, max] [height, width]."""

    source: Path
    extra: Path | None
    manifest: Manifest
    target: Path
    profile: BatchProfile
    spatial: list[list[int]] | None


@dataclass(frozen=True)
class Built:
    """What a build ran on: the backend's version, the device (GPU or CPU), the GPU's compute capability,
    ONNX Runtime's execution providers (empty for others), and whether it runs on the CPU."""

    version: str
    device: str
    compute_capability: str | None
    providers: list[str]
    on_cpu: bool


@dataclass(frozen=True)
class BuilderEntry:
    engine_file: str
    precisions: tuple[str, ...]
    unavailable: Callable[[], str | None]
    refuse: Callable[[EngineBuilder], str | None]  # the first option of the request it cannot honour
    source_keys: Callable[[EngineBuilder], tuple[str, str | None]]  # manifest keys: model, extra file
    build: Callable[[EngineBuilder, BuildJob, Callable[[str], None]], Built]


def typed_fp16(tensorrt: str | None) -> bool:
    """TensorRT 11 builds FP16 only from an FP16 model (strongly typed; no FP16 builder flag)."""
    return tensorrt is not None and version_tuple(tensorrt) >= (11,)


# --- TensorRT ------------------------------------------------------------------------------------------

def _tensorrt_unavailable() -> str | None:
    if tensorrt_version() is None:
        return ("TensorRT is not installed here (pip install 'mfr[trt-cu12]' or 'mfr[trt-cu13]' on a machine with "
                "an NVIDIA GPU)")
    if gpu_info() is None:
        return "no NVIDIA GPU answers through cuda-python here"
    return None


def _tensorrt_refuse(request: EngineBuilder) -> str | None:
    if request.int8_float == "fp16" and version_tuple(tensorrt_version() or "0") < (10,):
        return (f"--int8-float fp16 needs TensorRT >= 10 (a strongly typed network from a Q/DQ model with FP16 "
                f"scales); this is TensorRT {tensorrt_version()}")
    return None


def _tensorrt_sources(request: EngineBuilder) -> tuple[str, str | None]:
    if request.precision == "int8" and request.int8_source == "calibration-cache":
        return "onnx", "trt_calibration_cache"  # implicit INT8: the FP32 model and the cache
    if request.precision == "int8":
        return ("onnx_int8_trt_fp16" if request.int8_float == "fp16" else "onnx_int8_trt"), None
    if request.precision == "fp16" and typed_fp16(tensorrt_version()):
        return "onnx_fp16", None  # TensorRT >= 11: the FP16 model, strongly typed
    return "onnx", None  # FP32, and FP16 by the builder flag (TensorRT < 11)


def _tensorrt_build(request: EngineBuilder, job: BuildJob, log: Callable[[str], None]) -> Built:
    from mfr.export.trt_build import TensorRTBuildOptions, build_tensorrt_plan

    gpu = gpu_info()
    assert gpu is not None  # unavailable() made sure
    options = TensorRTBuildOptions(
        precision=request.precision, profile=job.profile, spatial=job.spatial, workspace_mib=request.workspace_mib,
        timing_cache=request.timing_cache, dla_core=request.dla_core, version_compatible=request.version_compatible,
        implicit_int8_cache=job.extra, typed_fp16=job.source.name == job.manifest.files.get("onnx_fp16"),
        fp32_layers=job.manifest.float_layers("tensorrt_qdq"))
    job.target.write_bytes(build_tensorrt_plan(job.source, job.manifest.inputs[0], options, log))
    return Built(tensorrt_version() or "", gpu.name, gpu.compute_capability, [], on_cpu=False)


# --- ONNX Runtime --------------------------------------------------------------------------------------

def onnxruntime_providers() -> list[str]:
    """Installed execution providers in the order they should be tried (GPU first, CPU always last)."""
    available = ort.get_available_providers()
    preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    return [p for p in preferred if p in available] + ["CPUExecutionProvider"]


def build_onnxruntime_model(source: Path, target: Path, providers: list[str]) -> list[str]:
    """Let ONNX Runtime optimise ``source`` and save the result as ``target``; return the providers used.

    Saved at the extended level: fusions (Conv+activation, QDQ -> QLinear operators) are kept, but not
    the layout rewrites for one CPU's instruction set, which the runtime applies at load. TensorRT EP
    compiles nodes that cannot be saved, so the saving session leaves it out; the runtime uses it.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    saving = [p for p in providers if p != "TensorrtExecutionProvider"]
    try:
        onnxruntime_session(str(source), options, saving)
    except Exception as exc:  # ORT raises its own exception types for invalid models
        raise EngineError(f"{source}: ONNX Runtime could not optimise it ({exc})") from None
    if not target.is_file():
        raise EngineError(f"{source}: ONNX Runtime did not write the optimised model {target}")
    return providers


def _onnxruntime_refuse(request: EngineBuilder) -> str | None:
    """The TensorRT-only options (ONNX Runtime engines are FP32 or INT8, built without them)."""
    unsupported = [(request.precision == "fp16", "--precision fp16 needs TensorRT (ONNX Runtime engines are fp32 "
                                                 "or int8)"),
                   (request.dla_core is not None, "--dla-core needs the TensorRT backend"),
                   (request.version_compatible, "--version-compatible needs the TensorRT backend"),
                   (request.timing_cache is not None, "--timing-cache needs the TensorRT backend"),
                   (request.int8_source != "qdq", "--int8-source calibration-cache needs the TensorRT backend"),
                   (request.int8_float != "fp32", "--int8-float fp16 needs the TensorRT backend")]
    return next((message for failed, message in unsupported if failed), None)


def _onnxruntime_sources(request: EngineBuilder) -> tuple[str, str | None]:
    if request.precision == "int8":
        return (UINT8_WEIGHTS_FILE if request.weight_scheme() == "u8" else "onnx_int8"), None
    return "onnx", None


def _onnxruntime_build(request: EngineBuilder, job: BuildJob, log: Callable[[str], None]) -> Built:
    providers = build_onnxruntime_model(job.source, job.target, onnxruntime_providers())
    gpu = gpu_info()
    if gpu is not None and providers[0] != "CPUExecutionProvider":
        return Built(ort.__version__, gpu.name, gpu.compute_capability, providers, on_cpu=False)
    return Built(ort.__version__, cpu_name(), None, providers, on_cpu=providers[0] == "CPUExecutionProvider")


ENGINE_BUILDERS: Registry[BuilderEntry] = Registry("engine backend")
ENGINE_BUILDERS.register("tensorrt", BuilderEntry("model.plan", ("fp32", "fp16", "int8"), _tensorrt_unavailable,
                                                  _tensorrt_refuse, _tensorrt_sources, _tensorrt_build))
ENGINE_BUILDERS.register("onnxruntime", BuilderEntry("model.ort.onnx", ("fp32", "int8"), lambda: None,
                                                     _onnxruntime_refuse, _onnxruntime_sources, _onnxruntime_build))


def backend_choices() -> list[str]:
    """``--backend``'s choices: auto, then every backend that can build."""
    return ["auto", *ENGINE_BUILDERS]


def choose_backend(requested: str) -> str:
    """``auto``: the first registered backend that can build here (TensorRT with a GPU, else ONNX Runtime)."""
    if requested != "auto":
        return requested
    return next(name for name, entry in ENGINE_BUILDERS.items() if entry.unavailable() is None)
