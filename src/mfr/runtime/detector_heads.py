"""How a detector package's raw outputs become faces: one decoder ("head") per detector family, chosen by
the ``decoder`` section of the package's manifest (``type``), one registry line per family.

A head knows what its network wants around the normalised image (padding to a multiple of its largest
stride) and turns the outputs of one image into boxes, scores and five landmarks in pixels of the network
input; resizing, normalising, running the engine and non-maximum suppression are the detector's
(``mfr.runtime.package_detector``), the same for every family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from mfr.errors import ManifestError
from mfr.plugins import Registry
from mfr.runtime.retinaface import RetinaFacePriors
from mfr.runtime.yunet import YuNetHead


class DetectorHead(Protocol):
    @property
    def pad_multiple(self) -> int:
        """The network input's height and width are padded up to a multiple of this."""
        ...

    def decode(self, outputs: dict[str, np.ndarray], height: int,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (P, 4) x1y1x2y2, scores (P,) and landmarks (P, 5, 2), in pixels of the (unpadded) network
        input of ``height`` x ``width``, from one image's outputs (batch axis removed)."""
        ...


DETECTOR_HEADS: Registry[Callable[[dict[str, Any]], DetectorHead]] = Registry("detector decoder")
DETECTOR_HEADS.register("retinaface", RetinaFacePriors.from_decoder)
DETECTOR_HEADS.register("yunet", YuNetHead.from_decoder)


def head_for(decoder: dict[str, Any] | None, source: str) -> DetectorHead:
    """The head a manifest's ``decoder`` section names; a package without one is not a detector."""
    if not decoder or "type" not in decoder:
        raise ManifestError(f"{source}: no decoder section; is this a face detector package?")
    if decoder["type"] not in DETECTOR_HEADS:
        raise ManifestError(f"{source}: unknown detector decoder {decoder['type']!r}; this mfr decodes "
                            f"{', '.join(DETECTOR_HEADS)}")
    return DETECTOR_HEADS[decoder["type"]](decoder)
