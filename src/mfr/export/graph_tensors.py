"""An ONNX model with every node output made a graph output, to read intermediate tensors with ONNX Runtime
(activation ranges for calibration, overflow checks for FP16)."""

from __future__ import annotations

from pathlib import Path

import onnx


def expose_all_tensors(onnx_path: Path) -> tuple[bytes, list[str]]:
    """(serialized model whose outputs include every float node output, [graph input, those outputs...]).

    Tensors that shape inference types as anything but float32 (shape arithmetic in int64, say) are left
    out: they are not activations."""
    model = onnx.load(str(onnx_path))
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    graph_outputs = {o.name for o in model.graph.output}
    names = [model.graph.input[0].name]
    for node in model.graph.node:
        for name in node.output:
            if not name or types.get(name, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
                continue
            if name not in graph_outputs:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            names.append(name)
    return model.SerializeToString(), names
