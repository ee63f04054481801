"""G2D (Ge et al., "Masked Face Recognition with Generative-to-Discriminative Representations", ICML
2024), reconstructed at edge size from the paper's abstract (its code and tables were not available
to build from).

What the abstract describes, and how it is built here:

- a **generative encoder** pretrained for face inpainting, whose features recover context the mask
  hides: ``G2DEncoder`` E, dense 3x3 convolutions with residual blocks, 112x112 -> a 14x14x128 feature
  map; during its pretraining an ``InpaintingDecoder`` (training only, never deployed) turns that map back
  into the unmasked face (``G2DInpainter`` = E + decoder);
- a **discriminative reformer** that turns those descriptors into identity vectors: ``G2DReformer`` R,
  residual blocks on E's map, a 1x1 widening, the global depthwise convolution MobileFaceNet pools with,
  and a linear layer to the embedding (with batch norm, like MobileFaceNet's last layer);
- the deployed graph is E -> R (``G2DNet``), one ONNX model like every other recognition model.

Not known from the abstract and chosen here: every layer size (to keep the model near MobileFaceNet's
cost), the decoder's form, the 128-d embedding and the input normalisation (the teacher's, so the
student can be compared with templates the teacher enrolled). Dense rather than depthwise convolutions:
they train faster on a CPU, where this reconstruction is trained.
"""

from __future__ import annotations

import torch
from torch import nn

from mfr.models.blocks import ConvTrunk, EmbeddingHead, FaceDecoder


class G2DEncoder(ConvTrunk):
    """E: 112x112 normalised RGB -> (FEATURE_CHANNELS, 14, 14); pretrained to inpaint, then frozen."""


class InpaintingDecoder(FaceDecoder):
    """E's map -> the unmasked face, in the normalised input space (training only)."""


class G2DReformer(EmbeddingHead):
    """R: E's map -> ``embedding_dim``-d identity vector (not L2-normalised)."""


class G2DNet(nn.Module):
    """The deployed G2D model: E -> R, 112x112 face crop -> embedding."""

    def __init__(self, embedding_dim: int = 128) -> None:
        super().__init__()
        self.encoder = G2DEncoder()
        self.reformer = G2DReformer(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reformer(self.encoder(x))


class G2DInpainter(nn.Module):
    """E + decoder, for the generative pretraining (stage 1); shares E with a ``G2DNet``."""

    def __init__(self, encoder: G2DEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = InpaintingDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
