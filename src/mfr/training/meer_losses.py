"""The MEER losses besides the reconstruction (``g2d_losses.masked_l1``, shared with G2D).

- identity: 1 - cosine between the student's embedding of a (possibly masked) face and the frozen
  teacher's embedding of the same face unmasked (the student is compared with the teacher directly, so
  its embeddings can be matched against templates the teacher enrolled);
- mask map: the decoupling module's attention logits (B, 1, h, w) against the share of each cell the
  synthetic mask covers (the hidden region averaged down to the map's size), binary cross-entropy with
  soft targets; an unmasked face's target is all zeros;
- identity-preserving: the identity loss of the *restored* face passed back through the network.

``mask_map_iou`` measures where the map points: intersection over union of (sigmoid > 0.5) and (cell
more than half covered), over the masked faces of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return (1 - (F.normalize(student) * F.normalize(teacher)).sum(dim=1)).mean()


def mask_map_target(hidden: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) hidden pixels -> (B, 1, h, w) share of each cell hidden."""
    return F.adaptive_avg_pool2d(hidden, size)


def mask_map_loss(logits: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, mask_map_target(hidden, (logits.shape[2], logits.shape[3])))


def mask_map_iou(logits: torch.Tensor, hidden: torch.Tensor) -> float:
    """IoU of the predicted and the true mask cells over the faces with a mask (nan when none has one)."""
    truth = mask_map_target(hidden, (logits.shape[2], logits.shape[3])) > 0.5
    masked = truth.flatten(1).any(dim=1)
    if not masked.any():
        return float("nan")
    predicted = torch.sigmoid(logits) > 0.5
    intersection = (predicted & truth)[masked].sum().item()
    union = (predicted | truth)[masked].sum().item()
    return intersection / union if union else float("nan")
