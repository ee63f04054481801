"""MobileFaceNet (Chen et al., 2018) in the layout of foamliu/MobileFaceNet's ``mobilefacenet.pt``.

The parameter names (``conv1``, ``dw_conv``, ``features.N.conv``, ``conv2``, ``gdconv``, ``conv3``,
``bn``) are those of the shipped checkpoint. That variant uses ReLU6/ReLU rather than the paper's PReLU
and ends in a 1x1 conv + BatchNorm giving a 128-d, unnormalised embedding.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) of the bottleneck stages.
_BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise + BN + ReLU, then 1x1 pointwise + BN + ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class GlobalDepthwise(nn.Module):
    """The 7x7 global depthwise conv that replaces global average pooling."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.depthwise(x))


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise (both BN + ReLU6), 1x1 linear projection + BN."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            _conv_bn_relu6(cin, hidden, kernel=1),
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    """112x112 RGB face crop -> ``embedding_dim``-d embedding (not L2-normalised). Its trunk ends at the last
    bottleneck's 7x7x128 map (``mfr.models.split``)."""

    TRUNK = ("conv1", "dw_conv", "features")
    HEAD = ("conv2", "gdconv", "conv3", "bn")
    TRUNK_CHANNELS, TRUNK_STRIDE = 128, 16

    def __init__(self, embedding_dim: int = 128, input_size: int = 112) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu6(3, 64, stride=2)
        self.dw_conv = DepthwiseSeparable(64)
        blocks: list[nn.Module] = []
        cin = 64
        for expansion, cout, repeats, stride in _BOTTLENECKS:
            for i in range(repeats):
                blocks.append(Bottleneck(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.conv2 = _conv_bn_relu6(cin, 512, kernel=1)
        self.gdconv = GlobalDepthwise(512, kernel=input_size // 16)
        self.conv3 = nn.Conv2d(512, embedding_dim, 1)
        self.bn = nn.BatchNorm2d(embedding_dim)

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.dw_conv(self.conv1(x)))

    def head_forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.bn(self.conv3(self.gdconv(self.conv2(x)))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_forward(self.trunk_forward(x))
