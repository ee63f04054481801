"""Parity of the exported ONNX model with the torch model, measured on real inputs: aligned LFW faces
for recognition models (``real_inputs``), real photos for detectors, preprocessed by the runtime's own
CPU path from the spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mfr.data.lfw import lfw_root
from mfr.errors import DataError
from mfr.export.onnx_export import INPUT_NAME
from mfr.export.real_inputs import detector_photos, sample_faces
from mfr.manifest import ParityReport
from mfr.paths import report_path
from mfr.registry import ModelEntry
from mfr.runtime.similarity import row_cosines

_BATCH = 16


def recognition_batches(entry: ModelEntry, num_faces: int) -> tuple[list[np.ndarray], str]:
    """Aligned LFW faces, normalised by the spec, in batches (so the dynamic batch is exercised too)."""
    faces = sample_faces(num_faces, entry.spec)
    batches = [faces[i:i + _BATCH] for i in range(0, len(faces), _BATCH)]
    return batches, f"{len(faces)} aligned LFW faces ({report_path(lfw_root())})"


def detector_batches(entry: ModelEntry, num_photos: int) -> tuple[list[np.ndarray], str]:
    """Real unaligned photos at their own aspect ratios (longest side <= 640), one per batch."""
    return detector_photos(num_photos, entry.spec)


def parity_batches(entry: ModelEntry, num_samples: int) -> tuple[list[np.ndarray], str]:
    if entry.kind == "detection":
        return detector_batches(entry, num_samples)
    return recognition_batches(entry, num_samples)


def measure_parity(model: torch.nn.Module, onnx_path: Path, batches: list[np.ndarray],
                   output_names: tuple[str, ...], data: str) -> ParityReport:
    """Run torch and ONNX Runtime (CPU, all graph optimisations) on the same batches and compare."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    cosines: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    max_diff = dict.fromkeys(output_names, 0.0)
    for batch in batches:
        with torch.no_grad():
            reference = model(torch.from_numpy(batch))
        reference = reference if isinstance(reference, tuple) else (reference,)
        produced = session.run(list(output_names), {INPUT_NAME: batch})
        for name, ref, out in zip(output_names, reference, produced, strict=True):
            ref_np = ref.numpy()
            if ref_np.shape != out.shape:
                raise DataError(f"{onnx_path}: output {name} has shape {out.shape}, torch gives {ref_np.shape}")
            cosines[name].append(row_cosines(ref_np, out))
            max_diff[name] = max(max_diff[name], float(np.abs(ref_np - out).max()))
    per_output = {
        name: {"min_cosine": float(np.concatenate(cosines[name]).min()), "max_abs_diff": max_diff[name]}
        for name in output_names
    }
    return ParityReport(
        samples=sum(len(b) for b in batches),
        data=data,
        min_cosine=min(v["min_cosine"] for v in per_output.values()),
        max_abs_diff=max(v["max_abs_diff"] for v in per_output.values()),
        per_output=per_output,
    )
