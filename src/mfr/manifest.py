"""The model package manifest: what travels between stages with every ONNX/engine file.

``manifest.json`` holds the model name and kind, its preprocessing spec (the single source of how to
feed it), input/output tensors, hashes, tool versions, the export parity, and what each later stage
leaves for the next: the calibration's ranges and float layers (read by ``build-engine``), the engine's
build record (read by the runtime) and its parity. Every such hand-off is a dataclass here, read and
written only through these types, so a reader never spells out a dictionary path and a package written
by another format is refused with a message saying what to re-create.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from mfr.atomic import write_json_atomic
from mfr.errors import ManifestError, SpecError
from mfr.spec import PreprocessSpec

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
# What re-creates a package of an older format: its stages write the current one.
_RECREATE = "re-create it with this mfr (mfr-export onnx, then calibrate and build-engine as before)"


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
    """The batch sizes an engine accepts (TensorRT optimisation profile; enforced for every backend).

    The defaults are the one default profile: ``build-engine``'s and that of a plain package run by
    ONNX Runtime."""

    min: int = 1
    opt: int = 32
    max: int = 128

    def check(self) -> BatchProfile:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ManifestError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                                f"min {self.min}, opt {self.opt}, max {self.max}")
        return self


def _record(cls: Any, data: Any, what: str) -> Any:
    """A flat dataclass from a JSON object, naming the section when a field is missing or unknown."""
    if not isinstance(data, dict):
        raise ManifestError(f"{what} must be an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ManifestError(f"{what} has unknown fields {unknown}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ManifestError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class ExportRecord:
    """What ``mfr-export onnx`` exported from (training reads the weights back to start a student)."""

    weights: str  # the checkpoint's absolute path
    seconds: float


@dataclass(frozen=True)
class TrainingRecord:
    """How a trained student's weights were made (``mfr train``): which method, from which start (``init``:
    "teacher", the teacher's weights; "random", from scratch), from which teacher and on which faces."""

    method: str  # maskinv | g2d | meer
    init: str
    teacher_model: str
    teacher_weights_sha256: str
    data: str  # the training faces' source
    faces: int
    people: int
    validation_share: float  # share of the eligible training people set aside before training, never trained on
    seconds: float
    log: str  # the run's train_log.json
    # the people trained on (folder names; the validation people are not among them): thresholds measured on
    # any of them would be too low, so ``mfr thresholds`` refuses such a set. Empty: not recorded.
    trained_people: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, what: str) -> TrainingRecord:
        return _record(cls, data, what)


@dataclass(frozen=True)
class FallbackStep:
    """One accepted step of the accuracy-aware fallback."""

    fp_layers: list[str]
    heldout_cosine: float  # mean cosine INT8 vs FP32 on the held-out inputs (embeddings; a detector's raw outputs)
    lfw_drop_pp: float | None = None  # accuracy drop on the pairs named by the record's ``checked_on``
    # detectors: on the held-out frames, the FP32 faces (score >= 0.5) the INT8 model misses (pp), and the
    # landmark error of the faces it finds against FP32's, in % of the inter-ocular distance
    recall_drop_pp: float | None = None
    landmark_nme_pct: float | None = None


@dataclass(frozen=True)
class FallbackRecord:
    """Which layers of one INT8 model stay in floating point, and whether the target was met."""

    fp_layers: list[str]
    target_met: bool
    min_cosine: float
    steps: list[FallbackStep]
    max_drop_pp: float | None = None  # a recogniser: LFW accuracy; a detector: recall of the FP32 faces
    checked_on: str | None = None  # the pairs (frames) the drop was measured on (never those that judge)
    max_nme_pct: float | None = None  # a detector: the landmark error bar against FP32

    @property
    def chosen(self) -> FallbackStep:
        """The step whose float layers the INT8 model has: the last, unless the target was missed and an
        earlier step was better (``calibration.fallback.greedy_fallback``)."""
        return next((step for step in reversed(self.steps) if step.fp_layers == self.fp_layers), self.steps[-1])

    @classmethod
    def from_dict(cls, data: Any, what: str) -> FallbackRecord:
        record = _record(cls, data, what)
        return replace(record, steps=[_record(FallbackStep, step, f"{what} step") for step in record.steps])


@dataclass(frozen=True)
class CalibrationRecord:
    """What ``mfr-export calibrate`` measured and chose; ``build-engine`` reads the float layers."""

    method: str
    percentile: float | None
    images: int
    masked: int
    heldout_images: int
    source: str
    seed: int
    seconds_ranges: float
    seconds_total: float
    ranges: dict[str, list[float]]  # tensor -> [low, high]
    sensitivity: dict[str, float]  # the most sensitive layers: 1 - held-out cosine when quantized alone
    onnxruntime: FallbackRecord  # model.int8.onnx
    tensorrt_qdq: FallbackRecord  # model.int8.trt.onnx
    onnxruntime_u8_weights: FallbackRecord | None = None  # model.int8.u8.onnx (x86 CPUs without VNNI)
    tensorrt_qdq_fp16_cosine: float | None = None  # model.int8.trt.fp16.onnx, held-out cosine to FP32

    @classmethod
    def from_dict(cls, data: Any, what: str) -> CalibrationRecord:
        record = _record(cls, data, what)
        u8 = record.onnxruntime_u8_weights
        return replace(record, onnxruntime=FallbackRecord.from_dict(record.onnxruntime, f"{what}.onnxruntime"),
                       tensorrt_qdq=FallbackRecord.from_dict(record.tensorrt_qdq, f"{what}.tensorrt_qdq"),
                       onnxruntime_u8_weights=None if u8 is None else FallbackRecord.from_dict(
                           u8, f"{what}.onnxruntime_u8_weights"))


