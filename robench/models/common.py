"""Small building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn

from robench.models.defective import Slot


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, group: str = "") -> nn.Sequential:
    """conv -> BN -> Slot with its ReLU: the defective layer ``relu(mask * bn(conv(x)))``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), Slot(group, relu=True)
    )


def head(channels: int, num_classes: int) -> nn.Sequential:
    """Global average pooling and one linear layer: (N, C, H, W) -> (N, num_classes)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def pool_or_skip(stride: int) -> nn.Module:
    """2x2 max-pool (ceil mode, so 28 px inputs work), or nothing when the stride is overridden to 1."""
    return nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
