"""The model registry: name -> how to build it, its default weights and its preprocessing spec.

An explicit tuple of entries turned into a dict that refuses duplicates; no registration side effects.
Constructors import torch lazily, so listing models (and everything in the runtime) works without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mfr.errors import UnknownModelError
from mfr.paths import bundled_weights
from mfr.spec import ARCFACE_TEMPLATE_112, PreprocessSpec

# The recognizer the README's main job, the camera quick start and mfr doctor use: the strongest shipped model
# at low false-accept rates (LFW TAR at FAR 1e-5 95.6 % against MobileFaceNet's 87.0 %), at about its size.
DEFAULT_RECOGNITION_MODEL = "face-reid-0095"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# face-reidentification-retail-0095's alignment template: its model card's five points in [0, 1] (left eye,
# right eye, nose tip, left and right mouth corners), in pixels of its 128x128 crop
FACE_REID_TEMPLATE_UNIT = ((0.31556875, 0.4615741071428571), (0.6826229166666667, 0.4615741071428571),
                           (0.5002624999999999, 0.6405053571428571), (0.34947187500000004, 0.8246919642857142),
                           (0.6534364583333333, 0.8246919642857142))
FACE_REID_SPEC = PreprocessSpec(
    input_size=(128, 128),
    color_order="BGR",
    scale=1.0,  # the network normalises its 0..255 input itself (a per-channel scale and shift inside it)
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    template=tuple((x * 128, y * 128) for x, y in FACE_REID_TEMPLATE_UNIT),
    embedding_dim=256,
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: Literal["recognition", "detection"]
    factory: str  # "module:callable[:arg...]" (an arg of digits is an int) — imported only when the model is built
    spec: PreprocessSpec
    output_names: tuple[str, ...]
    default_weights: Path | None
    strip_prefix: str  # removed from checkpoint keys (DataParallel's "module.")
    description: str
    decoder: dict[str, Any] | None = None  # how raw detector outputs are decoded; travels in the manifest
    weights_sha256: str | None = None  # of default_weights: a shipped file that differs is refused at export
    training_record: Path | None = None  # shipped weights mfr trained: how (a TrainingRecord as JSON)

    def build(self) -> Any:
        """Instantiate the (randomly initialised) torch module. Needs torch."""
        module_name, attr, *args = self.factory.split(":")
        constructor: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
        return constructor(*(int(a) if a.isdigit() else a for a in args))


def _recognition_spec(mean: tuple[float, float, float], std: tuple[float, float, float], dim: int) -> PreprocessSpec:
    return PreprocessSpec(
        input_size=(112, 112),
        color_order="RGB",
        scale=1 / 255,
        mean=mean,
        std=std,
        template=ARCFACE_TEMPLATE_112,
        embedding_dim=dim,
    )


def _mobilefacenet(name: str, weights: str, sha256: str, description: str,
                   training: str | None = None) -> ModelEntry:
    """MobileFaceNet with shipped weights in ``mfr/weights/<name>/``: the bundled teacher, and the masked-face
    student trained from it (same architecture and preprocessing, other weights; ``training``: the file
    beside them that records how, its training people included)."""
    return ModelEntry(
        name=name,
        kind="recognition",
        factory="mfr.models.mobilefacenet:MobileFaceNet",
        spec=_recognition_spec(IMAGENET_MEAN, IMAGENET_STD, 128),
        output_names=("embedding",),
        default_weights=bundled_weights(name, weights),
        weights_sha256=sha256,
        training_record=None if training is None else bundled_weights(name, training),
        strip_prefix="module.",
        description=description,
    )


def _iresnet(depth: int) -> ModelEntry:
    return ModelEntry(
        name=f"iresnet{depth}",
        kind="recognition",
        factory=f"mfr.models.iresnet:iresnet:{depth}",
        spec=_recognition_spec((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 512),
        output_names=("embedding",),
        default_weights=None,
        strip_prefix="module.",
        description=f"iResNet-{depth}, insightface arcface_torch layout (bring your own backbone.pth)",
    )


def _reconstruction(name: str, factory: str, description: str) -> ModelEntry:
    """A masked-face student trained by mfr from a MobileFaceNet teacher (G2D, MEER): the teacher's
    normalisation, since its embeddings are what the training distils; no shipped weights."""
    return ModelEntry(
        name=name,
        kind="recognition",
        factory=factory,
        spec=_recognition_spec(IMAGENET_MEAN, IMAGENET_STD, 128),
        output_names=("embedding",),
        default_weights=None,
        strip_prefix="module.",
        description=description,
    )


# The masked-face methods built on a pretrained recognizer (``--init teacher``): name prefix -> (factory in
# mfr.models, what it is). Each gets one entry per recognizer that can be cut into trunk and head.
_ON_BASE = {
    "g2d": ("mfr.models.g2d:g2d_built_on", "G2D: generative encoder = {base}'s trunk, reformer = its head"),
    "meer": ("mfr.models.meer:meer_built_on", "MEER: {base}'s trunk + mask decoupling + its head"),
    "meer-plain": ("mfr.models.meer:meer_plain_built_on", "MEER without mask decoupling (ablation) on {base}"),
}
_SPLIT_BASES = ("mobilefacenet", "face-reid-0095", *(f"iresnet{depth}" for depth in (18, 34, 50, 100)))


def _on_base(method: str, base: ModelEntry) -> ModelEntry:
    """A masked-face student started from ``base``'s weights: ``base``'s architecture (plus the method's own
    parts) and preprocessing; weights from mfr train <method> --init teacher."""
    factory, description = _ON_BASE[method]
    return ModelEntry(name=f"{method}-{base.name}", kind="recognition", factory=f"{factory}:{base.name}",
                      spec=base.spec, output_names=base.output_names, default_weights=None,
                      strip_prefix=base.strip_prefix,
                      description=description.format(base=base.name) + f", {base.spec.embedding_dim}-d; weights "
                                  f"from mfr train {method.split('-')[0]} --init teacher")


def _entries() -> tuple[ModelEntry, ...]:
    bases = _base_entries()
    by_name = {entry.name: entry for entry in bases}
    return (*bases, *(_on_base(method, by_name[base]) for method in _ON_BASE for base in _SPLIT_BASES))


def _base_entries() -> tuple[ModelEntry, ...]:
    return (
        _mobilefacenet("mobilefacenet", "mobilefacenet.pt",
                       "90a00ba1d8b0b688af3deb731ed53dca582e6106805d1bc3cfdef55f570493f4",  # its source's
                       "MobileFaceNet, 128-d, shipped weights (foamliu/MobileFaceNet, Apache-2.0)"),
        _mobilefacenet("mobilefacenet-masked", "mobilefacenet_masked.pt",
                       "1d9f01bf8b3ac032a5de0ad011fb5b32ca6b71769af8edd82fb21c02b7932dab",
                       "MobileFaceNet made robust to face masks (mfr train maskinv from the bundled MobileFaceNet on "
                       "the LFW demo split; model card in its weights folder), 128-d, Apache-2.0",
                       training="training.json"),
        ModelEntry(
            name="face-reid-0095",
            kind="recognition",
            factory="mfr.models.face_reid:FaceReidNet",
            spec=FACE_REID_SPEC,
            output_names=("embedding",),
            default_weights=bundled_weights("face-reid-0095", "face-reidentification-retail-0095.xml"),
            strip_prefix="",
            description="face-reidentification-retail-0095, 256-d, 128x128 BGR, shipped weights (Intel Open Model "
                        "Zoo, Apache-2.0; read from its OpenVINO IR)",
        ),
        *(_iresnet(depth) for depth in (18, 34, 50, 100)),
        _reconstruction("g2d", "mfr.models.g2d:G2DNet",
                        "G2D (generative encoder + discriminative reformer), 128-d; weights from mfr train g2d"),
        _reconstruction("meer", "mfr.models.meer:MEERNet",
                        "MEER (trunk + mask decoupling + identity head), 128-d; weights from mfr train meer"),
        _reconstruction("meer-plain", "mfr.models.meer:MEERPlainNet",
                        "MEER without its mask decoupling module (an ablation), 128-d; from mfr train meer"),
        ModelEntry(
            name="retinaface-mnet025",
            kind="detection",
            factory="mfr.models.retinaface:RetinaFace",
            spec=PreprocessSpec(
                input_size=None, color_order="BGR", scale=1.0, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0)
            ),
            output_names=("bbox_deltas", "scores", "landmark_deltas"),
            default_weights=bundled_weights("retinaface-mnet025", "mobilenet0.25_Final.pth"),
            weights_sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            strip_prefix="module.",
            description="RetinaFace MobileNet-0.25 face detector with 5 landmarks (biubug6, MIT)",
            decoder={
                "type": "retinaface",
                "min_sizes": [[16, 32], [64, 128], [256, 512]],
                "steps": [8, 16, 32],
                "variance": [0.1, 0.2],
            },
        ),
    )


def _index(entries: tuple[ModelEntry, ...]) -> dict[str, ModelEntry]:
    models: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in models:
            raise ValueError(f"duplicate model name in registry: {entry.name}")
        models[entry.name] = entry
    return models


MODELS: dict[str, ModelEntry] = _index(_entries())


def get_model_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def recognition_model_names() -> list[str]:
    """The names of the registered recognition models (those a preprocessing spec of an embedder comes from)."""
    return [name for name, entry in MODELS.items() if entry.kind == "recognition"]
