"""``mfr-export build-engine``: a model package -> an engine directory for this machine.

An engine directory is a model package whose manifest has an ``engine`` record: backend and version,
the GPU (name, compute capability) or CPU it was built on, precision, batch profile, the source ONNX
and its sha256, the build options and time. The runtime compares that record with the machine it
loads on (``mfr.runtime.engine_check``). Before the directory appears, the engine is loaded the way
the runtime loads it and compared with its source ONNX on real faces (when LFW is reachable).

``rebuild_if_mismatched`` rebuilds an engine in place for the machine it is on (``--rebuild-on-mismatch``
of ``mfr eval`` and ``mfr bench``): the runtime only refuses, this layer may build. Torch-free, so that
it works on a device.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import mfr
from mfr.atomic import check_output_dir, sha256_file, staged_output_dir
from mfr.errors import DataError, EngineError, EngineMismatchError, ManifestError
from mfr.export.engine_builders import ENGINE_BUILDERS, BuildJob, backend_choices, choose_backend
from mfr.export.real_inputs import DETECTOR_MAX_SIDE, detector_photos, sample_faces
from mfr.manifest import BatchProfile, EngineOptions, EngineParity, EngineRecord, Manifest, listed_file, load_manifest
from mfr.runtime.detector_heads import head_for
from mfr.runtime.engine import Engine
from mfr.runtime.engine_backends import ENGINE_BACKENDS, mismatches, rebuild_command
from mfr.runtime.engine_check import MachineState
from mfr.runtime.engine_load import check_fits_machine, open_engine
from mfr.runtime.engine_ort import onnxruntime_session
from mfr.runtime.machine import instruction_set, int8_weight_scheme
from mfr.runtime.similarity import row_cosines

PRECISIONS = ("fp32", "fp16", "int8")
# The lowest cosine to the source ONNX (run by ONNX Runtime on the CPU) an engine may show on real faces.
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}
# A CPU INT8 engine's mean cosine to the FP32 model on real faces, run on the CPU it was built for: it catches
# a CPU whose integer kernels spoil the model (on x86 without VNNI, 8-bit weights saturate).
MIN_INT8_CPU_FP32_COSINE = 0.99
PARITY_FACES = 32
PARITY_PHOTOS = 4
# The batch profile by package kind: recognition embeds many faces per call; a detector gets one frame.
DEFAULT_PROFILES = {"recognition": BatchProfile(), "detection": BatchProfile(1, 1, 1)}
MIN_SIDE = 32  # the smallest height/width a detector engine accepts (one cell of the coarsest stride)


def detector_spatial(max_side: int) -> list[list[int]]:
    """TensorRT's [min, opt, max] [height, width] for a detector fed images whose longest side is at most
    ``max_side`` (``fit_longest_side``): any aspect ratio up to a square, tuned for a 16:9 landscape frame."""
    return [[MIN_SIDE, MIN_SIDE], [max(MIN_SIDE, round(max_side * 9 / 16)), max_side], [max_side, max_side]]


def copy_cohorts(manifest: Manifest, package: Path, stage: Path) -> None:
    """The cohort files the thresholds name (``mfr thresholds --write``) travel with them into the engine."""
    for record in manifest.thresholds:
        if record.cohort_file is not None and (package / record.cohort_file).is_file():
            shutil.copy2(package / record.cohort_file, stage / record.cohort_file)


def io_buffer_bytes(source: Path, manifest: Manifest, profile: BatchProfile,
                    spatial: list[list[int]] | None) -> tuple[int, int]:
    """(input, outputs) bytes of one call at the profile's largest shape: what the engine's I/O buffers take.

    The outputs' sizes come from running ``source`` once in ONNX Runtime on one zero input of the largest
    height and width (outputs grow linearly with the batch)."""
    tensor = manifest.inputs[0]
    height, width = spatial[2] if spatial is not None else (tensor.fixed_hw() or (0, 0))
    one = np.zeros((1, int(tensor.shape[1]), height, width), np.float32)
    session = onnxruntime_session(str(source))
    outputs = session.run(None, {session.get_inputs()[0].name: one})
    return one.nbytes * profile.max, sum(out.nbytes for out in outputs) * profile.max


@dataclass(frozen=True)
class EngineBuilder:
    """Loader-style: the constructor stores the request, calling it writes the engine directory."""

    package: Path
    out: Path
    precision: str = "fp32"
    backend: str = "auto"
    min_batch: int | None = None  # None: DEFAULT_PROFILES for the package's kind
    opt_batch: int | None = None  # None: the kind's default, within [min_batch, max_batch]
    max_batch: int | None = None
    max_side: int | None = None  # detector packages: the longest input side (default DETECTOR_MAX_SIDE)
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    dla_core: int | None = None
    version_compatible: bool = False
    int8_source: str = "qdq"  # qdq | calibration-cache (TensorRT 8.x/10.x implicit INT8)
    int8_weights: str | None = None  # ONNX Runtime INT8: "s8" | "u8"; None: the scheme for this CPU
    int8_float: str = "fp32"  # TensorRT INT8: layers left unquantized in fp32, or fp16 (model.int8.trt.fp16.onnx)
    instruction_set: str | None = None  # the CPU's INT8 instruction set; None: read from this machine
    force: bool = False

    def batch_profile(self, kind: str) -> BatchProfile:
        default = DEFAULT_PROFILES.get(kind, BatchProfile())
        low = self.min_batch or default.min
        high = self.max_batch or max(default.max, low)
        opt = self.opt_batch or min(max(default.opt, low), high)
        return BatchProfile(low, opt, high).check()

    def spatial(self, kind: str) -> list[list[int]] | None:
        """The detector's dynamic [min, opt, max] [height, width]; None for fixed-size recognition inputs."""
        return detector_spatial(self.max_side or DETECTOR_MAX_SIDE) if kind == "detection" else None

    def cpu_instruction_set(self) -> str:
        return self.instruction_set if self.instruction_set is not None else instruction_set()

    def weight_scheme(self) -> str:
        """The weight scheme of an ONNX Runtime INT8 engine for this CPU (mfr.calibration.ort_qdq)."""
        if self.int8_weights is not None:
            return self.int8_weights
        return int8_weight_scheme(self.cpu_instruction_set())

    def __call__(self, log: Callable[[str], None] = print) -> Manifest:
        started = time.perf_counter()
        package, out = Path(self.package).resolve(), Path(self.out)
        source_manifest = load_manifest(package)
        self.check_request(source_manifest, package)
        backend = choose_backend(self.backend)
        self.check_backend(backend)
        source, extra = self.source_files(source_manifest, package, backend)
        check_output_dir(out, self.force)
        log(f"building a {backend} {self.precision} engine from {source}")
        with staged_output_dir(out, self.force) as stage:
            target = stage / ENGINE_BUILDERS.entry(backend).engine_file
            record = self.build(backend, source, extra, source_manifest, target, log)
            record = replace(record, build_seconds=round(time.perf_counter() - started, 2))
            manifest = replace(
                source_manifest,
                files={"engine": target.name},
                sha256={"engine": sha256_file(target), "source": record.source_sha256},
                versions={**source_manifest.versions, "mfr": mfr.__version__, backend: record.backend_version},
                created=record.built,
                engine=record,
            )
            manifest.save(stage)
            copy_cohorts(source_manifest, package, stage)
            with open_engine(stage) as engine:
                parity = self.verify(engine, source, source_manifest, log)
            manifest.stages = replace(manifest.stages, engine_parity=parity)
            manifest.save(stage)
        log(f"wrote {out} in {time.perf_counter() - started:.1f} s")
        return manifest

    def check_request(self, manifest: Manifest, package: Path) -> None:
        if manifest.engine is not None:
            raise EngineError(f"{package} is an engine directory, not a model package; build from the package "
                              f"it came from: {manifest.engine.source_package}")
        if self.precision not in PRECISIONS:
            raise EngineError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.backend not in backend_choices():
            raise EngineError(f"unknown backend {self.backend!r}; choose from {', '.join(backend_choices())}")
        try:
            profile = self.batch_profile(manifest.kind)
        except ManifestError as exc:
            raise EngineError(f"--min-batch/--opt-batch/--max-batch: {exc}") from None
        if self.max_side is not None and manifest.kind != "detection":
            raise EngineError(f"--max-side applies to detector packages; {package} is a {manifest.kind} package")
        if self.max_side is not None and self.max_side < MIN_SIDE:
            raise EngineError(f"--max-side must be at least {MIN_SIDE}, got {self.max_side}")
        if self.dla_core is not None:
            # DLA runs static shapes only and no FP32: TensorRT would fall back to the GPU or fail late
            if not profile.min == profile.opt == profile.max or self.spatial(manifest.kind) is not None:
                raise EngineError(f"--dla-core needs one fixed input shape: give --min-batch = --opt-batch = "
                                  f"--max-batch (got {profile.min}/{profile.opt}/{profile.max})"
                                  + ("; a detector's dynamic height and width cannot run on DLA"
                                     if manifest.kind == "detection" else ""))
            if self.precision not in ("fp16", "int8"):
                raise EngineError(f"--dla-core runs FP16 or INT8 only, not {self.precision}")
        if self.workspace_mib < 1:
            raise EngineError(f"--workspace must be at least 1 MiB, got {self.workspace_mib}")
        if self.int8_float not in ("fp32", "fp16"):
            raise EngineError(f"--int8-float is fp32 or fp16, got {self.int8_float!r}")
        if self.int8_float == "fp16" and (self.precision != "int8" or self.int8_source != "qdq"):
            raise EngineError("--int8-float fp16 applies to TensorRT INT8 from the Q/DQ model (--precision int8, "
                              "--int8-source qdq)")
        if self.int8_weights not in (None, "s8", "u8"):
            raise EngineError(f"INT8 weights are s8 or u8, got {self.int8_weights!r}")

    def check_backend(self, backend: str) -> None:
        entry = ENGINE_BUILDERS.entry(backend)
        reason = entry.unavailable()
        if reason is not None:
            raise EngineError(f"--backend {backend}: {reason}")
        refused = entry.refuse(self)
        if refused is not None:
            raise EngineError(refused)

    def source_files(self, manifest: Manifest, package: Path, backend: str) -> tuple[Path, Path | None]:
        model_key, extra_key = ENGINE_BUILDERS.entry(backend).source_keys(self)

        def package_file(key: str) -> Path:
            return listed_file(package, manifest, key, f"{package} has no {key} file for a {self.precision} {backend} "
                               f"engine (files: {sorted(manifest.files)}); create it with: mfr-export calibrate "
                               f"--package {package} --out <calibrated package>")

        return package_file(model_key), None if extra_key is None else package_file(extra_key)

    def build(self, backend: str, source: Path, extra: Path | None, manifest: Manifest, target: Path,
              log: Callable[[str], None]) -> EngineRecord:
        spatial = self.spatial(manifest.kind)
        profile = self.batch_profile(manifest.kind)
        options = EngineOptions(workspace_mib=self.workspace_mib, dla_core=self.dla_core,
                                version_compatible=self.version_compatible, int8_source=self.int8_source,
                                timing_cache=None if self.timing_cache is None else str(self.timing_cache),
                                spatial=spatial, int8_float=self.int8_float)
        io_bytes = io_buffer_bytes(source, manifest, profile, spatial)
        log(f"I/O buffers at the largest shape (batch {profile.max}"
            + ("" if spatial is None else f", {spatial[2][0]}x{spatial[2][1]}") + f"): "
            f"input {io_bytes[0] / 2**20:.1f} MiB, outputs {io_bytes[1] / 2**20:.1f} MiB")
        built = ENGINE_BUILDERS.entry(backend).build(self, BuildJob(source, extra, manifest, target, profile, spatial),
                                                     log)
        cpu_int8 = built.on_cpu and self.precision == "int8"
        if cpu_int8:
            log(f"CPU INT8: {self.cpu_instruction_set()}, {self.weight_scheme()} weights")
        return EngineRecord(
            backend=backend, backend_version=built.version, device=built.device,
            compute_capability=built.compute_capability, providers=built.providers, precision=self.precision,
            profile=profile, io_buffer_bytes=sum(io_bytes), source_package=str(source.parent),
            source_file=source.name, source_sha256=sha256_file(source), options=options,
            built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            instruction_set=self.cpu_instruction_set() if built.on_cpu else None,
            int8_weights=self.weight_scheme() if cpu_int8 else None,
        )

    def verify(self, engine: Engine, source: Path, manifest: Manifest, log: Callable[[str], None]) -> EngineParity:
        """Run the engine as the runtime will, and compare it with its source ONNX on real faces (photos for
        a detector)."""
        if manifest.kind == "detection":
            return self.verify_detector(engine, source, manifest, log)
        try:
            faces = sample_faces(PARITY_FACES, manifest.spec)
        except DataError as exc:
            log(f"engine parity not measured: {exc}")
            return EngineParity(f"not measured ({exc})")
        reference = onnxruntime_session(str(source))
        expected = reference.run(None, {manifest.inputs[0].name: faces})[0]
        got = engine.raw_embeddings(faces)
        cosine = row_cosines(expected, got)
        low = float(cosine.min())
        log(f"engine vs {source.name} on {len(faces)} LFW faces: min cosine {low:.6f}")
        if not low >= MIN_COSINE[self.precision]:
            raise EngineError(f"the {self.precision} engine differs from {source} on real faces: min cosine "
                              f"{low:.6f} < {MIN_COSINE[self.precision]}; nothing was written to {self.out}")
        fp32_mean = None
        record = engine.manifest.engine
        if record is not None and record.int8_weights is not None:
            # the INT8 source runs on this CPU's integer kernels too, so the parity above cannot see what they
            # do to the model: compare with the FP32 model
            fp32 = onnxruntime_session(str(source.parent / manifest.files["onnx"]))
            fp32_mean = float(row_cosines(fp32.run(None, {manifest.inputs[0].name: faces})[0], got).mean())
            log(f"INT8 engine vs the FP32 model on this CPU ({record.instruction_set}, {record.int8_weights} "
                f"weights): mean cosine {fp32_mean:.5f}")
            if not fp32_mean >= MIN_INT8_CPU_FP32_COSINE:
                raise EngineError(f"on this CPU ({record.instruction_set}) the INT8 engine with "
                                  f"{record.int8_weights} weights is too far from the FP32 model on real "
                                  f"faces: mean cosine {fp32_mean:.5f} < {MIN_INT8_CPU_FP32_COSINE}; nothing was "
                                  f"written to {self.out}")
        return EngineParity(f"{len(faces)} LFW faces vs {source.name} (ONNX Runtime, CPU)", low, float(cosine.mean()),
                            fp32_mean)

    def verify_detector(self, engine: Engine, source: Path, manifest: Manifest,
                        log: Callable[[str], None]) -> EngineParity:
        """Every output of the engine vs the source ONNX (ONNX Runtime, CPU) on real photos of several aspect
        ratios, as the detector feeds them: cosine of each output over the whole photo."""
        try:
            photos, described = detector_photos(PARITY_PHOTOS, manifest.spec, self.max_side or DETECTOR_MAX_SIDE,
                                                head_for(manifest.decoder, str(source)).pad_multiple)
        except DataError as exc:
            log(f"engine parity not measured: {exc}")
            return EngineParity(f"not measured ({exc})")
        reference = onnxruntime_session(str(source))
        cosines = []
        for photo in photos:
            outputs = reference.run(engine.output_names, {manifest.inputs[0].name: photo})
            expected = dict(zip(engine.output_names, outputs, strict=True))
            got = engine.infer(photo)
            cosines += [output_cosine(expected[name], got[name]) for name in engine.output_names]
        low = min(cosines)
        log(f"engine vs {source.name} on {described}: min output cosine {low:.6f}")
        if not low >= MIN_COSINE[self.precision]:
            raise EngineError(f"the {self.precision} detector engine differs from {source} on real photos: min "
                              f"output cosine {low:.6f} < {MIN_COSINE[self.precision]}; nothing was written to "
                              f"{self.out}")
        return EngineParity(f"{described} vs {source.name} (ONNX Runtime, CPU)", low, float(np.mean(cosines)))


