"""The TensorRT explicit-quantization model: symmetric INT8 Q/DQ placed where TensorRT wants it.

Placement follows NVIDIA ModelOpt's INT8 recipe: Q/DQ on the activation inputs of Conv/Gemm/MatMul and
on both inputs of residual Add; weights as int8 initialisers in [-127, 127] with per-output-channel scales
behind a DequantizeLinear; bias left in float (TensorRT's parser has rejected INT32 bias behind
DequantizeLinear); activations after the computing layers (ReLU6/Clip, PReLU) stay unquantized so TensorRT
fuses them into the convolution. Zero points are 0 (int8), scales = amax / 127 from the shared ranges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
INT8_MAX = 127.0


def _scale(amax: float) -> float:
    return max(amax, 1e-8) / INT8_MAX


def write_trt_int8(fp32_path: Path, ranges: dict[str, tuple[float, float]], out: Path,
                   exclude: list[str] | None = None) -> None:
    """Insert Q/DQ pairs into a copy of the FP32 model; ``exclude`` nodes stay entirely float."""
    model = onnx.load(str(fp32_path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    skip = set(exclude or [])
    new_nodes: list[onnx.NodeProto] = []
    quantized: dict[str, str] = {}  # activation tensor -> its dequantized twin (one Q/DQ pair per tensor)

    def activation(name: str) -> str:
        if name not in quantized:
            low, high = ranges[name]
            scale, zero = f"{name}_qdq_scale", f"{name}_qdq_zero"
            graph.initializer.extend([numpy_helper.from_array(np.array(_scale(max(-low, high)), np.float32), scale),
                                      numpy_helper.from_array(np.array(0, np.int8), zero)])
            new_nodes.append(helper.make_node("QuantizeLinear", [name, scale, zero], [f"{name}_q"],
                                              name=f"{name}_QuantizeLinear"))
            new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", scale, zero], [f"{name}_dq"],
                                              name=f"{name}_DequantizeLinear"))
            quantized[name] = f"{name}_dq"
        return quantized[name]

    def weight(name: str) -> str:
        tensor = numpy_helper.to_array(initializers[name]).astype(np.float32)
        amax = np.abs(tensor.reshape(tensor.shape[0], -1)).max(axis=1)
        scales = (np.maximum(amax, 1e-8) / INT8_MAX).astype(np.float32)
        shape = (-1,) + (1,) * (tensor.ndim - 1)
        q = np.clip(np.round(tensor / scales.reshape(shape)), -127, 127).astype(np.int8)
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scales, f"{name}_scale"),
                                  numpy_helper.from_array(np.zeros(len(scales), np.int8), f"{name}_zero")])
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                          [f"{name}_dq"], name=f"{name}_DequantizeLinear", axis=0))
        return f"{name}_dq"

    for node in list(graph.node):
        if node.name in skip:
            continue
        if node.op_type in COMPUTE_OPS:
            node.input[0] = activation(node.input[0])
            if len(node.input) > 1 and node.input[1] in initializers and node.op_type == "Conv":
                node.input[1] = weight(node.input[1])
        elif node.op_type == "Add" and all(i not in initializers for i in node.input):
            for index, name in enumerate(node.input):
                node.input[index] = activation(name)
    used = {i for node in graph.node for i in node.input} | {i for node in new_nodes for i in node.input}
    kept = [init for init in graph.initializer if init.name in used]  # float weights now behind int8 twins
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # Q/DQ nodes must precede their consumers: put them first (they only read graph inputs,
    # initialisers and tensors that exist once their producers ran), then topologically sort.
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(_topological(nodes, {i.name for i in graph.input} | set(initializers)
                                   | {i.name for i in graph.initializer}))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out))


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    ordered, pending, ready = [], list(nodes), set(available)
    while pending:
        progress = [n for n in pending if all(i == "" or i in ready for i in n.input)]
        if not progress:
            raise ValueError(f"cannot order {len(pending)} nodes: a Q/DQ insertion broke the graph")
        for node in progress:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if n not in progress]
    return ordered
