"""The FP16 ONNX model, for TensorRT's strongly typed networks (TensorRT 11 has no FP16 builder flag, and
a strongly typed network runs each layer in the type the ONNX gives it).

The float parts are converted the way TensorRT Model Optimizer's AutoCast does by default: the graph's
inputs and outputs stay FP32 (a Cast at each, so the runtime's buffers and the manifest do not change),
and a node stays FP32 when, on real inputs, one of its outputs exceeds 512 in magnitude (AutoCast's
``data_max``) or one of its initializers exceeds FP16's range of 65,504 (``init_max``): FP16 keeps 11
significant bits, so large activations lose their small differences. The rewrite itself (casts at the
boundaries, initializers converted, value infos retyped) is onnxconverter-common's ``float16`` module,
maintained with ONNX Runtime's tools, rather than our own graph surgery.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mfr.export.graph_tensors import expose_all_tensors
from mfr.runtime.engine_ort import onnxruntime_session
from mfr.runtime.similarity import row_cosines

DATA_MAX = 512.0  # AutoCast's default data_max
INIT_MAX = 65504.0  # FP16's largest finite value, AutoCast's default init_max
MIN_FP16_COSINE = 0.999  # per output, FP16 vs FP32 on real inputs
QDQ_FP16_OPSET = 19  # Quantize/DequantizeLinear with FP16 scales


@dataclass(frozen=True)
class Fp16Conversion:
    model: onnx.ModelProto
    kept_fp32: list[str]  # nodes left in FP32 by the range rules


def nodes_out_of_fp16_range(fp32_path: Path, batches: list[np.ndarray]) -> list[str]:
    """Nodes with an output above ``DATA_MAX`` on ``batches`` or an initializer above ``INIT_MAX``."""
    model = onnx.load(str(fp32_path))
    large_inits = {init.name for init in model.graph.initializer
                   if init.data_type == onnx.TensorProto.FLOAT and numpy_helper.to_array(init).size
                   and float(np.abs(numpy_helper.to_array(init)).max()) > INIT_MAX}
    serialized, _ = expose_all_tensors(fp32_path)
    session = onnxruntime_session(serialized)
    names = [o.name for o in session.get_outputs()]
    largest = dict.fromkeys(names, 0.0)
    for batch in batches:
        for name, value in zip(names, session.run(names, {session.get_inputs()[0].name: batch}), strict=True):
            if np.issubdtype(value.dtype, np.floating) and value.size:
                largest[name] = max(largest[name], float(np.abs(value).max()))
    return [node.name for node in model.graph.node
            if any(largest.get(out, 0.0) > DATA_MAX for out in node.output) or set(node.input) & large_inits]


def convert(model: onnx.ModelProto, kept: list[str]) -> onnx.ModelProto:
    """``model`` with its float parts in FP16, I/O and the ``kept`` nodes in FP32. A Q/DQ model is first
    brought to opset 19, the first whose Quantize/DequantizeLinear take FP16 scales: its DequantizeLinear
    then yields FP16 straight into the layer, as TensorRT's strongly typed INT8 + FP16 networks want."""
    from onnx import version_converter
    from onnxconverter_common import float16

    quantized = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if quantized and opset < QDQ_FP16_OPSET:
        model = version_converter.convert_version(model, QDQ_FP16_OPSET)
    with warnings.catch_warnings():
        # one warning per weight below 1e-7 in magnitude, which the converter sets to +-1e-7 (FP16's
        # subnormal range): expected, and judged as a whole by the cosine check on real inputs
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=kept)
    onnx.checker.check_model(model)
    return model


def to_fp16(fp32_path: Path, batches: list[np.ndarray], source: Path | None = None) -> Fp16Conversion:
    """The FP16 form of ``source`` (default: the FP32 model itself; or the INT8 Q/DQ model made from it,
    whose nodes keep the FP32 model's names), with the range rules measured on the FP32 model."""
    kept = nodes_out_of_fp16_range(fp32_path, batches)
    return Fp16Conversion(convert(onnx.load(str(source or fp32_path)), kept), kept)


def fp16_min_cosine(fp32_path: Path, fp16_path: Path, batches: list[np.ndarray]) -> dict[str, float]:
    """Per output: the lowest cosine between the FP16 and the FP32 model over ``batches`` (per sample for
    embeddings; per whole output for a detector's maps), both run by ONNX Runtime on the CPU."""
    fp32, fp16 = onnxruntime_session(str(fp32_path)), onnxruntime_session(str(fp16_path))
    names = [o.name for o in fp32.get_outputs()]
    lowest = dict.fromkeys(names, 1.0)
    for batch in batches:
        feed = {fp32.get_inputs()[0].name: batch}
        for name, expected, got in zip(names, fp32.run(names, feed), fp16.run(names, feed), strict=True):
            rows = expected.reshape(len(batch), -1), got.astype(np.float32).reshape(len(batch), -1)
            lowest[name] = min(lowest[name], float(row_cosines(*rows).min()))
    return lowest
