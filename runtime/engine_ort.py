"""ONNX Runtime backend of the engine interface.

Runs either an engine file written by ``mfr-export build-engine --backend onnxruntime`` (an ONNX model
already optimised by ONNX Runtime) or a package's ONNX file directly. The session applies ONNX
Runtime's full optimisation level at load: the saved engine holds only the hardware-independent
(extended) rewrites, the layout rewrites for this CPU's instruction set are made here. ``exact_int8``
evaluates a QDQ model's INT8 arithmetic exactly instead (see ``exact_session_options``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.engine import Engine

CPU = "CPUExecutionProvider"


def exact_session_options() -> ort.SessionOptions:
    """Session options that evaluate a QDQ model's INT8 arithmetic exactly, the same on every CPU.

    With graph optimisations off, ONNX Runtime does not fuse QuantizeLinear/DequantizeLinear pairs into
    integer kernels: each Q/DQ runs as written (round, clip, rescale) and Conv/Gemm run in float on the
    dequantized values. That is the INT8 model's arithmetic without the integer kernels' shortcuts (on x86
    without VNNI, 16-bit saturation), so calibration choices do not depend on the CPU they are made on."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, source: Path, manifest: Manifest, model: Path, profile: BatchProfile,
                 providers: list[str] | None = None, threads: int = 0, precision: str | None = None,
                 exact_int8: bool = False) -> None:
        super().__init__(source, manifest, model, profile, precision)
        options = exact_session_options() if exact_int8 else ort.SessionOptions()
        if not exact_int8:
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
