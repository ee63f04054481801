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
# ONNX Runtime's WeightBiasQuantization rewrite (basic level) quantizes the weights of a float Conv/Gemm that
# sits between a DequantizeLinear and a QuantizeLinear: it undoes the calibration's choice of keeping that
# layer in float, with its own weight scales. Measured on MobileFaceNet's u8 model, whose fallback keeps a
# depthwise Conv in float there: held-out cosine to FP32 0.9975 without the rewrite, 0.9825 with it. Off in
# every session mfr makes (an unknown name is ignored by ONNX Runtime releases that lack the rewrite).
DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]


def onnxruntime_session(model: str | bytes, options: ort.SessionOptions | None = None,
                        providers: list[str] | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session as mfr runs every model: CPU unless told, ``DISABLED_OPTIMIZERS`` off."""
    return ort.InferenceSession(model, options or ort.SessionOptions(), providers=providers or [CPU],
                                disabled_optimizers=DISABLED_OPTIMIZERS)


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
        if threads:  # a session given its share of the cores beside others: idle threads sleep, not spin
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime_session(str(model), options, providers)
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
            raise EngineError(f"{model}: ONNX Runtime could not load it ({exc})") from None
        self.providers = self.session.get_providers()

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, {self.input.name: inputs})
        return dict(zip(self.output_names, values, strict=True))
