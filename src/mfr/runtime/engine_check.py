"""Does an engine fit this machine? Compare its manifest's build record with what is here.

TensorRT plans run only with the TensorRT version that built them (a version-compatible plan: that
version or a later one of the same major) and on the GPU model they were built for; ONNX Runtime's
optimised models need the same ONNX Runtime release line and the execution providers they were
optimised for, and a CPU INT8 engine a CPU of the same kind, with or without VNNI (the INT8 weight
scheme differs). A mismatch is an error that names both sides and the command that rebuilds the engine.
Each backend's check is one function here, named in its ``engine_backends`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mfr.manifest import EngineOptions, EngineRecord
from mfr.runtime.machine import (
    GpuInfo,
    gpu_info,
    instruction_set,
    int8_weight_scheme,
    package_version,
    tensorrt_version,
)


@dataclass(frozen=True)
class MachineState:
    """The facts the check needs, gathered once (tests pass their own)."""

    tensorrt: str | None
    onnxruntime: str
    providers: list[str] = field(default_factory=list)
    gpu: GpuInfo | None = None
    instruction_set: str = ""  # the CPU's INT8 instruction set (mfr.runtime.machine.instruction_set)
    openvino: str | None = None  # the installed OpenVINO release

    @classmethod
    def current(cls) -> MachineState:
        import onnxruntime

        return cls(tensorrt_version(), onnxruntime.__version__, onnxruntime.get_available_providers(), gpu_info(),
                   instruction_set(), package_version("openvino"))


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def tensorrt_mismatches(record: EngineRecord, machine: MachineState) -> list[str]:
    """A plan runs with the TensorRT that built it (version-compatible: that or a later one of the same
    major) on the GPU model it was built for."""
    found = []
    if machine.tensorrt is None:
        found.append(f"built with TensorRT {record.backend_version}; this machine has no TensorRT "
                     f"(pip install 'mfr[trt-cu12]' or 'mfr[trt-cu13]' on a machine with an NVIDIA GPU)")
    else:
        built, here = version_tuple(record.backend_version), version_tuple(machine.tensorrt)
        if record.options.version_compatible:
            if here[:1] != built[:1] or here < built:
                found.append(f"built version-compatible with TensorRT {record.backend_version} (runs on that "
                             f"or a later {built[0]}.x); this machine has TensorRT {machine.tensorrt}")
        elif here[:3] != built[:3]:
            found.append(f"built with TensorRT {record.backend_version}; this machine has TensorRT "
                         f"{machine.tensorrt}")
    if machine.gpu is None:
        found.append(f"built for GPU {record.device} (compute capability {record.compute_capability}); "
                     f"this machine has no usable NVIDIA GPU")
    elif (machine.gpu.name, machine.gpu.compute_capability) != (record.device, record.compute_capability):
        found.append(f"built for GPU {record.device} (compute capability {record.compute_capability}); this "
                     f"machine has {machine.gpu.name} (compute capability {machine.gpu.compute_capability})")
    return found


def onnxruntime_mismatches(record: EngineRecord, machine: MachineState) -> list[str]:
    """An optimised model needs the same ONNX Runtime release line and its execution providers; a CPU INT8
    engine a CPU of the same kind (the INT8 weight scheme differs with and without VNNI)."""
    found = []
    if version_tuple(record.backend_version)[:2] != version_tuple(machine.onnxruntime)[:2]:
        found.append(f"optimised by ONNX Runtime {record.backend_version}; this machine has ONNX Runtime "
                     f"{machine.onnxruntime}")
    wanted = int8_weight_scheme(machine.instruction_set)
    if record.instruction_set is not None and record.int8_weights is not None \
            and int8_weight_scheme(record.instruction_set) != wanted:  # a CPU of the other kind
        found.append(f"INT8 built for a CPU with {record.instruction_set} ({record.int8_weights} weights); "
                     f"this CPU has {machine.instruction_set}, for which INT8 is built with {wanted} weights")
    missing = [p for p in record.providers if p not in machine.providers]
    if missing:
        found.append(f"optimised for execution providers {record.providers}; this machine lacks {missing} "
                     f"(available: {machine.providers})")
    return found


def openvino_mismatches(record: EngineRecord, machine: MachineState) -> list[str]:
    if machine.openvino is None:
        return [f"imported for OpenVINO {record.backend_version}; this machine has no OpenVINO (pip install openvino)"]
    return []


def import_ir_command(record: EngineRecord, engine_dir: Path) -> str:
    """The import that makes an imported OpenVINO IR engine again."""
    return (f"mfr-export import-ir --package {record.source_package} --ir {record.source_file} "
            f"--precision {record.precision} --max-batch {record.profile.max} --out {engine_dir} --force")


def build_engine_command(record: EngineRecord, engine_dir: Path) -> str:
    """The build-engine command that makes this engine again, for this machine: every recorded option."""
    profile, options = record.profile, record.options
    parts = ["mfr-export build-engine", f"--package {record.source_package}", f"--precision {record.precision}",
             f"--backend {record.backend}", f"--min-batch {profile.min} --opt-batch {profile.opt} "
             f"--max-batch {profile.max}"]
    if options.spatial is not None:
        parts.append(f"--max-side {options.spatial[2][1]}")
    if options.workspace_mib != EngineOptions().workspace_mib:
        parts.append(f"--workspace {options.workspace_mib}")
    if options.timing_cache is not None:
        parts.append(f"--timing-cache {options.timing_cache}")
    if options.int8_source != "qdq":
        parts.append(f"--int8-source {options.int8_source}")
    if options.int8_float != "fp32":
        parts.append(f"--int8-float {options.int8_float}")
    if options.dla_core is not None:
        parts.append(f"--dla-core {options.dla_core}")
    if options.version_compatible:
        parts.append("--version-compatible")
    parts.append(f"--out {engine_dir} --force")
    return " ".join(parts)