@dataclass(frozen=True)
class EngineParity:
    """How an engine compared with its source ONNX on real faces when it was built."""

    checked: str
    min_cosine: float | None = None
    mean_cosine: float | None = None
    # CPU INT8 engines: mean cosine to the package's FP32 model on the same faces, run on this CPU
    fp32_mean_cosine: float | None = None


@dataclass(frozen=True)
class Fp16Record:
    """The FP16 model written beside the FP32 one (``mfr.export.fp16``) and how it compared on real inputs."""

    file: str | None  # "model.fp16.onnx", or None when it missed the bar and was not written
    min_cosine: float  # lowest per-output cosine FP16 vs FP32 (ONNX Runtime, CPU)
    min_cosine_bar: float
    data: str
    kept_fp32: list[str]  # nodes left in FP32 by the range rules


@dataclass(frozen=True)
class StageRecords:
    """What each stage after export leaves for the next (absent where that stage has not run)."""

    export: ExportRecord | None = None
    calibration: CalibrationRecord | None = None
    engine_parity: EngineParity | None = None
    fp16: Fp16Record | None = None
    training: TrainingRecord | None = None  # a student from mfr train

    @classmethod
    def from_dict(cls, data: Any, what: str) -> StageRecords:
        record = _record(cls, data, what)
        export, calibration, parity = record.export, record.calibration, record.engine_parity
        return cls(
            training=None if record.training is None else TrainingRecord.from_dict(record.training,
                                                                  f"{what}.training"),
            fp16=None if record.fp16 is None else _record(Fp16Record, record.fp16, f"{what}.fp16"),
            export=None if export is None else _record(ExportRecord, export, f"{what}.export"),
            calibration=None if calibration is None else CalibrationRecord.from_dict(calibration,
                                                                                    f"{what}.calibration"),
            engine_parity=None if parity is None else _record(EngineParity, parity, f"{what}.engine_parity"),
        )


@dataclass(frozen=True)
class ThresholdTable:
    """Cosine thresholds at false-accept rates for one kind of probe, measured on impostor pairs.

    ``far`` descends; only FARs the pairs resolve are listed (``far * impostor_pairs >= 1``): below
    that, a threshold would be a guess, so ``at`` refuses it rather than extrapolating."""

    probe: str  # "unmasked" (unmasked probe vs unmasked template), "masked" (masked probe vs unmasked template),
    # "masked-template" (masked probe vs masked template: two masks make strangers look more alike)
    far: list[float]
    threshold: list[float]  # accepts (score >= threshold) at most that share of the impostor pairs
    impostor_pairs: int

    def at(self, far: float) -> float:
        """The threshold at ``far``, log-linearly interpolated between measured FARs."""
        if not self.far or far < self.far[-1]:
            lowest = self.far[-1] if self.far else None
            raise ManifestError(f"a {self.probe} threshold at FAR {far:.1e} is not resolvable: it was measured on "
                                f"{self.impostor_pairs:,} impostor pairs, down to FAR {lowest}")
        if far >= self.far[0]:
            return self.threshold[0]
        logs = -math.log10(far)
        xs = [-math.log10(f) for f in self.far]
        for (x0, t0), (x1, t1) in itertools.pairwise(zip(xs, self.threshold, strict=True)):
            if x0 <= logs <= x1:
                return t0 + (t1 - t0) * (logs - x0) / (x1 - x0)
        return self.threshold[-1]


@dataclass(frozen=True)
class ThresholdRecord:
    """Identification thresholds for one model file, and what they were measured on."""

    model_sha256: str  # the ONNX file whose embeddings were scored (an engine's source)
    data: str  # e.g. "LFW people in no evaluation pair: 1,549 images of 1,468 people"
    flip: bool  # flip-sum embeddings, as the gallery and identification use
    measured: str
    unmasked: ThresholdTable
    masked: ThresholdTable
    masked_template: ThresholdTable
    images: int = 0  # faces measured on (0: not recorded, an older record)
    people: int = 0
    # how many of those people the model was trained on: 0 none (checked against the package's training
    # record), more only if ``mfr thresholds --allow-seen`` accepted them; None: the package does not say whom
    # it trained on (a model mfr did not train), so nothing was checked
    seen_people: int | None = None
    # the same faces embedded (recognition.cohort), beside the manifest: the cohort of normalised scores
    cohort_file: str | None = None
    cohort_sha256: str | None = None

    @property
    def smallest_far(self) -> float | None:
        """The smallest FAR the unmasked table resolves (1 / impostor pairs, rounded to the FARs listed)."""
        return min(self.unmasked.far) if self.unmasked.far else None

    @classmethod
    def from_dict(cls, data: Any, what: str) -> ThresholdRecord:
        record = _record(cls, data, what)
        return replace(record, **{name: _record(ThresholdTable, getattr(record, name), f"{what}.{name}")
                                  for name in ("unmasked", "masked", "masked_template")})


