"""G2D (Ge et al., "Masked Face Recognition with Generative-to-Discriminative Representations", ICML
2024), reconstructed at edge size from the paper's abstract (its code and tables were not available
to build from).

What the abstract describes, and how it is built here:

- a **generative encoder** pretrained for face inpainting, whose features recover context the mask
  hides: E, a trunk from the face to a feature map; during its pretraining an ``InpaintingDecoder``
  (training only, never deployed) turns that map back into the unmasked face (``G2DInpainter`` = E +
  decoder);
- a **discriminative reformer** R that turns those descriptors into identity vectors;
- the deployed graph is E -> R (``G2DNet``), one ONNX model like every other recognition model.

Two ways to build E and R (``mfr train g2d --init``):

- ``g2d_on(base)`` (``--init teacher``, registered as ``g2d-<base>``): E is a pretrained recognizer's trunk
  and R its head (``mfr.models.split``), started from the teacher's weights, so the inpainting and the
  distillation begin from features that already know identity. The deployed network has the teacher's
  architecture and preprocessing.
- ``G2DNet()`` (``--init random``, registered as ``g2d``): the from-scratch reconstruction, kept as the
  ablation: E dense 3x3 convolutions with residual blocks to a 14x14x128 map (``ConvTrunk``), R residual
  blocks, a 1x1 widening, the global depthwise convolution MobileFaceNet pools with and a linear layer to
  128-d (``EmbeddingHead``). Dense rather than depthwise convolutions: they train faster on a CPU.

Not known from the abstract and chosen here: every layer size, the decoder's form, and the input
normalisation (the teacher's, so the student can be compared with templates the teacher enrolled).
"""

from __future__ import annotations

import torch
from torch import nn

from mfr.models.blocks import FEATURE_CHANNELS, ConvTrunk, EmbeddingHead, FaceDecoder
from mfr.models.split import registered_recognizer, split_recognizer, trunk_geometry

SCRATCH_STRIDE = 8  # ConvTrunk: 112 -> 14


class InpaintingDecoder(FaceDecoder):
    """E's map -> the unmasked face, in the normalised input space (training only)."""


class G2DNet(nn.Module):
    """The deployed G2D model: E -> R, face crop -> embedding. Without arguments, the from-scratch build."""

    def __init__(self, embedding_dim: int = 128, encoder: nn.Module | None = None, reformer: nn.Module | None = None,
                 channels: int = FEATURE_CHANNELS, stride: int = SCRATCH_STRIDE) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else ConvTrunk()
        self.reformer = reformer if reformer is not None else EmbeddingHead(embedding_dim)
        self.channels, self.stride = channels, stride  # of E's map, for the decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reformer(self.encoder(x))


def g2d_on(base: nn.Module) -> G2DNet:
    """G2D whose E and R are ``base``'s trunk and head (its layers, with whatever weights it holds)."""
    encoder, reformer = split_recognizer(base)
    channels, stride = trunk_geometry(base)
    return G2DNet(encoder=encoder, reformer=reformer, channels=channels, stride=stride)


class G2DInpainter(nn.Module):
    """E + decoder, for the generative pretraining (stage 1); shares E with a ``G2DNet``."""

    def __init__(self, net: G2DNet) -> None:
        super().__init__()
        self.encoder = net.encoder
        self.decoder = InpaintingDecoder(net.channels, net.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def g2d_built_on(base_name: str) -> G2DNet:
    """The registry's factory for ``g2d-<base>``."""
    return g2d_on(registered_recognizer(base_name))
