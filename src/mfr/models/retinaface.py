"""RetinaFace with a MobileNet-0.25 backbone, in the layout of biubug6/Pytorch_Retinaface's
``mobilenet0.25_Final.pth`` (after stripping the DataParallel ``module.`` prefix).

Input: BGR image of any size, minus the per-channel mean (104, 117, 123). Outputs, per prior box
(2 anchors per cell on strides 8/16/32): raw box regressions ``bbox_deltas`` (N, P, 4), the face
probability ``scores`` (N, P) and raw landmark regressions ``landmark_deltas`` (N, P, 10). Decoding
against the priors, thresholding and NMS happen in the torch-free runtime.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ANCHORS_PER_CELL = 2


def _conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3, leaky: float | None = 0.0) -> nn.Sequential:
    """Conv + BN, followed by LeakyReLU(leaky) unless ``leaky`` is None."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """MobileNet-v1 depthwise-separable unit (indices 0,1,3,4 carry parameters, as in the checkpoint)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1Quarter(nn.Module):
    """MobileNet-v1 at width 0.25; returns the stride-8, -16 and -32 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, stride=2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return c3, c4, self.stage3(c4)


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out_channels: int, leaky: float) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out_channels, kernel=1, leaky=leaky)
        self.output2 = _conv_bn(in_channels[1], out_channels, kernel=1, leaky=leaky)
        self.output3 = _conv_bn(in_channels[2], out_channels, kernel=1, leaky=leaky)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields, concatenated."""

    def __init__(self, cin: int, cout: int, leaky: float) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(cin, cout // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(cout // 4, cout // 4, leaky=None)
        self.conv7X7_2 = _conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(cout // 4, cout // 4, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5 = self.conv5X5_1(x)
        out = torch.cat(
            [self.conv3X3(x), self.conv5X5_2(branch5), self.conv7x7_3(self.conv7X7_2(branch5))], dim=1
        )
        return F.relu(out)


class _Head(nn.Module):
    """1x1 conv predicting ``values`` numbers per anchor, reshaped to (N, H*W*anchors, values)."""

    def __init__(self, cin: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(cin, _ANCHORS_PER_CELL * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.body = MobileNetV1Quarter()
        self.fpn = FPN((64, 128, 256), channels, leaky)
        self.ssh1 = SSH(channels, channels, leaky)
        self.ssh2 = SSH(channels, channels, leaky)
        self.ssh3 = SSH(channels, channels, leaky)
        self.ClassHead = nn.ModuleList([_Head(channels, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(channels, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(channels, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = self.fpn(self.body(x))
        levels = [self.ssh1(p3), self.ssh2(p4), self.ssh3(p5)]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, levels, strict=True)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, levels, strict=True)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, levels, strict=True)], dim=1)
        return boxes, F.softmax(logits, dim=-1)[..., 1], landmarks
