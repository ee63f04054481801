"""The frozen teacher: from a model package (the checkpoint it was exported from) or a checkpoint.

Its embeddings of the training faces are computed once. From a package they come from the package's
own ONNX model through the runtime (the teacher as deployed, and several times faster than torch on a
CPU); from a checkpoint, or when training on a GPU, from torch on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfr.atomic import sha256_file
from mfr.errors import CheckpointError, MfrError
from mfr.manifest import MANIFEST_NAME, load_manifest
from mfr.models.checkpoint import load_weights, weights_sha256
from mfr.progress import Progress, no_progress
from mfr.registry import ModelEntry, get_model_entry
from mfr.runtime.preprocess import normalize
from mfr.spec import PreprocessSpec

_BATCH = 64
INITS = ("teacher", "random")  # where a G2D or MEER student starts: the teacher's weights, or from scratch


def _with_teacher_weights(student: dict[str, torch.Tensor],
                          teacher: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``student``'s state with every tensor the teacher has replaced by the teacher's. The student's parts
    hold the teacher's layers under the teacher's names, one prefix deeper (``trunk.conv1.weight`` is the
    teacher's ``conv1.weight``); every teacher tensor must find its place, so a split that lost a layer fails
    here rather than training it from random weights."""
    out, placed = dict(student), set()
    for key in student:
        inner = key.split(".", 1)[1] if "." in key else key
        if inner in teacher and teacher[inner].shape == student[key].shape:
            out[key] = teacher[inner].clone()
            placed.add(inner)
    missing = sorted(set(teacher) - placed)
    if missing:
        raise MfrError(f"the student has no place for the teacher's {', '.join(missing[:8])}")
    return out


@dataclass(frozen=True)
class Teacher:
    entry: ModelEntry
    weights: Path
    package: Path | None

    def model(self) -> nn.Module:
        return load_weights(self.entry.build(), self.weights, self.entry.name, self.entry.strip_prefix)

    def student(self, from_scratch: bool = False) -> nn.Module:
        """A trainable copy of the teacher (or, ``from_scratch``, of its architecture)."""
        return self.entry.build() if from_scratch else self.model()

    def student_on(self, method: str, init: str) -> tuple[ModelEntry, nn.Module]:
        """The registry entry and module of a ``method`` student (``g2d``, ``meer``, ``meer-plain``): with
        ``init`` "teacher", ``method-<teacher>`` holding the teacher's weights in every layer the teacher
        has (``mfr.models.split``), the method's own parts new; with "random", the from-scratch ``method``."""
        if init not in INITS:
            raise MfrError(f"--init must be one of {', '.join(INITS)}, not {init!r}")
        if init == "random":
            entry = get_model_entry(method)
            return entry, entry.build()
        entry = get_model_entry(f"{method}-{self.entry.name}")
        student = entry.build()
        student.load_state_dict(_with_teacher_weights(student.state_dict(), self.model().state_dict()), strict=True)
        return entry, student.train()

    def raw_embeddings_and_mirrors(self, images: np.ndarray, spec: PreprocessSpec, device: str = "cpu",
                                   progress: Progress = no_progress) -> np.ndarray:
        """(N, 2, D) raw embeddings of each uint8 BGR face and of its mirror image. On a CPU from the package's
        ONNX model when there is one; on a GPU (``device``) from torch there."""
        return self._embed(images, spec, device, progress, mirrors=True)

    def raw_embeddings(self, images: np.ndarray, spec: PreprocessSpec, device: str = "cpu") -> np.ndarray:
        """(N, D) raw embeddings of each uint8 BGR face (no mirror image), from the same model."""
        return self._embed(images, spec, device, no_progress, mirrors=False)[:, 0]

    def _embed(self, images: np.ndarray, spec: PreprocessSpec, device: str, progress: Progress,
               mirrors: bool) -> np.ndarray:
        use_onnx = self.package is not None and device == "cpu"
        run = self._onnx_runner() if use_onnx else self._torch_runner(device)
        out = []
        starts = range(0, len(images), _BATCH)
        for start in progress(starts, len(starts), "teacher embeddings"):
            batch = normalize(np.asarray(images[start:start + _BATCH]), spec)
            views = [batch, np.ascontiguousarray(batch[..., ::-1])] if mirrors else [batch]
            out.append(np.stack([run(view) for view in views], axis=1))
        embeddings = np.concatenate(out).astype(np.float32)
        if not np.all(np.isfinite(embeddings)):
            raise MfrError(f"the teacher ({self.weights}) gives non-finite embeddings")
        return embeddings

    def _onnx_runner(self) -> Any:
        from mfr.runtime.engine_load import open_model

        assert self.package is not None
        engine = open_model(self.package, "fp32")
        return engine.raw_embeddings

    def _torch_runner(self, device: str = "cpu") -> Any:
        model = self.model().eval().to(device)

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(batch).to(device)).cpu().numpy()

        return run

    def describe(self) -> dict[str, Any]:
        return {"model": self.entry.name, "weights": str(self.weights), "weights_sha256": sha256_file(self.weights),
                "package": None if self.package is None else str(self.package)}


def load_teacher(path: Path, model: str = "mobilefacenet") -> Teacher:
    """A package directory (its manifest names the architecture and the exported weights) or a checkpoint
    of ``model``."""
    path = Path(path)
    if path.is_dir():
        manifest = load_manifest(path)
        if manifest.kind != "recognition" or manifest.engine is not None:
            raise MfrError(f"{path}: the teacher must be a recognition model package (from mfr-export onnx) "
                           f"or a checkpoint")
        weights = manifest.export_weights()
        if weights is None or not weights.is_file():
            raise CheckpointError(f"{path / MANIFEST_NAME} names the weights {weights}, which are not here; pass "
                                  f"the checkpoint itself: --teacher CHECKPOINT --model {manifest.model}")
        changed = [key for key, digest in weights_sha256(weights).items() if digest != manifest.sha256.get(key)]
        if changed:
            raise CheckpointError(f"{weights} changed since {path} was exported from it (sha256 of "
                                  f"{', '.join(changed)} differs); re-export the package or pass the checkpoint")
        return Teacher(get_model_entry(manifest.model), weights, path)
    if not path.is_file():
        raise CheckpointError(f"teacher {path} not found (a model package directory or a checkpoint file)")
    entry = get_model_entry(model)
    if entry.kind != "recognition":
        raise MfrError(f"--model {model} is a {entry.kind} model; the teacher must be a recognition model")
    entry_model = load_weights(entry.build(), path, entry.name, entry.strip_prefix)  # fails early on a bad file
    del entry_model
    return Teacher(entry, path, None)
