"""The two MaskInv losses: ElasticFace-Arc margin softmax and template-level distillation.

ElasticFace-Arc (Boutros et al., CVPR-W 2022): ArcFace's additive angular margin, but the margin of each
sample is drawn from N(m, sigma), which relaxes ArcFace's fixed decision boundary. Distillation (MaskInv,
Huber et al.): the student's normalised embedding of a (possibly masked) face is pulled to the frozen
teacher's normalised embedding of the same face unmasked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ElasticArcFace(nn.Module):
    """Class centres on the unit sphere; ``forward(embeddings, labels)`` -> cross-entropy with margins."""

    def __init__(self, dim: int, classes: int, scale: float = 64.0, margin: float = 0.5, margin_std: float = 0.05,
                 centres: torch.Tensor | None = None) -> None:
        super().__init__()
        initial = centres if centres is not None else torch.randn(classes, dim) * 0.01
        if initial.shape != (classes, dim):
            raise ValueError(f"centres must be ({classes}, {dim}), got {tuple(initial.shape)}")
        self.weight = nn.Parameter(initial.clone())
        self.scale, self.margin, self.margin_std = scale, margin, margin_std

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        cosine = F.normalize(embeddings) @ F.normalize(self.weight).t()
        target = cosine.gather(1, labels[:, None]).squeeze(1).clamp(-1 + 1e-7, 1 - 1e-7)
        margin = torch.normal(self.margin, self.margin_std, size=tuple(target.shape), generator=generator)
        margin = margin.to(target.device)
        with_margin = torch.cos(torch.acos(target) + margin)
        logits = cosine.scatter(1, labels[:, None], with_margin[:, None])
        return F.cross_entropy(self.scale * logits, labels)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the L2-normalised embeddings (mean over dimensions, then over samples, each sample
    weighted by ``weights`` when given)."""
    per_sample = (F.normalize(student) - F.normalize(teacher)).pow(2).mean(dim=1)
    return per_sample.mean() if weights is None else (per_sample * weights).mean()
