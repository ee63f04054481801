"""Intel's face-reidentification-retail-0095 (Open Model Zoo) as a PyTorch module, written from its OpenVINO IR.

The IR's graph (``mfr/weights/face-reid-0095/*.xml``) is a MobileFaceNet with two changes: every activation
is a PReLU with one shared slope, and each inverted-residual block ends in a squeeze-excitation (global
average pool, 1x1 conv to an eighth of the channels, PReLU, 1x1 conv back, sigmoid, scale).
Its BatchNorms are constant-folded: every convolution has a bias and no normalisation follows, and the
input normalisation is a per-channel scale and shift inside the network (the model takes BGR 0..255).
128x128 input, 8x8 final map, global depthwise 8x8 conv, 1x1 conv to a 256-d embedding (no bias).

Parameters are registered in the IR's data-flow order, which is what ``mfr.models.openvino_ir`` loads by.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) of the inverted-residual stages, as the IR holds them
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)
SE_REDUCTION = 8


def conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=bias)


class SqueezeExcitation(nn.Module):
    """Channel weights from the global average: 1x1 conv down, PReLU, 1x1 conv up, sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = conv(channels, channels // SE_REDUCTION)
        self.act = nn.PReLU()
        self.expand = conv(channels // SE_REDUCTION, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.expand(self.act(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(weights)


class InvertedResidual(nn.Module):
    """1x1 expand + PReLU, 3x3 depthwise + PReLU, 1x1 linear projection, squeeze-excitation, skip when the
    shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.expand = conv(cin, hidden)
        self.expand_act = nn.PReLU()
        self.depthwise = conv(hidden, hidden, 3, stride, groups=hidden)
        self.depthwise_act = nn.PReLU()
        self.project = conv(hidden, cout)
        self.se = SqueezeExcitation(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.depthwise_act(self.depthwise(self.expand_act(self.expand(x))))
        out = self.se(self.project(out))
        return x + out if self.residual else out


class FaceReidNet(nn.Module):
    """128x128 BGR face crop, 0..255 -> ``embedding_dim``-d embedding (not L2-normalised)."""

    # The IR layer each registered buffer feeds (see mfr.models.openvino_ir.ir_state_dict)
    ir_buffer_roles = {"input_scale": "Multiply", "input_shift": "Add"}
    # Trunk: up to the last inverted-residual block's 8x8x128 map (mfr.models.split)
    TRUNK = ("input_scale", "input_shift", "stem", "stem_act", "stem_depthwise", "stem_depthwise_act", "blocks")
    HEAD = ("head", "head_act", "global_depthwise", "embedding")
    TRUNK_CHANNELS, TRUNK_STRIDE = 128, 16

    def __init__(self, embedding_dim: int = 256, input_size: int = 128) -> None:
        super().__init__()
        self.input_scale: torch.Tensor
        self.input_shift: torch.Tensor
        self.register_buffer("input_scale", torch.ones(1, 3, 1, 1))
        self.register_buffer("input_shift", torch.zeros(1, 3, 1, 1))
        self.stem = conv(3, 64, 3, stride=2)
        self.stem_act = nn.PReLU()
        self.stem_depthwise = conv(64, 64, 3, groups=64)
        self.stem_depthwise_act = nn.PReLU()
        blocks: list[nn.Module] = []
        cin = 64
        for expansion, cout, repeats, stride in STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = conv(cin, 512)
        self.head_act = nn.PReLU()
        self.global_depthwise = nn.Conv2d(512, 512, input_size // 16, groups=512)  # no padding: 8x8 -> 1x1
        self.embedding = conv(512, embedding_dim, bias=False)

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Up to the last inverted-residual block: (N, 128, input/16, input/16)."""
        x = x * self.input_scale + self.input_shift
        x = self.stem_depthwise_act(self.stem_depthwise(self.stem_act(self.stem(x))))
        return self.blocks(x)

    def head_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_depthwise(self.head_act(self.head(x)))
        return torch.flatten(self.embedding(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_forward(self.trunk_forward(x))
