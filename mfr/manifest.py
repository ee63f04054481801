"""The model package manifest: what travels between stages with every ONNX/engine file.

``manifest.json`` holds the model name and kind, its preprocessing spec (the single source of how to
feed it), input/output tensors, hashes, tool versions and measured figures (parity now; accuracy and
latency in later stages). Later stages add their own sections under ``stages``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfr.atomic import write_json_atomic
from mfr.errors import ManifestError, SpecError
from mfr.spec import PreprocessSpec

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[int | str]  # symbolic dimensions are strings ("batch", "height")
    dtype: str

    def fixed_hw(self) -> tuple[int, int] | None:
        """(height, width) of an NCHW tensor when both are fixed, else None (detectors take any size)."""
        height, width = self.shape[2:4]
        return (height, width) if isinstance(height, int) and isinstance(width, int) else None


@dataclass(frozen=True)
class ParityReport:
    """How closely the exported model reproduces the source model on real inputs."""

    samples: int
    data: str
    min_cosine: float
    max_abs_diff: float
    per_output: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts (TensorRT optimisation profile; enforced for every backend)."""

    min: int = 1
    opt: int = 32
    max: int = 128

    def check(self) -> BatchProfile:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ManifestError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                                f"min {self.min}, opt {self.opt}, max {self.max}")
        return self


@dataclass(frozen=True)
class EngineRecord:
    """How and where an engine was built: what a machine must match to run it.

    TensorRT plans are tied to the TensorRT version and the GPU model; an ONNX Runtime optimised model
    to the ONNX Runtime version and its execution providers. The loader compares these fields with the
    machine it runs on and refuses a mismatch (see ``mfr.runtime.engine_check``).
    """

    backend: str  # "tensorrt" | "onnxruntime"
    backend_version: str
    device: str  # GPU name, or the CPU's model name
    compute_capability: str | None  # "8.7" for a GPU engine, None on the CPU
    providers: list[str]  # ONNX Runtime execution providers, in priority order ([] for TensorRT)
    precision: str
    profile: BatchProfile
    source_package: str  # absolute path of the package the engine was built from
    source_file: str  # that package's ONNX file, relative to it
    source_sha256: str
    options: dict[str, Any] = field(default_factory=dict)  # workspace, DLA core, version compatibility...
    build_seconds: float = 0.0
    built: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineRecord:
        return cls(**{**data, "profile": BatchProfile(**data["profile"]), "providers": list(data["providers"])})


@dataclass
class Manifest:
    model: str
    kind: str
    spec: PreprocessSpec
    files: dict[str, str]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    sha256: dict[str, str]
    versions: dict[str, str]
    parity: ParityReport | None = None
    opset: int | None = None
    decoder: dict[str, Any] | None = None
    created: str = ""
    stages: dict[str, Any] = field(default_factory=dict)
    engine: EngineRecord | None = None  # set in engine directories written by ``mfr-export build-engine``
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    def save(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = MANIFEST_NAME) -> Manifest:
        try:
            if data.get("format_version") != FORMAT_VERSION:
                raise ManifestError(f"{source}: format_version {data.get('format_version')!r} is not "
                                    f"{FORMAT_VERSION}; re-export the package with this mfr")
            parity, engine = data.get("parity"), data.get("engine")
            return cls(
                model=str(data["model"]),
                kind=str(data["kind"]),
                spec=PreprocessSpec.from_dict(data["spec"]),
                files=dict(data["files"]),
                inputs=[TensorInfo(**t) for t in data["inputs"]],
                outputs=[TensorInfo(**t) for t in data["outputs"]],
                sha256=dict(data["sha256"]),
                versions=dict(data["versions"]),
                parity=None if parity is None else ParityReport(**parity),
                opset=data.get("opset"),
                decoder=data.get("decoder"),
                created=str(data.get("created", "")),
                stages=dict(data.get("stages", {})),
                engine=None if engine is None else EngineRecord.from_dict(engine),
            )
        except KeyError as exc:
            raise ManifestError(f"{source}: missing field {exc}") from None
        except SpecError as exc:
            raise ManifestError(f"{source}: {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{source}: malformed manifest ({exc})") from None


def load_manifest(directory: Path) -> Manifest:
    """Read ``directory/manifest.json`` with errors that name the file."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: {directory} is not a model package")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    return Manifest.from_dict(data, source=str(path))


def listed_file(directory: Path, manifest: Manifest, key: str, absent: str) -> Path:
    """The file that ``directory``'s manifest lists under ``key``. A manifest without that entry raises
    ``absent`` (the caller says what makes the file); a listed file that is gone is named as such."""
    if key not in manifest.files:
        raise ManifestError(absent)
    path = Path(directory) / manifest.files[key]
    if not path.is_file():
        raise ManifestError(f"{path} is listed in {Path(directory) / MANIFEST_NAME} but missing")
    return path
