"""Small models: a CIFAR AlexNet (third paper) and a tiny CNN for fast tests and demos."""

from __future__ import annotations

from torch import nn

from robench.models.common import conv_bn_act, head
from robench.models.defective import DefectSpec


def _pool(stride: int) -> nn.Module:
    return nn.MaxPool2d(3, 2, 1, ceil_mode=True) if stride == 2 else nn.Identity()


def alexnet(num_classes: int, in_channels: int, width: int, spec: DefectSpec, strides=(2, 2, 2)) -> nn.Module:
    b, t = spec.widen_for("bottom"), spec.widen_for("top")
    c1, c2, c3, c4 = width * b, 3 * width * b, 6 * width * t, 4 * width * t
    return nn.Sequential(
        conv_bn_act(in_channels, c1, 5, 1, "bottom"), _pool(strides[0]),
        conv_bn_act(c1, c2, 5, 1, "bottom"), _pool(strides[1]),
        conv_bn_act(c2, c3, 3, 1, "top"), conv_bn_act(c3, c4, 3, 1, "top"), conv_bn_act(c4, c4, 3, 1, "top"),
        _pool(strides[2]), head(c4, num_classes),
    )


def tiny(num_classes: int, in_channels: int, width: int, spec: DefectSpec, strides=(2, 2)) -> nn.Module:
    b, t = spec.widen_for("bottom"), spec.widen_for("top")
    c1, c2, c3 = width * b, 2 * width * b, 4 * width * t
    return nn.Sequential(
        conv_bn_act(in_channels, c1, 3, 1, "bottom"),
        conv_bn_act(c1, c2, 3, strides[0], "bottom"),
        conv_bn_act(c2, c3, 3, strides[1], "top"),
        head(c3, num_classes),
    )
