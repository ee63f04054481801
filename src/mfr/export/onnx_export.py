"""torch -> ONNX with the torch.export-based exporter, then structural checks.

Dynamic batch for every model (and dynamic height/width for detectors), so one file serves batch 1
on a camera and batch 128 in evaluation; ``build-engine`` turns these into an optimisation profile.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy as copy_module
from pathlib import Path

import onnx
import onnx.numpy_helper
import torch

from mfr.errors import MfrError
from mfr.manifest import TensorInfo
from mfr.registry import ModelEntry

INPUT_NAME = "input"
DEFAULT_OPSET = 17
_EXAMPLE_DETECTOR_SIZE = (320, 320)


def example_input(entry: ModelEntry) -> tuple[torch.Tensor, dict[int, torch.export.Dim]]:
    """A tracing input and its dynamic dimensions (batch 2, so batch is never specialised to 1)."""
    dims: dict[int, torch.export.Dim] = {0: torch.export.Dim("batch")}
    if entry.spec.input_size is None:
        dims[2] = torch.export.Dim("height")
        dims[3] = torch.export.Dim("width")
    height, width = entry.spec.input_size or _EXAMPLE_DETECTOR_SIZE
    return torch.randn(2, 3, height, width), dims


def with_fusable_activations(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose PReLUs with one shared slope are LeakyReLUs of that slope: the same function,
    which ONNX Runtime (also in its blocked NCHWc layout) and TensorRT fuse into the convolution before it,
    where a PRelu node costs a pass over the tensor of its own and, in ONNX Runtime, a layout conversion
    on each side (measured: half of face-reid-0095's CPU time)."""
    copy = copy_module(model)
    for name, module in list(copy.named_modules()):
        if isinstance(module, torch.nn.PReLU) and module.num_parameters == 1:
            parent, _, leaf = name.rpartition(".")
            setattr(copy.get_submodule(parent) if parent else copy, leaf,
                    torch.nn.LeakyReLU(float(module.weight.detach().reshape(()))))
    return copy


def torch_to_onnx(model: torch.nn.Module, entry: ModelEntry, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Export ``model`` (in eval mode; activations made fusable, see ``with_fusable_activations``) to ``path``
    and check it with the ONNX checker and shape inference. The parity check compares the file with ``model``
    itself."""
    if opset < 17:
        raise MfrError(f"opset {opset} is too old: mfr exports opset 17 or newer")
    example, dims = example_input(entry)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            with_fusable_activations(model).eval(), (example,), None, input_names=[INPUT_NAME],
            output_names=list(entry.output_names), opset_version=opset, dynamo=True, dynamic_shapes=(dims,),
            verbose=False,
        )
    if program is None:
        raise MfrError(f"torch.onnx.export returned no program for {entry.name}")
    program.save(str(path))
    proto = onnx.load(str(path))
    _name_prior_dims(proto)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    with_global_average_pools(proto)
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.save(proto, str(path))


def with_global_average_pools(proto: onnx.ModelProto) -> None:
    """Rewrite, in place, each ReduceMean over the two spatial axes of a 4-D tensor (keeping them) as the
    GlobalAveragePool it is: the exporter decomposes ``adaptive_avg_pool2d(x, 1)`` into that ReduceMean,
    which ONNX Runtime has no INT8 kernel for, where QLinearGlobalAveragePool reads the INT8 tensor
    directly (face-reid-0095's 15 squeeze-excitation blocks: without it, each dequantizes a feature map
    to float and changes its layout twice). Needs shapes inferred (the input's rank)."""
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    ranks = {value.name: len(value.type.tensor_type.shape.dim)
             for value in [*graph.input, *graph.value_info] if value.type.tensor_type.HasField("shape")}
    dropped_axes: set[str] = set()
    for index, node in enumerate(graph.node):
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        axes_input = node.input[1] if len(node.input) > 1 and node.input[1] in initializers else None
        axes = attributes.get("axes", None if axes_input is None else
                              onnx.numpy_helper.to_array(initializers[axes_input]))
        if axes is None or attributes.get("keepdims", 1) != 1 or {int(a) % 4 for a in axes} != {2, 3}:
            continue
        graph.node.remove(node)
        graph.node.insert(index, onnx.helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output),
                                                       name=node.name))
        dropped_axes.update([axes_input] if axes_input else [])
    still_used = {name for node in graph.node for name in node.input}
    for name in dropped_axes - still_used:
        graph.initializer.remove(initializers[name])


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter (opset down-conversion notes, optional torchvision ops).

    Real failures still raise; the result is verified by the checker and the parity check anyway.
    """
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _name_prior_dims(proto: onnx.ModelProto) -> None:
    """Replace the exporter's arithmetic expressions for output dims (detector priors) by a name."""
    for output in proto.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and not dim.dim_param.isidentifier():
                dim.dim_param = "num_priors"


def tensor_infos(proto_values: list[onnx.ValueInfoProto]) -> list[TensorInfo]:
    infos = []
    for value in proto_values:
        tensor = value.type.tensor_type
        shape: list[int | str] = [
            d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in tensor.shape.dim
        ]
        infos.append(TensorInfo(value.name, shape, onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name))
    return infos


def graph_io(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs of the ONNX file at ``path`` (without loading weights)."""
    proto = onnx.load(str(path), load_external_data=False)
    return tensor_infos(list(proto.graph.input)), tensor_infos(list(proto.graph.output))
