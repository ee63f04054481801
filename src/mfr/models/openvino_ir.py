"""Reading an OpenVINO IR (``.xml`` topology + ``.bin`` weights) into a PyTorch module, strictly.

The IR holds a network as layers and edges; its weights are ``Const`` layers (FP16 or FP32, each a byte
range of the ``.bin``), usually behind a ``Convert`` to FP32, feeding the layer that uses them. A module
written from the IR's graph (``mfr.models.face_reid``) registers its parameters in the IR's data-flow
order, so loading pairs the IR's weights, in topological order, with the module's state-dict entries, in
registration order, and checks every pair: the same number of values (shapes equal once size-1 dimensions
are dropped: the IR's ``[C, 1, 1, 3, 3]`` grouped kernel is torch's ``[C, 1, 3, 3]``), an IR layer of the
kind that entry feeds (a convolution's weight, an ``Add``'s bias, a ``PReLU``'s slope) and, for
convolutions, the same strides, padding and dilation. Every IR weight is used and every entry filled,
or nothing loads and the error names the first disagreement.

Only the parsing needs no torch; ``ir_state_dict`` imports it.
"""

from __future__ import annotations

import heapq
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mfr.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

# IR element types of weights, as numpy dtypes (read little-endian from the .bin)
WEIGHT_TYPES: dict[str, np.dtype] = {"f16": np.dtype("<f2"), "f32": np.dtype("<f4")}
# The IR layer that consumes each kind of module entry (``nn.Conv2d`` by its groups)
CONV_CONSUMERS = {False: "Convolution", True: "GroupConvolution"}


@dataclass(frozen=True)
class IrLayer:
    """One IR layer: its id, name, type, the ``<data>`` attributes and the (layer id, port) feeding each input."""

    id: str
    name: str
    type: str
    attrs: dict[str, str]
    inputs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class IrWeight:
    """A weight of the IR: the Const layer's name, its value in FP32, and the layer it feeds."""

    name: str
    value: np.ndarray
    consumer: IrLayer


@dataclass(frozen=True)
class IrGraph:
    xml: Path
    layers: dict[str, IrLayer]
    weights: tuple[IrWeight, ...]  # in the data-flow order of their consumers, then input port

    def ops(self) -> list[IrLayer]:
        """The layers that compute (no Const or Convert), in topological order (ties by id)."""
        return [self.layers[i] for i in _topological(self.layers) if self.layers[i].type not in ("Const", "Convert")]


def read_ir(xml: Path) -> IrGraph:
    """Parse ``xml`` and its ``.bin`` (same stem). Raises ``CheckpointError`` naming the file and the problem:
    not an IR, a missing or truncated ``.bin``, a weight of an element type mfr does not read."""
    xml = Path(xml)
    binary = xml.with_suffix(".bin")
    for path in (xml, binary):
        if not path.is_file():
            raise CheckpointError(f"OpenVINO IR file not found: {path} (an IR is an .xml with its .bin beside it)")
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise CheckpointError(f"{xml} is not an OpenVINO IR: {exc}") from None
    if root.tag != "net" or root.find("layers") is None or root.find("edges") is None:
        raise CheckpointError(f"{xml} is not an OpenVINO IR (no <net> with <layers> and <edges>)")
    layers = _layers(root, xml)
    blob = binary.read_bytes()
    weights = [_weight(layers, const, consumer, blob, binary) for consumer, const in _weight_edges(layers)]
    return IrGraph(xml, layers, tuple(weights))


def _layers(root: ET.Element, xml: Path) -> dict[str, IrLayer]:
    feeding: dict[tuple[str, str], tuple[str, str]] = {}
    for edge in root.iterfind("edges/edge"):
        feeding[(edge.get("to-layer", ""), edge.get("to-port", ""))] = (edge.get("from-layer", ""),
                                                                        edge.get("from-port", ""))
    layers: dict[str, IrLayer] = {}
    for element in root.iterfind("layers/layer"):
        layer_id = element.get("id", "")
        data = element.find("data")
        ports = [port.get("id", "") for port in element.iterfind("input/port")]
        missing = [port for port in ports if (layer_id, port) not in feeding]
        if missing:
            raise CheckpointError(f"{xml}: layer {element.get('name')!r} has unconnected inputs {missing}")
        layers[layer_id] = IrLayer(layer_id, element.get("name", ""), element.get("type", ""),
                                   dict(data.attrib) if data is not None else {},
                                   tuple(feeding[(layer_id, port)] for port in ports))
    return layers


def _weight_edges(layers: dict[str, IrLayer]) -> list[tuple[IrLayer, IrLayer]]:
    """(consumer, Const) for every weight, in the consumers' topological order, then by input port."""
    pairs = []
    for layer_id in _topological(layers):
        consumer = layers[layer_id]
        if consumer.type in ("Const", "Convert"):
            continue
        for source, _ in consumer.inputs:
            while layers[source].type == "Convert":  # FP16 -> FP32 decompression in front of the weight
                source = layers[source].inputs[0][0]
            if layers[source].type == "Const":
                pairs.append((consumer, layers[source]))
    return pairs


