"""Build a verified ONNX model package: export, check, measure parity, write the manifest, atomically."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime
import torch

import mfr
from mfr.atomic import check_output_dir, sha256_file, staged_output_dir
from mfr.errors import CheckpointError, ParityError
from mfr.export.fp16 import MIN_FP16_COSINE, fp16_min_cosine, to_fp16
from mfr.export.onnx_export import DEFAULT_OPSET, graph_io, torch_to_onnx
from mfr.export.parity import measure_parity, parity_batches
from mfr.manifest import ExportRecord, Fp16Record, Manifest, StageRecords, TrainingRecord
from mfr.models.checkpoint import load_weights, shipped_training, shipped_weights, weights_sha256
from mfr.registry import get_model_entry

ONNX_NAME = "model.onnx"
FP16_NAME = "model.fp16.onnx"
MIN_PARITY_COSINE = 0.9999


@dataclass(frozen=True)
class OnnxPackageExporter:
    """Loader-style: the constructor stores the request, calling it builds the package."""

    model: str
    out: Path
    weights: Path | None = None
    opset: int = DEFAULT_OPSET
    parity_samples: int = 64
    min_cosine: float = MIN_PARITY_COSINE
    force: bool = False
    training: TrainingRecord | None = None  # how the weights were trained, when mfr train made them

    def __call__(self, log: Callable[[str], None] = print) -> Manifest:
        entry = get_model_entry(self.model)
        weights = Path(self.weights) if self.weights is not None else shipped_weights(entry)
        # the shipped weights' own record, unless the caller trained these weights (mfr train)
        training = self.training if self.training is not None or self.weights is not None else shipped_training(entry)
        if weights is None:
            raise CheckpointError(f"model {entry.name} ships no weights; pass --weights PATH to its checkpoint")
        out = Path(self.out)
        check_output_dir(out, self.force)
        log(f"loading {entry.name} weights from {weights}")
        model = load_weights(entry.build(), weights, entry.name, entry.strip_prefix)
        batches, data = parity_batches(entry, self.parity_samples)
        with staged_output_dir(out, self.force) as stage:
            onnx_path = stage / ONNX_NAME
            log(f"exporting to ONNX (opset {self.opset}) and checking the graph")
            started = time.perf_counter()
            torch_to_onnx(model, entry, onnx_path, self.opset)
            log(f"measuring parity with torch on {data}")
            report = measure_parity(model, onnx_path, batches, entry.output_names, data)
            if report.min_cosine < self.min_cosine:
                raise ParityError(
                    f"{entry.name}: ONNX parity failed, min cosine {report.min_cosine:.6f} < {self.min_cosine} "
                    f"(max abs diff {report.max_abs_diff:.3g}) on {data}; nothing was written to {out}"
                )
            inputs, outputs = graph_io(onnx_path)
            fp16 = self.write_fp16(onnx_path, stage / FP16_NAME, batches, data, log)
            manifest = Manifest(
                model=entry.name,
                kind=entry.kind,
                spec=entry.spec,
                files={"onnx": ONNX_NAME},
                inputs=inputs,
                outputs=outputs,
                sha256={**weights_sha256(weights), "onnx": sha256_file(onnx_path)},
                versions={
                    "mfr": mfr.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                    "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                },
                parity=report,
                opset=self.opset,
                decoder=entry.decoder,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                stages=StageRecords(export=ExportRecord(str(weights), round(time.perf_counter() - started, 2)),
                                    fp16=fp16, training=training),
            )
            if fp16.file is not None:
                manifest.files["onnx_fp16"] = fp16.file
                manifest.sha256["onnx_fp16"] = sha256_file(stage / fp16.file)
            manifest.save(stage)
        return manifest

    @staticmethod
    def write_fp16(onnx_path: Path, out: Path, batches: list, data: str, log: Callable[[str], None]) -> Fp16Record:
        """The FP16 model beside the FP32 one, kept only if every output stays within ``MIN_FP16_COSINE``."""
        conversion = to_fp16(onnx_path, batches)
        onnx.save(conversion.model, str(out))
        low = min(fp16_min_cosine(onnx_path, out, batches).values())
        kept = f", {len(conversion.kept_fp32)} nodes kept in FP32" if conversion.kept_fp32 else ""
        if low < MIN_FP16_COSINE:
            out.unlink()
            log(f"FP16 model not written: min cosine to FP32 {low:.6f} < {MIN_FP16_COSINE} on {data}{kept}")
            return Fp16Record(None, round(low, 6), MIN_FP16_COSINE, data, conversion.kept_fp32)
        log(f"wrote {out.name}: min cosine to FP32 {low:.6f} on {data}{kept}")
        return Fp16Record(out.name, round(low, 6), MIN_FP16_COSINE, data, conversion.kept_fp32)
