"""The ONNX Runtime INT8 model: QDQ with per-channel symmetric int8 weights and asymmetric uint8
activations (the combination ONNX Runtime's fast x86 kernels take), from our own ranges.

ONNX Runtime's ``QDQQuantizer`` writes the graph; it is handed the ranges we computed instead of
running its own calibrator, so this model, the TensorRT QDQ model and the calibration cache all come
from one set of ranges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

OP_TYPES = ["Conv", "Gemm", "MatMul", "Add", "Clip", "Relu"]
# Clip/Relu are listed so that the quantizer folds them into the preceding Q/DQ (their range already
# clips); they are not fallback candidates, only the layers that compute are.
FALLBACK_TYPES = ("Conv", "Gemm", "MatMul", "Add")


def quantized_node_names(model: onnx.ModelProto) -> list[str]:
    """Nodes whose inputs get quantized (the candidates for floating-point fallback)."""
    return [node.name for node in model.graph.node if node.op_type in FALLBACK_TYPES]


def quantize_ort(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], exclude: list[str] | None = None,
                 only: list[str] | None = None, weight_bits: int = 8) -> onnx.ModelProto:
    """QDQ model from ``ranges``; ``exclude`` nodes stay float, or only the ``only`` nodes are quantized.
    ``weight_bits=7``: weights in [-64, 63] (ONNX Runtime's ``reduce_range``), for x86 CPUs without VNNI."""
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the quantizer edits its input
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(low, np.float32), highest=np.array(high, np.float32))
        for name, (low, high) in ranges.items()
    })
    quantizer = QDQQuantizer(
        model, True, weight_bits == 7, QuantType.QInt8, QuantType.QUInt8, tensors, list(only or []),
        list(exclude or []), OP_TYPES, {"ActivationSymmetric": False, "WeightSymmetric": True},
    )
    return quantizer.quantize_model()


def write_ort_int8(fp32_path: Path, ranges: dict[str, tuple[float, float]], out: Path,
                   exclude: list[str] | None = None, weight_bits: int = 8) -> None:
    onnx.save(quantize_ort(onnx.load(str(fp32_path)), ranges, exclude, weight_bits=weight_bits), str(out))
