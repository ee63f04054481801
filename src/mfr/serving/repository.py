"""Triton model repositories of mfr's models: one folder per model, ``config.pbtxt`` and version ``1/``.

Two kinds:

- ``write_python_repository``: what ``mfr serve`` starts Triton on. Each model's version folder holds a
  two-line ``model.py`` that makes the serving Python's packages importable in the backend's stub process
  and hands over to ``mfr.serving.python_model``, which opens the package or engine directory where it
  lies (nothing is copied): the same ``Engine`` a camera would run.
- ``export_platform_repository``: for a full Triton install (``mfr-export triton``): the model file itself
  (``model.onnx`` for the ``onnxruntime_onnx`` platform, ``model.plan`` for ``tensorrt_plan``) with its
  configuration, written to a temporary folder and renamed into place, so a failure leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mfr.atomic import sha256_file
from mfr.errors import EngineError, OutputDirError
from mfr.manifest import Manifest, load_manifest
from mfr.runtime.engine_load import model_file_for
from mfr.runtime.engine_triton import SOURCE_PARAMETER
from mfr.serving.model_config import BatchingOptions, check_model_name, config_text, model_config
from mfr.serving.python_model import MODEL_DIR_PARAMETER

# Triton's platform for each engine backend a full install runs (mfr-export triton)
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}


@dataclass(frozen=True)
class ServedModel:
    """One model to serve: its Triton name, the package or engine directory, and which of its models
    (a package's INT8 weight scheme: None for this CPU's, see ``mfr.runtime.engine_load.package_model_key``)."""

    name: str
    directory: Path
    manifest: Manifest
    precision: str
    int8_weights: str | None = None

    @classmethod
    def open(cls, directory: Path, name: str | None = None, precision: str | None = None,
             int8_weights: str | None = None) -> ServedModel:
        """A package (its ``precision`` ONNX model, fp32 by default) or an engine directory (its own precision)."""
        directory = Path(directory).resolve()
        manifest = load_manifest(directory)
        precision = model_file_for(directory, manifest, precision, int8_weights)[1]
        return cls(check_model_name(name or manifest.model), directory, manifest, precision, int8_weights)

    def model_file(self) -> Path:
        """The file a full Triton install runs: the engine's, or the package's ``precision`` ONNX model."""
        return model_file_for(self.directory, self.manifest, self.precision, self.int8_weights)[0]

    def parameters(self) -> dict[str, str]:
        """What clients read beyond the manifest: the sha256 of the ONNX file the served model comes from (an
        engine's source, or the package model this server runs), which keys their embeddings."""
        record = self.manifest.engine
        return {SOURCE_PARAMETER: record.source_sha256 if record is not None else sha256_file(self.model_file())}


def shim_source(paths: list[str]) -> str:
    """``model.py`` of a served model: the serving process's import paths (site folders processed, so that
    ``.pth`` files, editable installs among them, work), then mfr's model class."""
    return ("# Written by mfr serve: Triton's Python backend loads this file in its stub process.\n"
            "import site\n"
            f"for folder in {paths!r}:\n"
            "    site.addsitedir(folder)\n"
            "from mfr.serving.python_model import TritonPythonModel  # noqa: E402,F401\n")


def import_paths() -> list[str]:
    """The folders this Python imports from, site folders first."""
    folders = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    seen: list[str] = []
    for folder in folders:
        if folder and os.path.isdir(folder) and folder not in seen:
            seen.append(os.path.abspath(folder))
    return seen


def check_unique_names(models: list[ServedModel]) -> None:
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EngineError(f"two models would be served as {duplicates}; name them: --package NAME=DIR")


def write_python_repository(models: list[ServedModel], root: Path, options: BatchingOptions) -> Path:
    """A repository serving ``models`` through the Python backend, in the empty folder ``root``."""
    check_unique_names(models)
    shim = shim_source(import_paths())
    for served in models:
        version = Path(root) / served.name / "1"
        version.mkdir(parents=True)
        (version / "model.py").write_text(shim)
        config = model_config(served.name, served.manifest, served.precision, options, backend="python",
                              parameters={MODEL_DIR_PARAMETER: str(served.directory), **served.parameters()},
                              where=str(served.directory))
        (Path(root) / served.name / "config.pbtxt").write_text(config_text(config))
    return Path(root)


def export_platform_repository(served: ServedModel, out: Path, options: BatchingOptions, force: bool = False) -> Path:
    """Add ``served`` to the model repository ``out`` for a full Triton install (its ONNX Runtime or
    TensorRT backend); the model's folder is written whole or not at all."""
    backend = served.manifest.engine.backend if served.manifest.engine is not None else "onnxruntime"
    platform, filename = PLATFORMS[backend]
    target = Path(out) / served.name
    if target.exists() and not force:
        raise OutputDirError(f"{target} exists; pass --force to replace it")
    source = served.model_file()
    Path(out).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{served.name}.", dir=out))
    try:
        (staging / "1").mkdir()
        shutil.copyfile(source, staging / "1" / filename)
        config = model_config(served.name, served.manifest, served.precision, options, platform=platform,
                              parameters=served.parameters(), where=str(served.directory))
        (staging / "config.pbtxt").write_text(config_text(config))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
