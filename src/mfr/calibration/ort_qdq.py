"""The ONNX Runtime INT8 models: QDQ with asymmetric uint8 activations and per-channel weights, from our
own ranges, in one of two weight schemes (``WEIGHT_SCHEMES``).

ONNX Runtime's ``QDQQuantizer`` writes the graph; it is handed the ranges we computed instead of
running its own calibrator, so these models, the TensorRT QDQ model and the calibration cache all come
from one set of ranges.

Why two weight schemes: ONNX Runtime's u8 x s8 matrix kernels on x86 without VNNI (AVX2, AVX-512F)
multiply with VPMADDUBSW, which adds pairs of products in signed 16 bits and saturates (2 x 255 x 127 >
32767). Its u8 x u8 kernels widen to 16 bits first and add in 32 bits (VPMADDWD): slower, never
saturating. Depthwise convolutions have their own kernel, which widens both operands and does not
saturate, so they keep symmetric int8 weights in both schemes. Measured on MobileFaceNet (AVX2 kernels run
under an emulated Haswell CPU): the u8 scheme on AVX2 gives the same embeddings as the exact Q/DQ model,
the s8 scheme loses 0.017 of held-out cosine; 7-bit weights (``reduce_range``), the other documented
cure, lose 0.007 of held-out cosine to quantization itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

from mfr.calibration.trt_qdq import weight_channel_axis

OP_TYPES = ["Conv", "Gemm", "MatMul", "Add", "Mul", "Clip", "Relu", "LeakyRelu", "Sigmoid", "GlobalAveragePool"]
# Clip/Relu are listed so that the quantizer folds them into the preceding Q/DQ (their range already
# clips). LeakyRelu (a PReLU with one slope), Sigmoid, Mul and GlobalAveragePool are listed so that a
# squeeze-excitation block and an activation ONNX Runtime cannot fold run on INT8 data (its QLinear
# kernels, channels-last like QLinearConv): left float, each costs a dequantize, a quantize and a layout
# transpose of a whole feature map. Measured on face-reid-0095's u8 model (2-core AMD EPYC, AVX2 without
# VNNI): 50 % of its time in QLinearConv with them float, the rest in those conversions.
# None of these is a fallback candidate: only the layers that compute are.
FALLBACK_TYPES = ("Conv", "Gemm", "MatMul", "Add")
# Activations run in the precision of the layer they follow: quantizing the output of a layer the
# fallback keeps in float re-creates the very rounding the fallback removed (face-reid-0095's head, whose
# output spans -136..28 after its LeakyRelu: held-out cosine 0.59 with that tensor in uint8, 0.99 without).
FOLLOWS_PRODUCER = ("LeakyRelu", "Sigmoid")
WEIGHT_SCHEMES = {
    "s8": "symmetric int8 weights (CPUs with VNNI, ARM, GPUs)",
    "u8": "asymmetric uint8 weights on dense Conv/Gemm/MatMul, int8 on depthwise (x86 CPUs without VNNI)",
}


def quantized_node_names(model: onnx.ModelProto) -> list[str]:
    """Nodes whose inputs get quantized (the candidates for floating-point fallback)."""
    return [node.name for node in model.graph.node if node.op_type in FALLBACK_TYPES]


def float_nodes(model: onnx.ModelProto, exclude: list[str]) -> list[str]:
    """``exclude`` plus what must stay float with it: the activations that follow an excluded node, and
    a Mul by a constant (the input scaling baked into a model: the quantizer would take the constant
    for a weight with per-channel scales, which ONNX Runtime rejects for an elementwise Mul)."""
    initializers = {init.name for init in model.graph.initializer}
    floats = list(exclude)
    float_outputs: set[str] = set()
    for node in model.graph.node:
        constant_mul = node.op_type == "Mul" and any(name in initializers for name in node.input)
        follows_float = node.op_type in FOLLOWS_PRODUCER and node.input[0] in float_outputs
        if (constant_mul or follows_float) and node.name not in floats:
            floats.append(node.name)
        if node.name in floats:
            float_outputs.update(node.output)
    return floats


def dense_weight_channel_axes(model: onnx.ModelProto) -> dict[str, int]:
    """Weight initializer -> output-channel axis, for the layers ONNX Runtime runs as a matrix product
    (Conv with group 1, Gemm, MatMul): the layers whose u8 x s8 kernel saturates without VNNI."""
    initializers = {init.name for init in model.graph.initializer}
    axes: dict[str, int] = {}
    for node in model.graph.node:
        axis = weight_channel_axis(node)
        depthwise = any(a.name == "group" and a.i > 1 for a in node.attribute)
        if axis is not None and not depthwise and len(node.input) > 1 and node.input[1] in initializers:
            axes[node.input[1]] = axis
    return axes


def quantize_ort(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], exclude: list[str] | None = None,
                 only: list[str] | None = None, weights: str = "s8") -> onnx.ModelProto:
    """QDQ model from ``ranges``; ``exclude`` nodes stay float, or only the ``only`` nodes are quantized;
    ``weights`` is a key of ``WEIGHT_SCHEMES``."""
    if weights not in WEIGHT_SCHEMES:
        raise ValueError(f"weights must be one of {sorted(WEIGHT_SCHEMES)}, got {weights!r}")
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the quantizer edits its input
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(low, np.float32), highest=np.array(high, np.float32))
        for name, (low, high) in ranges.items()
    })
    overrides = {} if weights == "s8" else {
        name: [{"quant_type": QuantType.QUInt8, "symmetric": False, "axis": axis}]
        for name, axis in dense_weight_channel_axes(model).items()
    }
    quantizer = QDQQuantizer(
        model, True, False, QuantType.QInt8, QuantType.QUInt8, tensors, list(only or []),
        float_nodes(model, list(exclude or [])),
        OP_TYPES, {"ActivationSymmetric": False, "WeightSymmetric": True, "TensorQuantOverrides": overrides},
    )
    return quantizer.quantize_model()


def write_ort_int8(fp32_path: Path, ranges: dict[str, tuple[float, float]], out: Path,
                   exclude: list[str] | None = None, weights: str = "s8") -> None:
    onnx.save(quantize_ort(onnx.load(str(fp32_path)), ranges, exclude, weights=weights), str(out))
