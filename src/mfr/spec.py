"""The preprocessing spec: how a model must be fed, carried with the model.

There is exactly one ``PreprocessSpec`` per model. It is written into every model package's
``manifest.json`` and read back by export (parity inputs), calibration, and the CPU and CUDA
preprocessing, so no stage hard-codes an input size, a colour order or a mean/std
(compare timm's ``pretrained_cfg``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mfr.errors import SpecError

ColorOrder = Literal["RGB", "BGR"]

# The ArcFace / insightface 5-point template for 112x112 crops, in pixel coordinates of the crop:
# left eye, right eye, nose tip, left mouth corner, right mouth corner (left/right as seen in the image).
ARCFACE_TEMPLATE_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to turn a uint8 image into the model's input tensor.

    A pixel value ``p`` (0..255, in ``color_order``) becomes ``(p * scale - mean[c]) / std[c]``,
    with ``mean``/``std`` given in the model's channel order. ``input_size`` is (height, width), or
    None for fully convolutional models (detectors) that take any size. ``template`` holds the five
    alignment landmarks in input-pixel coordinates, or None when the model is not fed aligned crops.
    """

    input_size: tuple[int, int] | None
    color_order: ColorOrder
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    template: tuple[tuple[float, float], ...] | None = None
    embedding_dim: int | None = None
    interpolation: Literal["bilinear"] = "bilinear"
    layout: Literal["NCHW"] = "NCHW"

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PreprocessSpec:
        """Build a spec from ``to_dict`` output; raise ``SpecError`` naming the bad field."""
        if not isinstance(data, dict):
            raise SpecError(f"preprocessing spec must be an object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        missing = sorted(f for f in ("input_size", "color_order", "scale", "mean", "std") if f not in data)
        if unknown or missing:
            raise SpecError(f"preprocessing spec: missing fields {missing}, unknown fields {unknown}")
        try:
            size = data["input_size"]
            template = data.get("template")
            return cls(
                input_size=None if size is None else (int(size[0]), int(size[1])),
                color_order=data["color_order"],
                scale=float(data["scale"]),
                mean=_triple(data["mean"], "mean"),
                std=_triple(data["std"], "std"),
                template=None if template is None else tuple((float(x), float(y)) for x, y in template),
                embedding_dim=data.get("embedding_dim"),
                interpolation=data.get("interpolation", "bilinear"),
                layout=data.get("layout", "NCHW"),
            )
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise SpecError(f"preprocessing spec: {exc}") from exc


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise SpecError(f"preprocessing spec: {name} must hold 3 numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _validate(spec: PreprocessSpec) -> None:
    if spec.color_order not in ("RGB", "BGR"):
        raise SpecError(f"preprocessing spec: color_order must be RGB or BGR, got {spec.color_order!r}")
    if spec.input_size is not None and (len(spec.input_size) != 2 or min(spec.input_size) <= 0):
        raise SpecError(f"preprocessing spec: input_size must be (height, width) > 0, got {spec.input_size}")
    if not (math.isfinite(spec.scale) and spec.scale > 0):
        raise SpecError(f"preprocessing spec: scale must be a positive number, got {spec.scale}")
    if len(spec.mean) != 3 or len(spec.std) != 3 or any(s <= 0 for s in spec.std):
        raise SpecError(f"preprocessing spec: mean/std need 3 values and std > 0, got {spec.mean}, {spec.std}")
    if spec.template is not None:
        if spec.input_size is None:
            raise SpecError("preprocessing spec: an alignment template needs a fixed input_size")
        if len(spec.template) != 5 or any(len(p) != 2 for p in spec.template):
            raise SpecError(f"preprocessing spec: template must hold 5 (x, y) points, got {spec.template}")
    if spec.embedding_dim is not None and (not isinstance(spec.embedding_dim, int) or spec.embedding_dim <= 0):
        raise SpecError(f"preprocessing spec: embedding_dim must be a positive int, got {spec.embedding_dim!r}")
    if spec.interpolation != "bilinear" or spec.layout != "NCHW":
        raise SpecError(
            f"preprocessing spec: only bilinear/NCHW are supported, got {spec.interpolation}/{spec.layout}"
        )
