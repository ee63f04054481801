"""An OpenVINO IR built elsewhere as an engine directory (``mfr-export import-ir``), to measure it with mfr.

The IR must be a variant of a package's network (the same input, the same outputs by position): OpenVINO's
own INT8 variant of face-reidentification-retail-0095, say. The engine directory takes the package's
manifest (preprocessing spec, tensors, thresholds) and the IR's two files with their hashes, and records how
close the IR comes to the package's FP32 model on real faces. mfr did not build or calibrate it, so it holds
it to no accuracy bar beyond being that network (a mean cosine of at least ``MIN_SAME_NETWORK_COSINE``):
``mfr eval`` and ``mfr bench latency`` say what it is worth.
"""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mfr
from mfr.atomic import sha256_file, staged_output_dir
from mfr.errors import EngineError
from mfr.export.real_inputs import sample_faces
from mfr.manifest import BatchProfile, EngineParity, EngineRecord, Manifest, load_manifest
from mfr.runtime.engine_load import open_engine
from mfr.runtime.engine_openvino import openvino_version
from mfr.runtime.engine_ort import onnxruntime_session
from mfr.runtime.machine import cpu_name, instruction_set
from mfr.runtime.similarity import row_cosines

IR_FILES = {"engine": "model.xml", "engine_weights": "model.bin"}
PARITY_FACES = 32
# Below this mean cosine to the package's FP32 model, the IR is not a variant of that network
MIN_SAME_NETWORK_COSINE = 0.5


def ir_precision(xml: Path) -> str:
    """int8 for an IR with FakeQuantize layers (OpenVINO's quantized models), else fp32."""
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise EngineError(f"{xml} is not an OpenVINO IR: {exc}") from None
    return "int8" if any(layer.get("type") == "FakeQuantize" for layer in root.iterfind("layers/layer")) else "fp32"


@dataclass(frozen=True)
class IrImporter:
    """Loader-style: the constructor stores the request, calling it writes the engine directory."""

    package: Path
    ir: Path
    out: Path
    precision: str | None = None  # None: from the IR (int8 where it holds FakeQuantize layers)
    max_batch: int = BatchProfile().max
    force: bool = False

    def __call__(self, log: Callable[[str], None] = print) -> Manifest:
        package, ir = Path(self.package).resolve(), Path(self.ir).resolve()
        source = load_manifest(package)
        if source.engine is not None or source.kind != "recognition":
            raise EngineError(f"{package}: an IR is imported for a recognition model package (from mfr-export "
                              f"onnx), not a {'engine directory' if source.engine else source.kind + ' package'}")
        version = openvino_version()
        if version is None:
            raise EngineError("importing an IR needs OpenVINO's runtime to run it: pip install openvino")
        for path in (ir, ir.with_suffix(".bin")):
            if not path.is_file():
                raise EngineError(f"OpenVINO IR file not found: {path} (an IR is an .xml with its .bin beside it)")
        precision = self.precision or ir_precision(ir)
        profile = BatchProfile(1, min(BatchProfile().opt, self.max_batch), self.max_batch).check()
        log(f"importing {ir} ({precision}) as an OpenVINO {version} engine for {package}")
        with staged_output_dir(Path(self.out), self.force) as stage:
            shutil.copyfile(ir, stage / IR_FILES["engine"])
            shutil.copyfile(ir.with_suffix(".bin"), stage / IR_FILES["engine_weights"])
            record = EngineRecord(
                backend="openvino", backend_version=version, device=cpu_name(), compute_capability=None,
                providers=[], precision=precision, profile=profile, source_package=str(package),
                source_file=str(ir), source_sha256=sha256_file(ir),
                built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), instruction_set=instruction_set())
            manifest = replace(
                source, files=dict(IR_FILES), engine=record, created=record.built,
                sha256={key: sha256_file(stage / name) for key, name in IR_FILES.items()},
                versions={**source.versions, "mfr": mfr.__version__, "openvino": version})
            manifest.save(stage)
            parity = self.compare(stage, package, source, log)
            manifest.stages = replace(manifest.stages, engine_parity=parity)
            manifest.save(stage)
        log(f"wrote {self.out}")
        return manifest

    def compare(self, stage: Path, package: Path, source: Manifest, log: Callable[[str], None]) -> EngineParity:
        """How close the IR comes to the package's FP32 model (ONNX Runtime, CPU) on real faces."""
        faces = sample_faces(PARITY_FACES, source.spec)
        expected = onnxruntime_session(str(package / source.files["onnx"])).run(None, {source.inputs[0].name: faces})[0]
        with open_engine(stage) as engine:
            cosine = row_cosines(expected, engine.raw_embeddings(faces))
        low, mean = float(cosine.min()), float(cosine.mean())
        log(f"IR vs the package's FP32 model on {len(faces)} LFW faces: min cosine {low:.5f}, mean {mean:.5f}")
        if not mean >= MIN_SAME_NETWORK_COSINE:
            raise EngineError(f"{self.ir} is not a variant of {package}'s network: mean cosine {mean:.3f} to its "
                              f"FP32 model on real faces; nothing was written to {self.out}")
        return EngineParity(f"{len(faces)} LFW faces vs {source.files['onnx']} (ONNX Runtime, CPU; imported, "
                            f"not built by mfr)", low, mean, mean)
