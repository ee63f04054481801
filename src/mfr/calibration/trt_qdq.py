"""The TensorRT explicit-quantization model: symmetric INT8 Q/DQ placed where TensorRT fuses it.

Placement follows what TensorRT Model Optimizer's ONNX PTQ does (checked by tests/test_trt_placement.py
against ``nvidia-modelopt`` on MobileFaceNet and iResNet-18/50): Q/DQ on the activation inputs of
Conv/Gemm/MatMul; on a residual Add, only on the residual (skip) input, never on the input that comes from
the convolution of the main branch, so that TensorRT fuses Conv+BN(+act)+Add into one INT8 kernel
(ModelOpt's ``build_non_residual_input_map``: the input on the longer path from the two inputs' lowest
common ancestor is the main branch); weights as int8 initialisers in [-127, 127] with per-output-channel
scales behind a DequantizeLinear, for Conv and for Gemm/MatMul alike; bias left in float (TensorRT's
parser has rejected INT32 bias behind DequantizeLinear); activations after the computing layers
(ReLU6/Clip, PReLU) stay unquantized so TensorRT fuses them into the convolution. Zero points are 0
(int8), scales = amax / 127 from the shared ranges.

Where this placement differs from ModelOpt's, on purpose (``KNOWN_DIFFERENCES``, asserted by the test):
ModelOpt leaves a Gemm/MatMul in float when its output at the calibration's first batch has a dimension
of 1 (a GEMV at batch 1: iResNet's embedding layer); mfr engines run batches up to 128, so that layer
is quantized here. ModelOpt also quantizes the input of a BatchNormalization that no convolution absorbs
(iResNet's last BN, before the flatten) as a partition of its own; here it stays float: the Q/DQ that
matters is the one on the Gemm's input right after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
INT8_MAX = 127.0
# Ops TensorRT fuses into the convolution before them: a residual Add after them still fuses with it.
FUSED_INTO_CONV = ("BatchNormalization", "Relu")
KNOWN_DIFFERENCES = {
    "gemv_at_batch_1": "ModelOpt keeps a Gemm/MatMul whose batch-1 output has a dimension of 1 in float; mfr "
                       "quantizes it (engines run batches up to 128)",
    "lone_batchnorm": "ModelOpt quantizes the input of a BatchNormalization no convolution absorbs; mfr does not",
}


def _scale(amax: float) -> float:
    return max(amax, 1e-8) / INT8_MAX


def int8_weight(graph: onnx.GraphProto, initializer: onnx.TensorProto, axis: int,
                new_nodes: list[onnx.NodeProto]) -> str:
    """The weight ``initializer`` as int8 per channel along ``axis`` (the output channels) behind a
    DequantizeLinear appended to ``new_nodes``; the name of the dequantized tensor."""
    name = initializer.name
    tensor = numpy_helper.to_array(initializer).astype(np.float32)
    channels = np.moveaxis(tensor, axis, 0)
    amax = np.abs(channels.reshape(channels.shape[0], -1)).max(axis=1)
    scales = (np.maximum(amax, 1e-8) / INT8_MAX).astype(np.float32)
    shape = [1] * tensor.ndim
    shape[axis] = -1
    q = np.clip(np.round(tensor / scales.reshape(shape)), -127, 127).astype(np.int8)
    graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                              numpy_helper.from_array(scales, f"{name}_scale"),
                              numpy_helper.from_array(np.zeros(len(scales), np.int8), f"{name}_zero")])
    new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                      [f"{name}_dq"], name=f"{name}_DequantizeLinear", axis=axis))
    return f"{name}_dq"


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

    main_branch = main_branch_inputs(graph, set(initializers))
    for node in list(graph.node):
        if node.name in skip:
            continue
        if node.op_type in COMPUTE_OPS:
            node.input[0] = activation(node.input[0])
            axis = weight_channel_axis(node)
            if len(node.input) > 1 and node.input[1] in initializers and axis is not None:
                node.input[1] = int8_weight(graph, initializers[node.input[1]], axis, new_nodes)
        elif node.op_type == "Add" and all(i not in initializers for i in node.input):
            for index, name in enumerate(node.input):
                if (node.name, name) not in main_branch:
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


def weight_channel_axis(node: onnx.NodeProto) -> int | None:
    """The output-channel axis of a compute node's weight: Conv [out, in, kh, kw] 0, Gemm 0 with transB
    (else 1), MatMul [in, out] 1."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    if node.op_type == "MatMul":
        return 1
    return None


def main_branch_inputs(graph: onnx.GraphProto, constants: set[str]) -> set[tuple[str, str]]:
    """(Add node, input tensor) pairs where the input is a residual block's main branch ending in a Conv
    (through BatchNormalization/Relu): TensorRT fuses that Conv with the Add, so the input gets no Q/DQ.

    As ModelOpt decides it: of the Add's two inputs, the main branch is the one on the longer path from
    their lowest common ancestor (the skip connection is the shorter one); two inputs with no common
    ancestor, or paths of equal length, are not a residual block."""
    producer = {out: node for node in graph.node for out in node.output}

    def depths(tensor: str) -> dict[str, int]:
        """Every ancestor tensor of ``tensor`` -> its distance in nodes (shortest)."""
        found, frontier = {tensor: 0}, [tensor]
        while frontier:
            nxt = []
            for name in frontier:
                node = producer.get(name)
                for parent in [] if node is None else [i for i in node.input if i and i not in constants]:
                    if parent not in found:
                        found[parent] = found[name] + 1
                        nxt.append(parent)
            frontier = nxt
        return found

    def ends_in_conv(tensor: str) -> bool:
        node = producer.get(tensor)
        while node is not None and node.op_type in FUSED_INTO_CONV:
            node = producer.get(node.input[0])
        return node is not None and node.op_type == "Conv"

    pairs = set()
    for node in graph.node:
        inputs = [i for i in node.input if i not in constants]
        if node.op_type != "Add" or len(inputs) != 2:
            continue
        left, right = depths(inputs[0]), depths(inputs[1])
        common = set(left) & set(right)
        if not common:
            continue
        ancestor = min(common, key=lambda t: (left[t] + right[t], left[t]))
        if left[ancestor] == right[ancestor]:
            continue
        main = inputs[0] if left[ancestor] > right[ancestor] else inputs[1]
        if ends_in_conv(main):
            pairs.add((node.name, main))
    return pairs


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