def _topological(layers: dict[str, IrLayer]) -> list[str]:
    users: dict[str, list[str]] = {i: [] for i in layers}
    waiting = {i: len(layer.inputs) for i, layer in layers.items()}
    for i, layer in layers.items():
        for source, _ in layer.inputs:
            users[source].append(i)
    ready = [(int(i), i) for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (int(user), user))
    return order


def _weight(layers: dict[str, IrLayer], const: IrLayer, consumer: IrLayer, blob: bytes, binary: Path) -> IrWeight:
    element = const.attrs.get("element_type", "")
    if element not in WEIGHT_TYPES:
        raise CheckpointError(f"{binary}: weight {const.name!r} is of element type {element!r}; mfr reads "
                              f"{sorted(WEIGHT_TYPES)}")
    shape = tuple(int(d) for d in const.attrs.get("shape", "").replace(" ", "").split(",") if d)
    offset, size = int(const.attrs["offset"]), int(const.attrs["size"])
    dtype = WEIGHT_TYPES[element]
    if size != int(np.prod(shape)) * dtype.itemsize:
        raise CheckpointError(f"{binary}: weight {const.name!r} declares {size} bytes for shape {shape}")
    if offset + size > len(blob):
        raise CheckpointError(f"{binary} is truncated: weight {const.name!r} needs bytes {offset}..{offset + size}, "
                              f"the file has {len(blob)}")
    value = np.frombuffer(blob, dtype, count=int(np.prod(shape)), offset=offset).astype(np.float32).reshape(shape)
    return IrWeight(const.name, value, consumer)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _pairs(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(" ", "").split(",") if v)


def _expected_consumer(model: nn.Module, key: str, buffer_roles: dict[str, str]) -> tuple[str, Any]:
    """(the IR layer type that ``key`` must feed, the module that owns it)."""
    from torch import nn

    owner_name, _, leaf = key.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if isinstance(owner, nn.Conv2d):
        return (CONV_CONSUMERS[owner.groups > 1] if leaf == "weight" else "Add"), owner
    if isinstance(owner, nn.PReLU):
        return "PReLU", owner
    if key in buffer_roles:
        return buffer_roles[key], owner
    raise CheckpointError(f"{type(model).__name__}.{key}: no IR layer kind is known for this entry")


def _check_conv(conv: Any, layer: IrLayer, where: str) -> None:
    ir = {"stride": _pairs(layer.attrs.get("strides", "1,1")), "dilation": _pairs(layer.attrs.get("dilations", "1,1")),
          "padding": _pairs(layer.attrs.get("pads_begin", "0,0"))}
    ours = {"stride": tuple(conv.stride), "dilation": tuple(conv.dilation), "padding": tuple(conv.padding)}
    if ir != ours or _pairs(layer.attrs.get("pads_end", "0,0")) != ir["padding"]:
        raise CheckpointError(f"{where}: the IR's {layer.type} {layer.name!r} has {ir} (pads_end "
                              f"{layer.attrs.get('pads_end')}), the module's convolution {ours}")


def ir_state_dict(model: nn.Module, graph: IrGraph, buffer_roles: dict[str, str] | None = None
                  ) -> dict[str, torch.Tensor]:
    """``model``'s state dict filled from ``graph``'s weights, pair by pair (see the module docstring);
    ``buffer_roles`` names the IR layer type each registered buffer feeds (e.g. an input scale: Multiply)."""
    import torch

    expected = model.state_dict()
    where = f"{graph.xml} into {type(model).__name__}"
    if len(graph.weights) != len(expected):
        raise CheckpointError(f"{where}: the IR holds {len(graph.weights)} weights, the module "
                              f"{len(expected)} entries: not the network this module was written from")
    state: dict[str, torch.Tensor] = {}
    for index, ((key, target), weight) in enumerate(zip(expected.items(), graph.weights, strict=True)):
        kind, owner = _expected_consumer(model, key, buffer_roles or {})
        place = f"{where}: weight {index} ({weight.name!r}, shape {weight.value.shape}, feeding " \
                f"{weight.consumer.type} {weight.consumer.name!r}) for {key} (shape {tuple(target.shape)})"
        if weight.consumer.type != kind:
            raise CheckpointError(f"{place}: that entry feeds a {kind}")
        if weight.value.size != target.numel() or _squeezed(weight.value.shape) != _squeezed(tuple(target.shape)):
            raise CheckpointError(f"{place}: the shapes differ")
        if kind in CONV_CONSUMERS.values():
            _check_conv(owner, weight.consumer, place)
        state[key] = torch.from_numpy(weight.value.copy()).reshape(target.shape).to(target.dtype)
    return state