def output_cosine(expected: np.ndarray, got: np.ndarray) -> float:
    """Cosine of two whole outputs; 1 when both are zero (an INT8 detector's objectness at a stride where the
    photo has no face of that size rounds to zero in the engine and in its source alike)."""
    if not expected.any() and not got.any():
        return 1.0
    return float(row_cosines(expected.reshape(1, -1), got.reshape(1, -1))[0])


def rebuild_if_mismatched(directory: Path, log: Callable[[str], None] = print) -> bool:
    """Rebuild the engine in ``directory`` in place when its build record does not fit this machine, from
    its recorded source and options; True if it was rebuilt. A plain model package is left alone.

    The source ONNX must still be there with the recorded sha256: an engine is never rebuilt from a
    different model than the one it was verified against."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    record = manifest.engine
    if record is None:
        return False
    found = mismatches(record, MachineState.current())
    if not found:
        return False
    if not ENGINE_BACKENDS.entry(record.backend).built_here:  # imported, not built: only installing its runtime helps
        raise EngineMismatchError(f"{directory} does not fit this machine:\n  - " + "\n  - ".join(found))
    source = Path(record.source_package) / record.source_file
    if not source.is_file() or sha256_file(source) != record.source_sha256:
        raise EngineMismatchError(f"{directory}: cannot rebuild, its source {source} is missing or changed since "
                                  f"the build; run: {rebuild_command(record, directory)}")
    log(f"rebuilding {directory} for this machine from {source}:\n  - " + "\n  - ".join(found))
    options = record.options
    EngineBuilder(package=Path(record.source_package), out=directory, precision=record.precision,
                  backend=record.backend, min_batch=record.profile.min, opt_batch=record.profile.opt,
                  max_batch=record.profile.max, max_side=None if options.spatial is None else options.spatial[2][1],
                  workspace_mib=options.workspace_mib,
                  timing_cache=None if options.timing_cache is None else Path(options.timing_cache),
                  dla_core=options.dla_core, version_compatible=options.version_compatible,
                  int8_source=options.int8_source, int8_float=options.int8_float, force=True)(log=log)
    check_fits_machine(directory, load_manifest(directory))
    return True