@dataclass(frozen=True)
class EngineOptions:
    """Build options an engine was made with (a rebuild repeats them)."""

    workspace_mib: int = 1024
    dla_core: int | None = None
    version_compatible: bool = False
    int8_source: str = "qdq"  # qdq | calibration-cache (TensorRT implicit INT8)
    timing_cache: str | None = None
    spatial: list[list[int]] | None = None  # detector engines: [min, opt, max] [height, width]
    int8_float: str = "fp32"  # TensorRT INT8: the precision of the layers left unquantized


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
    options: EngineOptions = EngineOptions()
    build_seconds: float = 0.0
    built: str = ""
    # CPU INT8 engines: the CPU's INT8 instruction set at build time, and the weight scheme chosen for it
    # (a key of mfr.calibration.ort_qdq.WEIGHT_SCHEMES: "s8" or "u8")
    instruction_set: str | None = None
    int8_weights: str | None = None
    io_buffer_bytes: int | None = None  # input + outputs of one call at the largest profile shape

    @classmethod
    def from_dict(cls, data: Any, what: str) -> EngineRecord:
        record = _record(cls, data, what)
        return replace(record, profile=_record(BatchProfile, record.profile, f"{what}.profile").check(),
                       providers=list(record.providers),
                       options=_record(EngineOptions, record.options, f"{what}.options"))


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
    stages: StageRecords = StageRecords()
    engine: EngineRecord | None = None  # set in engine directories written by ``mfr-export build-engine``
    thresholds: list[ThresholdRecord] = field(default_factory=list)  # one per model file measured
    format_version: int = FORMAT_VERSION

    def thresholds_for(self, model_sha256: str) -> ThresholdRecord | None:
        """The identification thresholds measured with that model file, if any."""
        return next((t for t in self.thresholds if t.model_sha256 == model_sha256), None)

    def with_thresholds(self, record: ThresholdRecord) -> Manifest:
        """This manifest with ``record`` replacing any earlier thresholds of the same model file."""
        kept = [t for t in self.thresholds if t.model_sha256 != record.model_sha256]
        return replace(self, thresholds=[*kept, record])

    def float_layers(self, int8_model: Literal["onnxruntime", "tensorrt_qdq"]) -> list[str]:
        """The layers the calibration kept in floating point in that INT8 model ([] if never calibrated)."""
        calibration = self.stages.calibration
        return [] if calibration is None else list(getattr(calibration, int8_model).fp_layers)

    def export_weights(self) -> Path | None:
        """The checkpoint this package was exported from, as recorded at export."""
        export = self.stages.export
        return None if export is None else Path(export.weights)

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
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            age = ("an older" if isinstance(version, int) and version < FORMAT_VERSION else "another")
            raise ManifestError(f"{source} was written by {age} mfr (manifest format {version!r}); this mfr reads "
                                f"format {FORMAT_VERSION}: {_RECREATE}")
        try:
            parity, engine = data.get("parity"), data.get("engine")
            return cls(
                model=str(data["model"]),
                kind=str(data["kind"]),
                spec=PreprocessSpec.from_dict(data["spec"]),
                files=_package_files(data["files"], source),
                inputs=[TensorInfo(**t) for t in data["inputs"]],
                outputs=[TensorInfo(**t) for t in data["outputs"]],
                sha256=dict(data["sha256"]),
                versions=dict(data["versions"]),
                parity=None if parity is None else ParityReport(**parity),
                opset=data.get("opset"),
                decoder=data.get("decoder"),
                created=str(data.get("created", "")),
                stages=StageRecords.from_dict(data.get("stages", {}), f"{source}: stages"),
                engine=None if engine is None else EngineRecord.from_dict(engine, f"{source}: engine"),
                thresholds=[ThresholdRecord.from_dict(t, f"{source}: thresholds") for t in data.get("thresholds", [])],
            )
        except KeyError as exc:
            raise ManifestError(f"{source}: missing field {exc}") from None
        except SpecError as exc:
            raise ManifestError(f"{source}: {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{source}: malformed manifest ({exc})") from None


def _package_files(files: Any, source: str) -> dict[str, str]:
    """The ``files`` of a manifest: names inside the package's folder (a manifest that named ``../x`` or
    ``/x`` would make mfr read, copy or hash a file elsewhere)."""
    files = dict(files)
    for key, name in files.items():
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ManifestError(f"{source}: files[{key!r}] is {name!r}, not a file inside the package")
    return files


def load_manifest(directory: Path) -> Manifest:
    """Read ``directory/manifest.json`` with errors that name the file."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: {directory} is not a model package")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
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
