"""iResNet-18/34/50/100 in the parameter layout of insightface arcface_torch ``backbone.pth`` files.

ArcFace, ElasticFace and MaskInv checkpoints trained with arcface_torch load into these with
``strict=True``. Input 112x112 RGB, (x/255 - 0.5)/0.5; output 512-d (not L2-normalised).
"""

from __future__ import annotations

import torch
from torch import nn

_BN_EPS = 1e-5
_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style block: BN, conv, BN, PReLU, conv(stride), BN, plus shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=_BN_EPS)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=_BN_EPS)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    """One resolution stage: a stride-2 block, then ``blocks - 1`` stride-1 blocks."""
    return nn.Sequential(IBasicBlock(cin, cout, 2), *[IBasicBlock(cout, cout, 1) for _ in range(blocks - 1)])


class IResNet(nn.Module):
    """112x112 RGB face crop -> embedding; its trunk ends at layer4's 7x7x512 map (``mfr.models.split``)."""

    TRUNK = ("conv1", "bn1", "prelu", "layer1", "layer2", "layer3", "layer4")
    HEAD = ("bn2", "dropout", "fc", "features")
    TRUNK_CHANNELS, TRUNK_STRIDE = 512, 16

    def __init__(self, depth: int, embedding_dim: int = 512, input_size: int = 112) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"iresnet depth must be one of {sorted(_DEPTHS)}, got {depth}")
        blocks = _DEPTHS[depth]
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=_BN_EPS)
        self.prelu = nn.PReLU(64)
        self.layer1 = _stage(64, 64, blocks[0])
        self.layer2 = _stage(64, 128, blocks[1])
        self.layer3 = _stage(128, 256, blocks[2])
        self.layer4 = _stage(256, 512, blocks[3])
        self.bn2 = nn.BatchNorm2d(512, eps=_BN_EPS)
        self.dropout = nn.Dropout(p=0.0)
        side = input_size // 16
        self.fc = nn.Linear(512 * side * side, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=_BN_EPS)
        # arcface_torch freezes the final BN's scale at 1.
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def head_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_forward(self.trunk_forward(x))


def iresnet(depth: int) -> IResNet:
    return IResNet(depth)
