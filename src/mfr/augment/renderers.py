"""The synthetic mask renderers by name, behind one interface: ``apply(image, landmarks, key)``.

``templates`` (MaskTheFace's photographic templates, ``masks.MaskGenerator``) is what training uses and
the default of every evaluation; ``procedural`` (``procedural_masks.ProceduralMaskRenderer``) is
independent code with its own looks, for judging a model on masks its training never saw.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

RENDERERS = {
    "templates": "MaskTheFace templates warped onto the face (what training uses)",
    "procedural": "shapes drawn from the landmarks: surgical, cloth, N95, scarf, hand (judging only)",
}


class MaskRenderer(Protocol):
    def apply(self, image: np.ndarray, landmarks: np.ndarray, key: str) -> np.ndarray:
        """A copy of the uint8 BGR ``image`` with a mask over nose, mouth and chin; deterministic per key."""
        ...


def renderer_cache_tag(name: str) -> str:
    """The renderer and its drawing version, for keys of cached embeddings of masked faces."""
    if name == "procedural":
        from mfr.augment.procedural_masks import VERSION

        return f"procedural-v{VERSION}"
    return name


def mask_renderer(name: str, seed: int = 0) -> MaskRenderer:
    if name == "templates":
        from mfr.augment.masks import MaskGenerator

        return MaskGenerator(seed=seed)
    if name == "procedural":
        from mfr.augment.procedural_masks import ProceduralMaskRenderer

        return ProceduralMaskRenderer(seed=seed)
    raise ValueError(f"unknown mask renderer {name!r}; choose from {', '.join(RENDERERS)}")
