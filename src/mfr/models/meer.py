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

Two ways to build trunk and head (``mfr train meer --init``): ``meer_on(base)`` (``--init teacher``,
registered as ``meer-<base>``) takes a pretrained recognizer's trunk and identity head (``mfr.models.split``)
with the teacher's weights, and puts the decoupling module (new) between them: the attention then reads a
map that already separates identities, and the deployed network is the teacher's plus one small branch.
``MEERNet()`` (``--init random``, registered as ``meer``) is the from-scratch reconstruction, kept as the
ablation: the same dense convolutional trunk as G2D's and its head.

Not known from the abstract and chosen here: the from-scratch trunk, the attention's form (a 3x3
convolution and a 1x1 to one channel, sigmoid), the decoder, and the teacher's input normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mfr.models.blocks import FEATURE_CHANNELS, ConvTrunk, EmbeddingHead, FaceDecoder, conv_bn_relu
from mfr.models.split import registered_recognizer, split_recognizer, trunk_geometry

SCRATCH_STRIDE = 8  # ConvTrunk: 112 -> 14


@dataclass
class MEEROutputs:
    embedding: torch.Tensor  # (B, D), not L2-normalised
    identity: torch.Tensor  # (B, C, S, S): the trunk's map, what the head and the restoring decoder read
    mask_logits: torch.Tensor | None  # (B, 1, S, S) before the sigmoid; None without decoupling


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
    """The deployed MEER model: trunk -> decoupling -> identity head, face crop -> embedding. Without a trunk
    and head, the from-scratch build."""

    def __init__(self, embedding_dim: int = 128, decoupling: bool = True, trunk: nn.Module | None = None,
                 head: nn.Module | None = None, channels: int = FEATURE_CHANNELS, stride: int = SCRATCH_STRIDE) -> None:
        super().__init__()
        self.trunk = trunk if trunk is not None else ConvTrunk()
        self.decoupling = MaskDecoupling(channels) if decoupling else None
        self.head = head if head is not None else EmbeddingHead(embedding_dim)
        self.channels, self.stride = channels, stride  # of the trunk's map, for the restoring decoder

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


# The attention's starting bias on a pretrained trunk: sigmoid(-4) = 0.018, so the identity part starts as
# 98 % of the trunk's map and the student as (nearly) the teacher, instead of halving every feature the head
# was trained on. The mask-map loss (binary cross-entropy on the logits) moves it without saturating.
OPEN_ATTENTION_BIAS = -4.0


def meer_on(base: nn.Module, decoupling: bool = True) -> MEERNet:
    """MEER whose trunk and identity head are ``base``'s (its layers, with whatever weights it holds); the
    decoupling module starts nearly open (``OPEN_ATTENTION_BIAS``)."""
    trunk, head = split_recognizer(base)
    channels, stride = trunk_geometry(base)
    net = MEERNet(decoupling=decoupling, trunk=trunk, head=head, channels=channels, stride=stride)
    if net.decoupling is not None:
        last = net.decoupling.attention[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, OPEN_ATTENTION_BIAS)
    return net


class MEERRestorer(nn.Module):
    """The synthesis decoder: identity features -> the unmasked face (training, and ``mfr restore``)."""

    def __init__(self, channels: int = FEATURE_CHANNELS, stride: int = SCRATCH_STRIDE) -> None:
        super().__init__()
        self.decoder = FaceDecoder(channels, stride)

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        return self.decoder(identity)


def meer_built_on(base_name: str) -> MEERNet:
    """The registry's factory for ``meer-<base>``."""
    return meer_on(registered_recognizer(base_name))


def meer_plain_built_on(base_name: str) -> MEERNet:
    """The registry's factory for ``meer-plain-<base>``."""
    return meer_on(registered_recognizer(base_name), decoupling=False)
