"""The schedules G2D and MEER train with when an option is not given, one per ``--init``.

A student that starts from the teacher already recognises faces: it needs a short schedule, and the
measured recipes that make each method beat its teacher within an hour on a 2-core CPU (docs/training.md,
"Starting from the pretrained recognizer") differ from the from-scratch ones the papers' schedules were
scaled down to. So the defaults follow ``--init``: ``mfr train g2d --teacher T --out O`` runs the kept
G2D recipe, ``... --init random`` the from-scratch ablation as it was measured. Options given on the
command line always win. Torch-free, so ``--help`` can show both defaults without importing a trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class G2DRecipe:
    holes_epochs: int  # stage 1a: inpainting on random holes
    masks_epochs: int  # stage 1b: inpainting on synthetic masks
    distill_epochs: int  # stage 2: relational distillation
    keep_weight: float  # stage 1: E's map of unmasked faces kept near the teacher trunk's
    distill_encoder: str  # stage 2: "frozen" (the paper's) or "fine-tune"
    cosine_weight: float  # stage 2: direct cosine term towards the teacher's embedding


@dataclass(frozen=True)
class MEERRecipe:
    epochs: int
    warmup_epochs: int  # before the identity-preserving loss starts
    margin_loss: bool  # ElasticFace-Arc over the training identities


# teacher: the recipes the validation rule kept (G2D 38 min, MEER 46 min on the 2-core CPU);
# random: the papers' schedules scaled to this data, as the from-scratch rows were measured
G2D_RECIPES: dict[str, G2DRecipe] = {
    "teacher": G2DRecipe(holes_epochs=1, masks_epochs=1, distill_epochs=4, keep_weight=1.0,
                         distill_encoder="fine-tune", cosine_weight=1.0),
    "random": G2DRecipe(holes_epochs=3, masks_epochs=3, distill_epochs=12, keep_weight=0.0,
                        distill_encoder="frozen", cosine_weight=0.0),
}
MEER_RECIPES: dict[str, MEERRecipe] = {
    "teacher": MEERRecipe(epochs=6, warmup_epochs=2, margin_loss=True),
    "random": MEERRecipe(epochs=12, warmup_epochs=4, margin_loss=False),
}


def recipe_settings(recipes: dict[str, Any], init: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every field of ``init``'s recipe: the value in ``given`` where one was given (not None), else the
    recipe's."""
    recipe = recipes[init]
    return {f.name: given[f.name] if given.get(f.name) is not None else getattr(recipe, f.name)
            for f in fields(recipe)}


def recipe_default_help(recipes: dict[str, Any], name: str) -> str:
    """'[default: 1 with --init teacher, 3 with --init random]' for a recipe field, for an option's help."""
    def shown(value: Any) -> str:
        return ("on" if value else "off") if isinstance(value, bool) else str(value)

    return "[default: " + ", ".join(f"{shown(getattr(recipe, name))} with --init {init}"
                                    for init, recipe in recipes.items()) + "]"
