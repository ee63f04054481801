"""The training methods ``mfr train`` offers: one registry line per method.

An entry names the module that holds the method (its configuration, a ``fit.TeacherRun`` dataclass, and
its ``fit.Trainer``) without importing it: the module needs torch, which the CLI must not import to list
its commands (on a device there is none). A method without a command of its own gets ``mfr train NAME``
with one option per field of its configuration; MaskInv, G2D and MEER have commands written for them
(help per option, recipes by --init).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from mfr.plugins import Registry


@dataclass(frozen=True)
class TrainerEntry:
    module: str  # e.g. "mfr.training.maskinv"
    config: str  # the configuration class in it
    trainer: str  # the trainer class in it
    summary: str  # one line for mfr train --help

    def load(self) -> tuple[type[Any], type[Any]]:
        """(configuration class, trainer class), importing the module now."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.trainer)


TRAINERS: Registry[TrainerEntry] = Registry("training method")
TRAINERS.register("maskinv", TrainerEntry("mfr.training.maskinv", "MaskInvConfig", "MaskInvTrainer",
                                          "MaskInv: masked faces mapped to the teacher's unmasked embedding."))
TRAINERS.register("g2d", TrainerEntry("mfr.training.g2d", "G2DConfig", "G2DTrainer",
                                      "G2D: an inpainting-pretrained encoder and a reformer distilled from the "
                                      "teacher."))
TRAINERS.register("meer", TrainerEntry("mfr.training.meer", "MEERConfig", "MEERTrainer",
                                       "MEER: mask decoupling and unmasked-face synthesis, learned jointly."))
