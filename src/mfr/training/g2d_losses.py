"""The G2D losses: relational knowledge distillation and the inpainting reconstruction.

Relational knowledge distillation (Park et al., "Relational Knowledge Distillation", CVPR 2019): the
student is not asked to reproduce the teacher's embeddings, only the *relations* between them within a
batch, so its embedding space may differ from the teacher's by a rotation or a scale:

- distance-wise: the pairwise Euclidean distances of the batch, each set divided by its mean, compared
  with the Huber loss (PyTorch's ``smooth_l1_loss``, threshold 1);
- angle-wise: for every triplet (i, j, k) the cosine of the angle at j between the directions to i and
  to k, compared with the Huber loss (all N^3 triplets, the degenerate ones included, as in the paper's
  own code: they are 0 or 1 for teacher and student alike and add no gradient);
- weighted 1 and 2 (the paper's weights for metric learning), ``rkd_loss``.

G2D supervises its reformer this way: the student embeds the masked face, the teacher the same face
unmasked. The reconstruction loss of the generative stage is an L1 over the image with extra weight on
the pixels the mask (or hole) covered, where the encoder has to infer what it cannot see.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DISTANCE_WEIGHT, ANGLE_WEIGHT = 1.0, 2.0


def _normalised_distances(embeddings: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(embeddings, embeddings)
    off_diagonal = ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    values = distances[off_diagonal]
    return values / values.mean().clamp_min(1e-12)


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Huber loss between the mean-normalised pairwise distances of ``student`` and ``teacher`` (N, D)."""
    with torch.no_grad():
        target = _normalised_distances(teacher)
    return F.smooth_l1_loss(_normalised_distances(student), target)


def _angles(embeddings: torch.Tensor) -> torch.Tensor:
    directions = F.normalize(embeddings.unsqueeze(0) - embeddings.unsqueeze(1), p=2, dim=2)  # [j, i] = e_i - e_j
    return torch.bmm(directions, directions.transpose(1, 2)).reshape(-1)  # [j, i, k]: cos of angle i-j-k


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Huber loss between the cosines of every triplet's angle in ``student`` and in ``teacher``."""
    with torch.no_grad():
        target = _angles(teacher)
    return F.smooth_l1_loss(_angles(student), target)


def rkd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return DISTANCE_WEIGHT * rkd_distance_loss(student, teacher) + ANGLE_WEIGHT * rkd_angle_loss(student, teacher)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor,
              hidden_weight: float = 5.0) -> torch.Tensor:
    """L1 between ``prediction`` and ``target`` (B, C, H, W), pixels under ``hidden`` (B, 1, H, W, 1 where
    the mask or hole was) weighted ``hidden_weight``, the others 1; the weighted mean."""
    weights = 1.0 + (hidden_weight - 1.0) * hidden
    return ((prediction - target).abs() * weights).sum() / (weights.sum() * prediction.shape[1])
