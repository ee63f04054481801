"""OpenVINO's runtime as an engine backend on the CPU: an OpenVINO IR (``.xml`` + ``.bin``) imported with
``mfr-export import-ir``, run behind the same ``Engine`` interface as ONNX Runtime and TensorRT engines, so
``mfr eval`` and ``mfr bench latency`` measure a model built elsewhere (OpenVINO's own INT8 variant of a
network, say) through exactly the pipeline mfr's engines go through.

The IR's input and outputs are taken by position: the manifest (copied from the package the IR is a
variant of) names them and gives the shapes; an output of shape (N, D, 1, 1) is the manifest's (N, D).
Inference precision is FP32 (OpenVINO would otherwise pick BF16 on CPUs that have it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.engine import Engine


def openvino_module() -> Any:
    try:
        import openvino
    except ImportError:
        raise EngineError("this engine runs on OpenVINO's runtime, which is not installed: pip install openvino") \
            from None
    return openvino


def openvino_version() -> str | None:
    """The installed OpenVINO's release (e.g. 2026.4.1), or None."""
    try:
        return str(openvino_module().__version__).split("-")[0]
    except EngineError:
        return None


class OpenVinoEngine(Engine):
    backend = "openvino"

    def __init__(self, source: Path, manifest: Manifest, model: Path, profile: BatchProfile, threads: int = 0,
                 precision: str | None = None) -> None:
        super().__init__(source, manifest, model, profile, precision)
        ov = openvino_module()
        core = ov.Core()
        try:
            network = core.read_model(str(model))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise EngineError(f"{model}: OpenVINO could not read it ({exc})") from None
        shape = list(network.inputs[0].get_partial_shape().get_min_shape())
        if len(network.inputs) != 1 or shape[1:] != list(self.input.shape[1:]):
            raise EngineError(f"{model}: the IR takes {len(network.inputs)} input(s) of shape {shape}; the manifest's "
                              f"model one of {self.input.shape}")
        try:
            network.reshape({network.inputs[0].get_any_name(): [-1, *shape[1:]]})
            config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            self.compiled = core.compile_model(network, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise EngineError(f"{model}: OpenVINO could not load it ({exc})") from None
        if len(self.compiled.outputs) != len(self.output_names):
            raise EngineError(f"{model}: the IR has {len(self.compiled.outputs)} outputs, the manifest "
                              f"{len(self.output_names)} ({self.output_names})")
        self.request = self.compiled.create_infer_request()

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        results = self.request.infer({0: inputs})
        out = {}
        for index, (name, tensor) in enumerate(zip(self.output_names, self.manifest.outputs, strict=True)):
            value = np.asarray(results[self.compiled.outputs[index]], np.float32)
            out[name] = value.reshape(len(inputs), *value.shape[1:len(tensor.shape)])
        return out
