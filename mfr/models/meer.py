"""MEER ("Seeing through the Mask: Multi-task Generative Mask Decoupling Face Recognition", 2023),
reconstructed at edge size from the paper's abstract (its code and tables were not available to build
from).

What the abstract describes, and how it is built here:

- a **mask decoupling module** splits the features of a masked face into mask information and identity
  information, so recognition uses purer identity features from the visible parts: ``MaskDecoupling``
  predicts a mask-attention map A over the trunk's 14x14 feature map (supervised in training by the
  region the synthetic mask covers); identity features = F * (1 - A), mask features = F * A;
- recognition from the identity part: ``EmbeddingHead`` (residual blocks, global depthwise pooling, FC
  to the embedding), as in G2D's reformer;
- an **unmasked face restored** from the features: a ``FaceDecoder`` from the identity features back to
  a 112x112 face, used only in training (``MEERRestorer``) and by ``mfr restore``; the restored face fed
  back through the recognition network refines it with an identity-preserving loss (training).

The deployed graph is trunk -> decoupling -> identity head (``MEERNet``), one ONNX model like every
other. ``MEERNet(decoupling=False)`` (registered as ``meer-plain``) is the ablation without the
decoupling module: the head reads the trunk's features directly.

Not known from the abstract and chosen here: the trunk (the same dense convolutional trunk as G2D's
encoder), the attention's form (a 3x3 convolution and a 1x1 to one channel, sigmoid), the decoder, the
128-d embedding and the teacher's input normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mfr.models.blocks import FEATURE_CHANNELS, ConvTrunk, EmbeddingHead, FaceDecoder, conv_bn_relu


@dataclass
class MEEROutputs:
    embedding: torch.Tensor  # (B, D), not L2-normalised
    identity: torch.Tensor  # (B, FEATURE_CHANNELS, 14, 14): what the head and the restoring decoder read
    mask_logits: torch.Tensor | None  # (B, 1, 14, 14) before the sigmoid; None without decoupling


class MaskDecoupling(nn.Module):
    """Features -> (identity part, mask part, mask-attention logits)."""

    def __init__(self, channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.attention = nn.Sequential(conv_bn_relu(channels, 32), nn.Conv2d(32, 1, 1))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.attention(features)
        mask = torch.sigmoid(logits)
        return features * (1 - mask), features * mask, logits


class MEERNet(nn.Module):
    """The deployed MEER model: trunk -> decoupling -> identity head, 112x112 face crop -> embedding."""

    def __init__(self, embedding_dim: int = 128, decoupling: bool = True) -> None:
        super().__init__()
        self.trunk = ConvTrunk()
        self.decoupling = MaskDecoupling() if decoupling else None
        self.head = EmbeddingHead(embedding_dim)

    def parts(self, x: torch.Tensor) -> MEEROutputs:
        features = self.trunk(x)
        if self.decoupling is None:
            return MEEROutputs(self.head(features), features, None)
        identity, _mask, logits = self.decoupling(features)
        return MEEROutputs(self.head(identity), identity, logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts(x).embedding


class MEERPlainNet(MEERNet):
    """The ablation without the decoupling module (registered separately: its weights have no attention)."""

    def __init__(self, embedding_dim: int = 128) -> None:
        super().__init__(embedding_dim, decoupling=False)


class MEERRestorer(nn.Module):
    """The synthesis decoder: identity features -> the unmasked face (training, and ``mfr restore``)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = FaceDecoder()

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        return self.decoder(identity)
