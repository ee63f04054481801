"""Learning-rate schedules and per-stage summaries shared by the trainers."""

from __future__ import annotations

import math
from typing import Any

import torch


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group of ``optimizer`` at learning rate ``lr`` times its ``lr_scale`` (default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def pretrained_groups(new: list[torch.nn.Parameter], pretrained: list[torch.nn.Parameter],
                      scale: float) -> list[dict[str, Any]]:
    """Parameter groups for a student part new, part started from the teacher: the teacher's layers learn at
    ``scale`` times the rate (``set_lr``), so the first steps, driven by the new parts' random outputs, do not
    wash out what they knew."""
    groups = [{"params": new, "lr_scale": 1.0}, {"params": pretrained, "lr_scale": scale}]
    return [group for group in groups if group["params"]]


def cosine_lr(base: float, progress: float) -> float:
    """Cosine decay from ``base`` to 0 over a stage; ``progress`` in [0, 1)."""
    return base * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def stage_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage (the rows' ``stage``): its first and last logged rows and the seconds it took."""
    stages: dict[str, dict[str, Any]] = {}
    previous = 0.0
    for row in rows:
        entry = stages.setdefault(row["stage"], {"first": row, "started": previous})
        entry["last"] = row
        previous = row["seconds"]
    return {stage: {"first": entry["first"], "last": entry["last"],
                    "seconds": round(entry["last"]["seconds"] - entry["started"], 2)}
            for stage, entry in stages.items()}
