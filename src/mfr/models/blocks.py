"""Building blocks the masked-face reconstructions (G2D, MEER) share: a dense convolutional trunk to a
14x14 feature map, an embedding head on such a map, a decoder from it back to a face, and a MAC counter.

Dense rather than depthwise convolutions: they train faster on a CPU, where these reconstructions are
trained; sizes keep each model near MobileFaceNet's cost.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_CHANNELS = 128  # the trunk's output: a 14x14 map of this many channels


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip connection (He et al., 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(x + self.bn2(self.conv2(out)))


class ConvTrunk(nn.Module):
    """112x112 normalised RGB -> (FEATURE_CHANNELS, 14, 14)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            conv_bn_relu(3, 32, stride=2),  # 56
            conv_bn_relu(32, 32),
            conv_bn_relu(32, 64, stride=2),  # 28
            ResidualBlock(64),
            conv_bn_relu(64, FEATURE_CHANNELS, stride=2),  # 14
            ResidualBlock(FEATURE_CHANNELS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


class FaceDecoder(nn.Module):
    """A (channels, S, S) map of a trunk of ``stride`` (a power of 2) -> a face ``stride`` times its size, in
    the normalised input space (training only). The default reads ``ConvTrunk``'s 14x14 map (stride 8); a
    pretrained recognizer's 7x7 (or 8x8) trunk map, stride 16, takes four doublings, the first at 128
    channels."""

    def __init__(self, channels: int = FEATURE_CHANNELS, stride: int = 8) -> None:
        super().__init__()
        upsamplings = stride.bit_length() - 1
        if stride < 4 or stride != 2 ** upsamplings:
            raise ValueError(f"a face decoder needs a trunk stride that is a power of 2, at least 4 (got {stride})")
        widths = [channels, *([128] * max(0, upsamplings - 3) + [64, 32])[-(upsamplings - 1):]]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:], strict=False):  # e.g. 14 -> 28 -> 56
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_bn_relu(cin, cout)]
        # the last doubling straight to pixels: a 32-channel convolution at full size would double the cost
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(32, 3, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class EmbeddingHead(nn.Module):
    """A (FEATURE_CHANNELS, 14, 14) map -> ``embedding_dim``-d identity vector (not L2-normalised): residual
    blocks, a 1x1 widening, MobileFaceNet's global depthwise pooling, a linear layer with batch norm."""

    def __init__(self, embedding_dim: int = 128, blocks: int = 2) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlock(FEATURE_CHANNELS) for _ in range(blocks)))
        self.widen = nn.Sequential(nn.Conv2d(FEATURE_CHANNELS, 256, 1, bias=False), nn.BatchNorm2d(256),
                                   nn.ReLU(inplace=True))
        self.pool = nn.Sequential(nn.Conv2d(256, 256, 14, groups=256, bias=False), nn.BatchNorm2d(256))
        self.fc = nn.Linear(256, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.widen(self.blocks(features)))
        return self.bn(self.fc(torch.flatten(x, 1)))


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 112, 112)) -> int:
    """Multiply-accumulates of one forward pass, counted over convolutions and linear layers (the rest is
    negligible), by hooks on a real forward pass."""
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += int(output.numel() // output.shape[0]) * kernel

    def linear_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += module.in_features * module.out_features

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return total
