"""The model Triton's Python backend runs for ``mfr serve``: mfr's own ``Engine`` behind Triton's batcher.

Triton forms a batch from concurrent requests (dynamic batching) and hands it to ``execute``: the
inputs are joined into one array, run through the engine once, and the outputs are split back per
request. Any engine (ONNX Runtime, TensorRT) serves, opened by ``open_model`` exactly as a camera would
open it; the runtime's input checks apply.

Tensors cross the stub's boundary through DLPack, never through ``pb_utils.Tensor``'s numpy paths:
the Python backend stubs built with pybind11 older than 2.12 (those of the nvidia-pytriton wheel among
them) read numpy's dtype descriptor in its 1.x layout, so under numpy 2 ``as_numpy()`` returns an array
that repeats the first element and a tensor made from an array is empty. Both failures are silent;
DLPack carries the dtype and shape itself. ``dlpack_tensor`` gives the stub a capsule of the form its
old pybind11 can read (one without a name) holding numpy's own DLPack tensor, whose deleter the stub
calls when it has copied the data.

Imported only inside the stub process (``triton_python_backend_utils`` exists nowhere else).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np

from mfr.runtime.engine_load import open_model
from mfr.runtime.engine_triton import PRECISION_PARAMETER

MODEL_DIR_PARAMETER = "mfr_model_dir"


def _capsule_api() -> Any:
    api = ctypes.pythonapi
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_SetName.restype = ctypes.c_int
    api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_New.restype = ctypes.py_object
    api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return api


def unnamed_dlpack_capsule(array: np.ndarray) -> Any:
    """numpy's DLPack tensor of ``array`` in a capsule without a name, its own capsule marked consumed (as
    the DLPack protocol has a consumer do) so that only the stub's deleter frees it."""
    api = _capsule_api()
    capsule = np.ascontiguousarray(array).__dlpack__()
    pointer = api.PyCapsule_GetPointer(capsule, b"dltensor")
    api.PyCapsule_SetName(capsule, b"used_dltensor")
    return api.PyCapsule_New(pointer, None, None)


def dlpack_tensor(pb_utils: Any, name: str, array: np.ndarray) -> Any:
    """An output tensor for the stub, from numpy through DLPack (see the module's docstring)."""
    return pb_utils.Tensor.from_dlpack(name, unnamed_dlpack_capsule(array))


def padded(batch: np.ndarray, minimum: int) -> np.ndarray:
    """``batch`` with zero inputs appended up to an engine profile's minimum (a TensorRT engine built with
    ``--min-batch`` above 1 refuses smaller batches, which Triton's batcher forms when few requests wait);
    the outputs of the padding are never returned, since responses take the first rows only."""
    if len(batch) >= minimum:
        return batch
    return np.concatenate([batch, np.zeros((minimum - len(batch), *batch.shape[1:]), batch.dtype)])


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        self.engine = open_model(Path(parameters[MODEL_DIR_PARAMETER]), parameters.get(PRECISION_PARAMETER) or None)
        self.input_name = config["input"][0]["name"]
        self.output_names = [output["name"] for output in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = self.pb_utils
        try:
            arrays = [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name)) for r in requests]
            outputs = self.engine.infer(padded(np.concatenate(arrays), self.engine.profile.min))
        except Exception as exc:  # noqa: BLE001 - every request gets the error; the stub keeps serving
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"mfr engine: {exc}")) for _ in requests]
        responses, start = [], 0
        for array in arrays:
            stop = start + len(array)
            tensors = [dlpack_tensor(pb_utils, name, outputs[name][start:stop]) for name in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses

    def finalize(self) -> None:
        self.engine.close()
