"""ONNX Runtime backend of the engine interface.

Runs either an engine file written by ``mfr-export build-engine --backend onnxruntime`` (an ONNX model
already optimised by ONNX Runtime) or a package's ONNX file directly. The session applies ONNX
Runtime's full optimisation level at load: the saved engine holds only the hardware-independent
(extended) rewrites, the layout rewrites for this CPU's instruction set are made here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.engine import Engine

CPU = "CPUExecutionProvider"


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, source: Path, manifest: Manifest, model: Path, profile: BatchProfile,
                 providers: list[str] | None = None, threads: int = 0, precision: str | None = None) -> None:
        super().__init__(source, manifest, model, profile, precision)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(model), options, providers=providers or [CPU])
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
            raise EngineError(f"{model}: ONNX Runtime could not load it ({exc})") from None
        self.providers = self.session.get_providers()

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, {self.input.name: inputs})
        return dict(zip(self.output_names, values, strict=True))
